//! Debian kernel images for the VM matrix (issue 4): fetch, cache, list; and
//! the kernel-source seam ([`source`]) that also takes a local image.
//!
//! The kernels come from Debian's archive through the private apt of
//! [`crate::debian::apt`] (the machine's mirror, a private sources list with
//! every suite of [`SUITES`], private lists and keyrings, signatures always
//! verified; see that module). This module only decides which packages hold
//! which kernel, and keeps what it needs of them:
//!
//! - **Packages** ([`select`]). Debian's kernel packaging changed in 6.19:
//!   - up to 6.18: `linux-image-REL` (signed) holds `/boot/vmlinuz-REL` and
//!     `/boot/config-REL`; `linux-image-REL-unsigned` is the same without the
//!     signature;
//!   - from 6.19: `linux-image-REL` is a small meta package; the kernel is in
//!     `linux-binary-REL` (`/boot/vmlinuz-REL` in 6.19,
//!     `/usr/lib/modules/REL/vmlinuz` from 7.0), the unsigned one in
//!     `linux-binary-unsigned-REL` (`vmlinuz.unsigned`), and the config in
//!     `linux-base-REL` (`/usr/lib/modules/REL/config`). The signed packages
//!     (source `linux-signed-amd64`) and `linux-base` (source `linux`) do not
//!     always stay in the archive together: a release whose `linux-base` is no
//!     longer served has **no config** ([`KernelImage::config`] is `None`).
//!
//!   The package that holds the vmlinuz is chosen in the order `linux-binary`,
//!   `linux-image`, then the unsigned ones; the config comes from the same
//!   package, or from `linux-base-REL` of the same version. Which file is which
//!   is decided by looking inside the packages, not by the version number.
//! - **Flavour** `amd64` only: `cloud-amd64`, `rt-amd64` and `-dbg` packages
//!   are ignored, and `-unsigned` duplicates only serve as a fallback.
//! - **Cache** ([`cache`]). `<cache_root>/<release>/{vmlinuz,config,meta.json}`;
//!   only the vmlinuz and config members are extracted
//!   ([`crate::debian::deb::extract_members`]) and the .deb files are deleted
//!   after extraction (they are 14–170 MB). An entry is built in
//!   `<cache_root>/.tmp-PID-…` and renamed into place, so an interrupted fetch
//!   never leaves a half entry; the temp directories of dead processes are
//!   removed by the next fetch.
//! - **Sources** ([`source`]). A `--kernels` entry is a Debian request (the
//!   requests of [`fetch`]) or a local image (`image:PATH`, or the path of an
//!   existing file); [`source::resolve`] turns a list of them into images.

mod cache;
pub(crate) mod select;
pub mod source;

pub use crate::debian::apt::{LISTS_MAX_AGE, SUITES, SYSTEM_KEYRING};
pub use crate::debian::DebianError;
pub use cache::is_bzimage;
pub use source::KernelSource;

/// Debian version comparison; kept under its old name (see
/// [`crate::debian::deb::version_cmp`]).
pub use crate::debian::deb::version_cmp as dpkg_cmp;

use crate::debian::apt::Apt;
use cache::{cached_in, find_cached_in, read_entry, store};
use select::{newest_per_minor, select};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The kernel flavour used for the VMs.
pub const FLAVOUR: &str = "amd64";

/// A kernel in the cache: what to boot and the config it was built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelImage {
    /// What the user asked for, e.g. "6.12" (for [`cached`]: the request that fetched it).
    pub request: String,
    /// The kernel release (`uname -r`), e.g. "6.12.117+deb13-amd64".
    pub release: String,
    /// The Debian package the vmlinuz came from.
    pub package: String,
    /// That package's Debian version, e.g. "6.12.117-1".
    pub package_version: String,
    /// The suite it was downloaded from, e.g. "trixie".
    pub suite: String,
    /// The kernel image (a bzImage; signed images are also valid bzImages).
    pub vmlinuz: PathBuf,
    /// The kernel's build config, when the archive still serves the package
    /// that holds it (see the module docs: some 6.19/7.x releases have none).
    pub config: Option<PathBuf>,
    /// The package the config came from (the vmlinuz package, or `linux-base-REL`).
    pub config_package: Option<String>,
    /// The cache directory of this entry (holds `meta.json`).
    pub dir: PathBuf,
}

/// A kernel the archive serves (see [`available`] and [`releases`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Available {
    /// major.minor, e.g. "6.12".
    pub request: String,
    /// The kernel release, e.g. "6.12.117+deb13-amd64".
    pub release: String,
    /// The package that holds the vmlinuz.
    pub package: String,
    /// Its Debian version.
    pub package_version: String,
    /// The suite serving that version.
    pub suite: String,
    /// The package that holds the config (`None`: the archive has no config
    /// for this release).
    pub config_package: Option<String>,
}

/// Why a kernel could not be listed or fetched.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The request matches no kernel the archive serves.
    #[error("kernel {request} is not available; available: {}{}", .available.join(", "), releases_hint(.releases))]
    NotAvailable {
        request: String,
        /// major.minor versions available, oldest first.
        available: Vec<String>,
        /// Releases of the requested major.minor, when there are any.
        releases: Vec<String>,
    },
    /// Listing the archive failed (the same error as an earlier request of the batch).
    #[error("{0}")]
    Listing(String),
    /// A local kernel image ([`KernelSource::Image`]) that is not a file.
    #[error("{}: no such kernel image file", .0.display())]
    NoImage(PathBuf),
    /// A `--kernels` entry that is neither an existing file nor a Debian
    /// kernel request (see [`source::KernelSource::parse`]).
    #[error("{0}")]
    BadSource(String),
    /// Debian's archive: no mirror, apt failed, a package did not hold what
    /// it should, a file operation failed.
    #[error(transparent)]
    Debian(#[from] DebianError),
}

fn releases_hint(releases: &[String]) -> String {
    if releases.is_empty() {
        String::new()
    } else {
        format!(" (releases of that version: {})", releases.join(", "))
    }
}

/// `$PROBECONF_CACHE` or `$XDG_CACHE_HOME/probeconf` or `~/.cache/probeconf`, then `/kernels`.
pub fn cache_root() -> PathBuf {
    crate::cache::dir().join("kernels")
}

// ---------------------------------------------------------------------------
// Public operations

/// The kernels in the cache, sorted by version (oldest first).
pub fn cached() -> Vec<KernelImage> {
    cached_in(&cache_root())
}

/// The newest kernel per major.minor that the archive serves (amd64 flavour),
/// oldest first. Runs `apt-get update` when the lists are older than a day,
/// or when `refresh` is true.
pub fn available(refresh: bool) -> Result<Vec<Available>, KernelError> {
    let all = releases(refresh)?;
    Ok(newest_per_minor(&all))
}

/// Every kernel release the archive serves (amd64 flavour; the newest package
/// version of each), oldest first.
pub fn releases(refresh: bool) -> Result<Vec<Available>, KernelError> {
    let apt = Apt::shared();
    apt.ensure_lists(refresh)?;
    select::releases(&apt)
}

/// The cached kernel matching `request` ("6.12", "6.12.117", or an exact
/// release such as "6.12.117+deb13-amd64"); the newest one when several match.
pub fn find_cached(request: &str) -> Option<KernelImage> {
    find_cached_in(&cache_root(), request)
}

/// Fetch each request: "6.12" → the newest 6.12.x available; "6.12.117" →
/// that upstream version; an exact release ("6.12.117+deb13-amd64" or
/// "6.12.117+deb13") → that release; "7" → the newest 7.x. A request already
/// in the cache is answered from it without any network access.
pub fn fetch(requests: &[String]) -> Vec<Result<KernelImage, KernelError>> {
    fetch_with_log(requests, &mut |_| {})
}

/// [`fetch`], reporting progress (one line per step) to `log`.
pub fn fetch_with_log(
    requests: &[String],
    log: &mut dyn FnMut(&str),
) -> Vec<Result<KernelImage, KernelError>> {
    fetch_in(&cache_root(), &Apt::shared(), requests, log)
}

/// [`fetch`] into the cache `root` through `apt` (tests use private ones).
pub(crate) fn fetch_in(
    root: &Path,
    apt: &Apt,
    requests: &[String],
    log: &mut dyn FnMut(&str),
) -> Vec<Result<KernelImage, KernelError>> {
    crate::debian::clean_stale_temps(root, cache::STALE_AGE);
    let mut out: Vec<Option<Result<KernelImage, KernelError>>> = Vec::new();
    let mut missing = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        match find_cached_in(root, r) {
            Some(k) => {
                log(&format!("{r}: cached {} ({})", k.release, k.dir.display()));
                out.push(Some(Ok(k)));
            }
            None => {
                out.push(None);
                missing.push(i);
            }
        }
    }
    if !missing.is_empty() {
        let listed = apt
            .ensure_lists(false)
            .map_err(KernelError::from)
            .and_then(|_| select::releases(apt));
        match listed {
            Err(e) => {
                // The first request gets the error itself, the others its text.
                let msg = e.to_string();
                let mut first = Some(e);
                for i in missing {
                    out[i] = Some(Err(first
                        .take()
                        .unwrap_or_else(|| KernelError::Listing(msg.clone()))));
                }
            }
            Ok(all) => {
                for i in missing {
                    let r = &requests[i];
                    let res = select(r, &all).and_then(|cand| {
                        // Another request may have fetched this release already.
                        if let Some(mut k) = read_entry(&root.join(&cand.release)) {
                            k.request = r.clone();
                            return Ok(k);
                        }
                        store(apt, root, r, &cand, log)
                    });
                    out[i] = Some(res);
                }
            }
        }
    }
    out.into_iter()
        .map(|o| o.expect("every request answered"))
        .collect()
}
