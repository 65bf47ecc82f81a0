//! Debian kernel images for the VM matrix (issue 4): fetch, cache, list.
//!
//! The kernels come from the Debian archive through the machine's own apt, with
//! a **private** configuration, so the system's sources, lists and caches are
//! never touched:
//!
//! - **Mirror.** The URI(s) of the Debian archive already configured on the
//!   machine (`/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list` and
//!   `*.sources`, deb822 or one-line) are reused; the entry serving the main
//!   `debian` archive is picked, never `debian-security`. No host name is
//!   written anywhere but into the cache. `PROBECONF_DEBIAN_MIRROR` (space
//!   separated URIs) overrides this, for machines without a Debian apt setup.
//! - **Private apt state** under `<cache_root>/apt/`: `kernels.sources` (the
//!   suites of [`SUITES`], component `main`, amd64 `Packages` indices only),
//!   `apt.conf` (clears the system's update hooks, which belong to the system's
//!   lists), `lists/`, `cache/` (with its own `pkgcache.bin`, so `apt-cache` is
//!   fast), an empty parts directory, and `keyrings/`. Every apt command gets
//!   the same `-c`/`-o` options (`Apt::options`). `Dir::State::status` stays
//!   the system's (read only). The lists are refreshed when older than a day,
//!   when the generated configuration changed, or on request. When apt's
//!   sandbox user `_apt` cannot reach the cache (the default one is under
//!   `/root`, mode 0700), `APT::Sandbox::User=root` is passed: apt would fall
//!   back to that anyway, with a warning.
//! - **Signatures** are always verified: `Signed-By` names the machine's
//!   `/usr/share/keyrings/debian-archive-keyring.gpg`. When a suite cannot be
//!   verified with it (a newer archive key signs sid/experimental than the
//!   machine's keyring knows), the newest `debian-archive-keyring` package is
//!   fetched with `apt-get download` *from a suite that did verify* (so the
//!   chain of trust starts at the machine's keyring), its keyring is extracted
//!   into `<cache_root>/apt/keyrings/`, added to `Signed-By`, and the update is
//!   run again. Nothing here uses `trusted=yes` or disables verification. A
//!   suite that still cannot be verified is left out, with a warning on stderr.
//!   Note that apt's system-wide settings (e.g. `Acquire::Check-Valid-Until`)
//!   still apply: they describe the machine's mirror.
//! - **Packages.** Debian's kernel packaging changed in 6.19:
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
//! - **Cache.** `<cache_root>/<release>/{vmlinuz,config,meta.json}`; the .deb
//!   files are deleted after extraction (they are 14–170 MB). An entry is built
//!   in `<cache_root>/.tmp-PID-…` and renamed into place, so an interrupted
//!   fetch never leaves a half entry; the temp directories of dead processes
//!   are removed by the next fetch.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The Debian suites searched for kernels, from the most to the least stable
/// (the order also breaks ties when one version is served by several suites).
pub const SUITES: [&str; 6] = [
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
    "experimental",
];

/// The kernel flavour used for the VMs.
pub const FLAVOUR: &str = "amd64";

/// The machine's Debian archive keyring, named in `Signed-By`.
pub const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// How long downloaded package lists are used before `apt-get update` runs again.
pub const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

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
    /// No Debian archive is configured for apt on this machine.
    #[error("no Debian archive mirror in the apt configuration (looked in {searched}); set PROBECONF_DEBIAN_MIRROR to a Debian archive URI")]
    NoMirror { searched: String },
    /// A command failed.
    #[error("`{command}` failed ({status}){}", stderr_hint(.stderr))]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// `apt-get update` produced no usable package list at all.
    #[error("apt-get update produced no package lists: {0}")]
    NoLists(String),
    /// A downloaded package did not hold what it should.
    #[error("{package} {version}: {what}")]
    Package {
        package: String,
        version: String,
        what: String,
    },
    /// Listing the archive failed (the same error as an earlier request of the batch).
    #[error("{0}")]
    Listing(String),
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn releases_hint(releases: &[String]) -> String {
    if releases.is_empty() {
        String::new()
    } else {
        format!(" (releases of that version: {})", releases.join(", "))
    }
}

fn stderr_hint(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        // The last lines carry apt's E:/W: messages.
        let lines: Vec<&str> = t.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        format!(": {}", tail.join("\n"))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `$PROBECONF_CACHE` or `$XDG_CACHE_HOME/probeconf` or `~/.cache/probeconf`, then `/kernels`.
pub fn cache_root() -> PathBuf {
    crate::harness_build::cache_dir().join("kernels")
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
    let apt = Apt::new(&cache_root());
    apt.ensure_lists(refresh)?;
    apt.releases()
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
    fetch_in(&cache_root(), requests, log)
}

fn fetch_in(
    root: &Path,
    requests: &[String],
    log: &mut dyn FnMut(&str),
) -> Vec<Result<KernelImage, KernelError>> {
    clean_stale_temps(root);
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
        let apt = Apt::new(root);
        let listed = apt.ensure_lists(false).and_then(|_| apt.releases());
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
                        store(&apt, root, r, &cand, log)
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

// ---------------------------------------------------------------------------
// Sources files: finding the machine's Debian mirror

/// One entry of an apt sources file (one-line or deb822).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct AptSource {
    types: Vec<String>,
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    enabled: bool,
}

/// Parse a deb822 `.sources` file.
fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    let flush = |fields: &mut BTreeMap<String, String>, out: &mut Vec<AptSource>| {
        if fields.is_empty() {
            return;
        }
        let words = |k: &str| -> Vec<String> {
            fields
                .get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = fields
            .get("enabled")
            .map(|v| !v.trim().eq_ignore_ascii_case("no"))
            .unwrap_or(true);
        out.push(AptSource {
            types: words("types"),
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            enabled,
        });
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                let v = fields.entry(k.clone()).or_default();
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            fields.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    flush(&mut fields, &mut out);
    out
}

/// Parse a one-line-style `.list` file: `deb [opts] URI SUITE [COMPONENT…]`.
fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut toks = line.split_whitespace().peekable();
        let Some(ty) = toks.next() else { continue };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        if toks.peek().is_some_and(|t| t.starts_with('[')) {
            for t in toks.by_ref() {
                if t.ends_with(']') {
                    break;
                }
            }
        }
        let rest: Vec<String> = toks.map(str::to_string).collect();
        if rest.len() < 2 {
            continue;
        }
        out.push(AptSource {
            types: vec![ty.to_string()],
            uris: vec![rest[0].clone()],
            suites: vec![rest[1].clone()],
            components: rest[2..].to_vec(),
            enabled: true,
        });
    }
    out
}

const DEBIAN_CODENAMES: [&str; 14] = [
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "testing",
    "unstable",
    "oldstable",
    "oldoldstable",
    "experimental",
    "rc-buggy",
];

/// Whether `suite` is a suite of the main Debian archive (not the security archive).
fn is_debian_main_suite(suite: &str) -> bool {
    if suite.contains("security") {
        return false;
    }
    let base = suite.split('-').next().unwrap_or(suite);
    DEBIAN_CODENAMES.contains(&base)
}

/// The URIs of the entry that serves the main Debian archive: type `deb`,
/// enabled, a Debian suite that is not `-security`, not a `debian-security`
/// URI. An entry with component `main` and a URI ending in `/debian` wins.
fn pick_debian_mirror(sources: &[AptSource]) -> Option<Vec<String>> {
    let mut best: Option<(u32, &AptSource)> = None;
    for s in sources {
        if !s.enabled || !s.types.iter().any(|t| t == "deb") {
            continue;
        }
        if !s.suites.iter().any(|x| is_debian_main_suite(x)) {
            continue;
        }
        let uris: Vec<&String> = s
            .uris
            .iter()
            .filter(|u| !u.contains("debian-security") && !u.starts_with("cdrom:"))
            .collect();
        if uris.is_empty() {
            continue;
        }
        let mut score = 1;
        if s.components.iter().any(|c| c == "main") {
            score += 2;
        }
        if uris
            .iter()
            .any(|u| u.trim_end_matches('/').ends_with("/debian"))
        {
            score += 1;
        }
        if best.map(|(b, _)| score > b).unwrap_or(true) {
            best = Some((score, s));
        }
    }
    best.map(|(_, s)| {
        s.uris
            .iter()
            .filter(|u| !u.contains("debian-security") && !u.starts_with("cdrom:"))
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    })
}

/// The machine's Debian mirror URI(s), from apt's sources files.
fn system_mirror() -> Result<Vec<String>, KernelError> {
    if let Ok(v) = std::env::var("PROBECONF_DEBIAN_MIRROR") {
        let uris: Vec<String> = v.split_whitespace().map(str::to_string).collect();
        if !uris.is_empty() {
            return Ok(uris);
        }
    }
    let mut sources = Vec::new();
    let list = Path::new("/etc/apt/sources.list");
    if let Ok(t) = fs::read_to_string(list) {
        sources.extend(parse_one_line(&t));
    }
    let parts = Path::new("/etc/apt/sources.list.d");
    if let Ok(rd) = fs::read_dir(parts) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let Ok(t) = fs::read_to_string(&f) else {
                continue;
            };
            if name.ends_with(".sources") {
                sources.extend(parse_deb822(&t));
            } else if name.ends_with(".list") {
                sources.extend(parse_one_line(&t));
            }
        }
    }
    pick_debian_mirror(&sources).ok_or_else(|| KernelError::NoMirror {
        searched: "/etc/apt/sources.list, /etc/apt/sources.list.d/*.{list,sources}".into(),
    })
}

/// The private deb822 sources file: every suite of [`SUITES`], `main`, amd64
/// `Packages` indices only, signed by `keyrings`.
fn render_sources(uris: &[String], keyrings: &[PathBuf]) -> String {
    let keys: Vec<String> = keyrings.iter().map(|k| k.display().to_string()).collect();
    format!(
        "# Generated by probeconf (src/kernels.rs): Debian kernels for the VM matrix.\n\
         # The URIs are the machine's Debian mirror, read from its apt configuration.\n\
         Types: deb\n\
         URIs: {}\n\
         Suites: {}\n\
         Components: main\n\
         Architectures: {FLAVOUR}\n\
         Targets: Packages\n\
         Signed-By: {}\n",
        uris.join(" "),
        SUITES.join(" "),
        keys.join(" ")
    )
}

/// The private apt.conf, read after the system's configuration (`-c`): the
/// system's update/dpkg hooks (appstream, packagekit, docker-clean) act on the
/// system's lists and caches, so they are cleared for ours.
const APT_CONF: &str = "// Generated by probeconf (src/kernels.rs).\n\
#clear APT::Update::Pre-Invoke;\n\
#clear APT::Update::Post-Invoke;\n\
#clear APT::Update::Post-Invoke-Success;\n\
#clear DPkg::Pre-Invoke;\n\
#clear DPkg::Post-Invoke;\n";

// ---------------------------------------------------------------------------
// The private apt environment

/// apt with a private sources list, lists, caches and keyrings under `dir`.
struct Apt {
    dir: PathBuf,
    /// The keyring every suite is first checked with ([`SYSTEM_KEYRING`]).
    base_keyring: PathBuf,
}

impl Apt {
    fn new(root: &Path) -> Apt {
        Apt {
            dir: root.join("apt"),
            base_keyring: PathBuf::from(SYSTEM_KEYRING),
        }
    }

    fn sources_path(&self) -> PathBuf {
        self.dir.join("kernels.sources")
    }
    fn conf_path(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }
    fn lists_dir(&self) -> PathBuf {
        self.dir.join("lists")
    }
    fn stamp_path(&self) -> PathBuf {
        self.dir.join("updated")
    }
    fn extra_keyring(&self) -> PathBuf {
        self.dir.join("keyrings").join("debian-archive-keyring.gpg")
    }

    /// The options every apt command gets.
    fn options(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut o = vec!["-c".to_string(), self.conf_path().display().to_string()];
        for (k, v) in [
            ("Dir::Etc::SourceList", d("kernels.sources")),
            ("Dir::Etc::SourceParts", d("empty.d")),
            ("Dir::Etc::Preferences", d("preferences")),
            ("Dir::Etc::PreferencesParts", d("empty.d")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            ("Dir::Cache::pkgcache", "pkgcache.bin".to_string()),
            ("Dir::Cache::srcpkgcache", String::new()),
            ("APT::Get::List-Cleanup", "true".to_string()),
        ] {
            o.push("-o".into());
            o.push(format!("{k}={v}"));
        }
        if !apt_user_can_reach(&self.dir) {
            // Run as root, apt downloads as the `_apt` user, and when that user
            // cannot reach the directory (the default cache is under /root,
            // mode 0700) apt itself falls back to downloading as root, with a
            // warning. Say so up front instead. Signatures and hashes are
            // checked exactly the same way.
            o.push("-o".into());
            o.push("APT::Sandbox::User=root".into());
        }
        o
    }

    fn keyrings(&self) -> Vec<PathBuf> {
        let mut k = vec![self.base_keyring.clone()];
        if self.extra_keyring().is_file() {
            k.push(self.extra_keyring());
        }
        k
    }

    /// Write sources and apt.conf; returns their combined text (for the stamp).
    fn write_config(&self, uris: &[String]) -> Result<String, KernelError> {
        for d in [
            "empty.d",
            "lists/partial",
            "cache/archives/partial",
            "keyrings",
        ] {
            let p = self.dir.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let sources = render_sources(uris, &self.keyrings());
        // Rewritten only when changed: a newer sources file makes apt rebuild
        // its 90 MB pkgcache.bin on the next command.
        for (path, text) in [
            (self.sources_path(), sources.as_str()),
            (self.conf_path(), APT_CONF),
        ] {
            if fs::read_to_string(&path).ok().as_deref() != Some(text) {
                write_atomic(&path, text.as_bytes())?;
            }
        }
        Ok(format!("{sources}\n{APT_CONF}"))
    }

    /// Make sure fresh package lists exist (see [`LISTS_MAX_AGE`]).
    fn ensure_lists(&self, refresh: bool) -> Result<(), KernelError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let _lock = FileLock::take(&self.dir.join(".lock"))?;
        let uris = system_mirror()?;
        let config = self.write_config(&uris)?;
        let stamp = fs::read_to_string(self.stamp_path()).unwrap_or_default();
        let age = fs::metadata(self.stamp_path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        let fresh = stamp == sha256_hex(config.as_bytes())
            && age.is_some_and(|a| a < LISTS_MAX_AGE)
            && self.has_lists();
        if fresh && !refresh {
            return Ok(());
        }
        let _ = fs::remove_file(self.stamp_path());
        let mut out = self.update()?;
        // A suite signed by a key the keyrings do not know: take the newest
        // debian-archive-keyring from a suite that did verify, and try again.
        if out.signature_problem && self.fetch_newer_keyring()? {
            let config = self.write_config(&uris)?;
            out = self.update()?;
            return self.finish_update(&out, &config);
        }
        self.finish_update(&out, &config)
    }

    fn finish_update(&self, out: &UpdateOutput, config: &str) -> Result<(), KernelError> {
        if !self.has_lists() {
            return Err(KernelError::NoLists(out.problems.join("\n")));
        }
        for p in &out.problems {
            eprintln!("probeconf: kernels: apt-get update: {p}");
        }
        // Written even after a partial failure (e.g. one expired suite on a
        // stale mirror), so the next attempt is a day later, not every call.
        write_atomic(&self.stamp_path(), sha256_hex(config.as_bytes()).as_bytes())?;
        Ok(())
    }

    fn has_lists(&self) -> bool {
        fs::read_dir(self.lists_dir())
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false)
    }

    fn update(&self) -> Result<UpdateOutput, KernelError> {
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options()).args(["-q", "update"]);
        let (status, stdout, stderr) = run_capture(&mut cmd)?;
        let text = format!("{stdout}\n{stderr}");
        let problems: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:") || l.starts_with("Err:"))
            .map(str::to_string)
            .collect();
        let signature_problem = [
            "NO_PUBKEY",
            "is not signed",
            "EXPKEYSIG",
            "KEYEXPIRED",
            "signatures were invalid",
            "BADSIG",
        ]
        .iter()
        .any(|m| text.contains(m));
        if !status.success() && !self.has_lists() {
            return Err(KernelError::Command {
                command: display_cmd(&cmd),
                status: status.to_string(),
                stderr,
            });
        }
        Ok(UpdateOutput {
            problems,
            signature_problem,
        })
    }

    /// Download the newest `debian-archive-keyring` from the verified suites
    /// and put its keyring into `keyrings/`.
    /// Returns whether a keyring was added (false: the newest one verified
    /// suites serve is already there).
    fn fetch_newer_keyring(&self) -> Result<bool, KernelError> {
        let versions = self.madison(&["debian-archive-keyring".to_string()])?;
        let newest = versions
            .iter()
            .max_by(|a, b| dpkg_cmp(&a.version, &b.version))
            .ok_or_else(|| KernelError::Package {
                package: "debian-archive-keyring".into(),
                version: "-".into(),
                what: "not in any suite that could be verified".into(),
            })?;
        let version_file = self.extra_keyring().with_extension("version");
        if self.extra_keyring().is_file()
            && fs::read_to_string(&version_file).ok().as_deref() == Some(newest.version.as_str())
        {
            return Ok(false);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".keyring-")
            .tempdir_in(&self.dir)
            .map_err(io_err(&self.dir))?;
        let deb_dir = tmp.path().join("deb");
        fs::create_dir_all(&deb_dir).map_err(io_err(&deb_dir))?;
        give_to_apt_user(&deb_dir);
        let debs = self.download(&[(newest.name.clone(), newest.version.clone())], &deb_dir)?;
        let x = tmp.path().join("x");
        fs::create_dir_all(&x).map_err(io_err(&x))?;
        run_checked(Command::new("dpkg-deb").arg("-x").arg(&debs[0].0).arg(&x))?;
        let keyrings = x.join("usr/share/keyrings");
        let found = ["debian-archive-keyring.gpg", "debian-archive-keyring.pgp"]
            .iter()
            .map(|n| keyrings.join(n))
            .find_map(|p| resolve_in(&x, &p));
        let Some(src) = found else {
            return Err(KernelError::Package {
                package: newest.name.clone(),
                version: newest.version.clone(),
                what: "holds no usr/share/keyrings/debian-archive-keyring.{gpg,pgp}".into(),
            });
        };
        let bytes = fs::read(&src).map_err(io_err(&src))?;
        write_atomic(&self.extra_keyring(), &bytes)?;
        write_atomic(&version_file, newest.version.as_bytes())?;
        eprintln!(
            "probeconf: kernels: added the archive keyring of {} {} ({}) for the suites the machine's keyring cannot verify",
            newest.name, newest.version, newest.suite
        );
        Ok(true)
    }

    fn apt_cache(&self, args: &[&str], names: &[String]) -> Result<String, KernelError> {
        let mut cmd = Command::new("apt-cache");
        cmd.args(self.options()).args(args).args(names);
        let (status, stdout, stderr) = run_capture(&mut cmd)?;
        if !status.success() {
            return Err(KernelError::Command {
                command: display_cmd(&cmd),
                status: status.to_string(),
                stderr,
            });
        }
        Ok(stdout)
    }

    fn madison(&self, names: &[String]) -> Result<Vec<PkgVersion>, KernelError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(parse_madison(&self.apt_cache(&["madison"], names)?))
    }

    /// Every amd64 kernel release in the lists.
    fn releases(&self) -> Result<Vec<Available>, KernelError> {
        let names: Vec<String> = self
            .apt_cache(&["pkgnames", "linux-"], &[])?
            .lines()
            .filter(|n| classify_package(n).is_some())
            .map(str::to_string)
            .collect();
        let versions = self.madison(&names)?;
        Ok(candidates(&versions)
            .into_iter()
            .map(|c| c.available())
            .collect())
    }

    /// `apt-get download name=version…` into `dir`; returns (file, name, version).
    fn download(
        &self,
        pkgs: &[(String, String)],
        dir: &Path,
    ) -> Result<Vec<(PathBuf, String, String)>, KernelError> {
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options())
            .args(["-q", "download"])
            .current_dir(dir);
        for (n, v) in pkgs {
            cmd.arg(format!("{n}={v}"));
        }
        run_checked(&mut cmd)?;
        let files: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        let mut out = Vec::new();
        for (n, v) in pkgs {
            let prefix = format!("{n}_");
            let f = files
                .iter()
                .find(|f| {
                    f.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .starts_with(&prefix)
                })
                .ok_or_else(|| KernelError::Package {
                    package: n.clone(),
                    version: v.clone(),
                    what: format!("apt-get download left no {n}_*.deb in {}", dir.display()),
                })?;
            out.push((f.clone(), n.clone(), v.clone()));
        }
        Ok(out)
    }
}

struct UpdateOutput {
    problems: Vec<String>,
    signature_problem: bool,
}

/// An exclusive flock on a file, released on drop.
struct FileLock(fs::File);

impl FileLock {
    fn take(path: &Path) -> Result<FileLock, KernelError> {
        use std::os::unix::io::AsRawFd;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(KernelError::Io {
                path: path.into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether apt's sandbox user (`_apt`, not root) can traverse every directory
/// down to `dir` (true when not running as root: there is no sandbox then).
fn apt_user_can_reach(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return true;
    }
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors().all(|a| {
        fs::metadata(a)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(true)
    })
}

/// apt downloads as the unprivileged `_apt` user when run as root; let it
/// write into the download directory (otherwise apt falls back to an
/// unsandboxed download with a warning).
fn give_to_apt_user(dir: &Path) {
    // SAFETY: plain libc calls with valid C strings.
    unsafe {
        if libc::geteuid() != 0 {
            return;
        }
        let pw = libc::getpwnam(c"_apt".as_ptr());
        if pw.is_null() {
            return;
        }
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
            return;
        };
        libc::chown(c.as_ptr(), (*pw).pw_uid, 0);
    }
}

// ---------------------------------------------------------------------------
// Packages and versions

/// What a kernel package holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// `linux-binary-REL`: the signed kernel (split packaging, 6.19+).
    Binary,
    /// `linux-image-REL`: the signed kernel and its config (up to 6.18), a meta package later.
    Image,
    /// `linux-binary-unsigned-REL`.
    BinaryUnsigned,
    /// `linux-image-REL-unsigned`.
    ImageUnsigned,
    /// `linux-base-REL`: config, System.map stub, modules.builtin (split packaging).
    Base,
}

/// The role and release of a package name, for the amd64 flavour only
/// (`None` for cloud/rt flavours, -dbg, meta packages and anything else).
fn classify_package(name: &str) -> Option<(Role, String)> {
    let (role, rest) = if let Some(r) = name.strip_prefix("linux-binary-unsigned-") {
        (Role::BinaryUnsigned, r)
    } else if let Some(r) = name.strip_prefix("linux-binary-") {
        (Role::Binary, r)
    } else if let Some(r) = name.strip_prefix("linux-base-") {
        (Role::Base, r)
    } else if let Some(r) = name.strip_prefix("linux-image-") {
        match r.strip_suffix("-unsigned") {
            Some(r) => (Role::ImageUnsigned, r),
            None => (Role::Image, r),
        }
    } else {
        return None;
    };
    let version = rest.strip_suffix(&format!("-{FLAVOUR}"))?;
    // "6.1.0-50", "6.12.117+deb13", "7.3": starts with major.minor, and every
    // further '-' part starts with a digit (rejects "-cloud", "-rt").
    let mut parts = version.split('-');
    let first = parts.next()?;
    major_minor(first)?;
    if !parts.all(|p| p.starts_with(|c: char| c.is_ascii_digit())) {
        return None;
    }
    Some((role, rest.to_string()))
}

/// "6.12" of "6.12.117+deb13-amd64" / "6.12.117-1" / "7.3~rc7-1~exp1".
fn major_minor(s: &str) -> Option<String> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?;
    if major.is_empty() || s.as_bytes().get(major.len()) != Some(&b'.') {
        return None;
    }
    let minor: String = s[major.len() + 1..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if minor.is_empty() {
        return None;
    }
    Some(format!("{major}.{minor}"))
}

/// The upstream kernel version of a Debian package version:
/// "6.19.14-1~bpo13+1" → "6.19.14", "7.3~rc7-1~exp1" → "7.3", "6.1.176-1" → "6.1.176".
fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let v = v.rsplit_once('-').map(|(u, _)| u).unwrap_or(v);
    v.split(['~', '+']).next().unwrap_or(v).to_string()
}

/// One version of one package, with the suite serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PkgVersion {
    name: String,
    version: String,
    suite: String,
}

/// Parse `apt-cache madison` lines: `name | version | URI suite/component arch Packages`.
fn parse_madison(text: &str) -> Vec<PkgVersion> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 3 {
            continue;
        }
        let toks: Vec<&str> = cols[2].split_whitespace().collect();
        if toks.len() < 2 || toks.last().is_none_or(|t| *t != "Packages") {
            continue;
        }
        let suite = toks[1].split('/').next().unwrap_or(toks[1]).to_string();
        out.push(PkgVersion {
            name: cols[0].to_string(),
            version: cols[1].to_string(),
            suite,
        });
    }
    out
}

/// A release that can be fetched: the package with the vmlinuz and the one
/// with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    release: String,
    minor: String,
    kernel: PkgVersion,
    config: Option<PkgVersion>,
}

impl Candidate {
    fn available(&self) -> Available {
        Available {
            request: self.minor.clone(),
            release: self.release.clone(),
            package: self.kernel.name.clone(),
            package_version: self.kernel.version.clone(),
            suite: self.kernel.suite.clone(),
            config_package: self.config.as_ref().map(|c| c.name.clone()),
        }
    }
}

fn suite_rank(s: &str) -> usize {
    SUITES.iter().position(|x| *x == s).unwrap_or(SUITES.len())
}

/// Newest version of each package (ties: the most stable suite).
fn newest_versions(versions: &[PkgVersion]) -> BTreeMap<String, PkgVersion> {
    let mut best: BTreeMap<String, PkgVersion> = BTreeMap::new();
    for v in versions {
        let replace = match best.get(&v.name) {
            None => true,
            Some(b) => match dpkg_cmp(&v.version, &b.version) {
                Ordering::Greater => true,
                Ordering::Equal => suite_rank(&v.suite) < suite_rank(&b.suite),
                Ordering::Less => false,
            },
        };
        if replace {
            best.insert(v.name.clone(), v.clone());
        }
    }
    best
}

/// Every fetchable release, oldest first.
fn candidates(versions: &[PkgVersion]) -> Vec<Candidate> {
    let newest = newest_versions(versions);
    let mut by_release: BTreeMap<String, BTreeMap<Role, PkgVersion>> = BTreeMap::new();
    for (name, v) in &newest {
        if let Some((role, release)) = classify_package(name) {
            by_release
                .entry(release)
                .or_default()
                .insert(role, v.clone());
        }
    }
    let mut out = Vec::new();
    for (release, roles) in by_release {
        // Binary < Image < BinaryUnsigned < ImageUnsigned (Base never holds a vmlinuz).
        let Some((&role, kernel)) = roles.iter().find(|(r, _)| **r != Role::Base) else {
            continue;
        };
        let config = match role {
            Role::Image | Role::ImageUnsigned => Some(kernel.clone()),
            _ => roles
                .get(&Role::Base)
                .filter(|b| b.version == kernel.version)
                .cloned(),
        };
        let Some(minor) = major_minor(&release) else {
            continue;
        };
        out.push(Candidate {
            release,
            minor,
            kernel: kernel.clone(),
            config,
        });
    }
    out.sort_by(|a, b| {
        dpkg_cmp(&a.kernel.version, &b.kernel.version).then(a.release.cmp(&b.release))
    });
    out
}

fn newest_per_minor(all: &[Available]) -> Vec<Available> {
    let mut best: BTreeMap<String, Available> = BTreeMap::new();
    for a in all {
        if best
            .get(&a.request)
            .is_none_or(|b| dpkg_cmp(&a.package_version, &b.package_version) == Ordering::Greater)
        {
            best.insert(a.request.clone(), a.clone());
        }
    }
    let mut out: Vec<Available> = best.into_values().collect();
    out.sort_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version));
    out
}

/// Whether `release` / `package_version` answer `request` (see [`fetch`]).
fn matches(request: &str, release: &str, package_version: &str) -> bool {
    let r = request.trim();
    if r.is_empty() {
        return false;
    }
    if r == release || format!("{r}-{FLAVOUR}") == release {
        return true;
    }
    if r.split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let up = upstream_version(package_version);
        return up == r || up.starts_with(&format!("{r}."));
    }
    false
}

/// The newest release of `all` answering `request`, or the not-available error.
fn select(request: &str, all: &[Available]) -> Result<Available, KernelError> {
    all.iter()
        .filter(|a| matches(request, &a.release, &a.package_version))
        .max_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version))
        .cloned()
        .ok_or_else(|| not_available(request, all))
}

fn not_available(request: &str, all: &[Available]) -> KernelError {
    let available = newest_per_minor(all)
        .into_iter()
        .map(|a| a.request)
        .collect();
    let minor = major_minor(request.trim());
    let releases = all
        .iter()
        .filter(|a| minor.as_deref() == Some(a.request.as_str()))
        .map(|a| a.release.clone())
        .collect();
    KernelError::NotAvailable {
        request: request.to_string(),
        available,
        releases,
    }
}

/// Debian version comparison (dpkg's `verrevcmp` on epoch, upstream, revision).
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(b'~') => -1,
            Some(c) => c as i32 + 256,
        }
    }
    fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit())
            {
                let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
                if ac != bc {
                    return ac.cmp(&bc);
                }
                i += 1;
                j += 1;
            }
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            let mut first_diff = Ordering::Equal;
            while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
                if first_diff == Ordering::Equal {
                    first_diff = a[i].cmp(&b[j]);
                }
                i += 1;
                j += 1;
            }
            if i < a.len() && a[i].is_ascii_digit() {
                return Ordering::Greater;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                return Ordering::Less;
            }
            if first_diff != Ordering::Equal {
                return first_diff;
            }
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a.trim());
    let (eb, ub, rb) = split(b.trim());
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

// ---------------------------------------------------------------------------
// The cache

/// `meta.json` of a cache entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    request: String,
    release: String,
    package: String,
    package_version: String,
    suite: String,
    /// Path of the vmlinuz inside the package, e.g. "usr/lib/modules/R/vmlinuz".
    vmlinuz_member: String,
    config_package: Option<String>,
    config_member: Option<String>,
    /// Every .deb that was downloaded (and deleted after extraction).
    debs: Vec<DebMeta>,
    /// Seconds since the epoch.
    fetched_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DebMeta {
    package: String,
    version: String,
    file: String,
    size: u64,
    sha256: String,
}

fn read_entry(dir: &Path) -> Option<KernelImage> {
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
    let vmlinuz = dir.join("vmlinuz");
    if !vmlinuz.is_file() {
        return None;
    }
    let config = dir.join("config");
    let config = config.is_file().then_some(config);
    Some(KernelImage {
        request: meta.request,
        release: meta.release,
        package: meta.package,
        package_version: meta.package_version,
        suite: meta.suite,
        vmlinuz,
        config_package: if config.is_some() {
            meta.config_package
        } else {
            None
        },
        config,
        dir: dir.to_path_buf(),
    })
}

fn cached_in(root: &Path) -> Vec<KernelImage> {
    let Ok(rd) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<KernelImage> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_entry(&e.path()))
        .collect();
    out.sort_by(|a, b| {
        dpkg_cmp(&a.package_version, &b.package_version).then(a.release.cmp(&b.release))
    });
    out
}

fn find_cached_in(root: &Path, request: &str) -> Option<KernelImage> {
    let mut k = cached_in(root)
        .into_iter()
        .filter(|k| matches(request, &k.release, &k.package_version))
        .max_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version))?;
    k.request = request.to_string();
    Some(k)
}

/// Files a kernel package may hold, relative to its root (tar wildcards).
const MEMBER_PATTERNS: [&str; 6] = [
    "./boot/vmlinuz-*",
    "./boot/config-*",
    "./usr/lib/modules/*/vmlinuz*",
    "./usr/lib/modules/*/config",
    "./lib/modules/*/vmlinuz*",
    "./lib/modules/*/config",
];

/// Extract the kernel/config members of a .deb into `dest`. tar reports the
/// patterns a package does not have ("Not found in archive", exit status 2);
/// only other errors count.
fn extract_members(deb: &Path, dest: &Path) -> Result<(), KernelError> {
    let mut dpkg = Command::new("dpkg-deb");
    dpkg.arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dpkg_text = display_cmd(&dpkg);
    let mut dpkg_child = dpkg.spawn().map_err(|e| spawn_err(&dpkg_text, e))?;
    let stdout = dpkg_child.stdout.take().expect("piped");
    let mut tar = Command::new("tar");
    tar.arg("-x")
        .arg("-C")
        .arg(dest)
        .arg("--wildcards")
        .args(MEMBER_PATTERNS);
    tar.stdin(stdout)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let tar_text = display_cmd(&tar);
    let tar_out = tar.output().map_err(|e| spawn_err(&tar_text, e))?;
    let mut dpkg_err = String::new();
    if let Some(mut e) = dpkg_child.stderr.take() {
        let _ = e.read_to_string(&mut dpkg_err);
    }
    let dpkg_status = dpkg_child.wait().map_err(|e| spawn_err(&dpkg_text, e))?;
    if !dpkg_status.success() {
        return Err(KernelError::Command {
            command: dpkg_text,
            status: dpkg_status.to_string(),
            stderr: dpkg_err,
        });
    }
    let tar_err = String::from_utf8_lossy(&tar_out.stderr).to_string();
    let real_errors = tar_err.lines().any(|l| {
        !l.contains("Not found in archive")
            && !l.contains("Exiting with failure status due to previous errors")
    });
    if !tar_out.status.success() && real_errors {
        return Err(KernelError::Command {
            command: tar_text,
            status: tar_out.status.to_string(),
            stderr: tar_err,
        });
    }
    Ok(())
}

/// Find the vmlinuz and config of `release` in an extraction directory.
fn locate(x: &Path, release: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let vmlinuz = [
        format!("boot/vmlinuz-{release}"),
        format!("usr/lib/modules/{release}/vmlinuz"),
        format!("lib/modules/{release}/vmlinuz"),
        format!("usr/lib/modules/{release}/vmlinuz.unsigned"),
        format!("lib/modules/{release}/vmlinuz.unsigned"),
    ]
    .iter()
    .find_map(|p| resolve_in(x, &x.join(p)));
    let config = [
        format!("boot/config-{release}"),
        format!("usr/lib/modules/{release}/config"),
        format!("lib/modules/{release}/config"),
    ]
    .iter()
    .find_map(|p| resolve_in(x, &x.join(p)));
    (vmlinuz, config)
}

/// `p` if it is a regular file, following symlinks only inside `root`.
fn resolve_in(root: &Path, p: &Path) -> Option<PathBuf> {
    let mut p = p.to_path_buf();
    for _ in 0..8 {
        let md = fs::symlink_metadata(&p).ok()?;
        if md.is_file() {
            return Some(p);
        }
        if !md.file_type().is_symlink() {
            return None;
        }
        let target = fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

/// Whether `path` starts like a bzImage: "HdrS" at offset 0x202.
pub fn is_bzimage(path: &Path) -> bool {
    let mut buf = [0u8; 0x206];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && &buf[0x202..0x206] == b"HdrS"
}

/// Download, extract and store one release; atomic (temp dir + rename).
fn store(
    apt: &Apt,
    root: &Path,
    request: &str,
    cand: &Available,
    log: &mut dyn FnMut(&str),
) -> Result<KernelImage, KernelError> {
    let started = Instant::now();
    fs::create_dir_all(root).map_err(io_err(root))?;
    clean_stale_temps(root);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-{}-", std::process::id(), cand.release))
        .tempdir_in(root)
        .map_err(io_err(root))?;
    let deb_dir = tmp.path().join("deb");
    let x = tmp.path().join("x");
    let entry = tmp.path().join("entry");
    for d in [&deb_dir, &x, &entry] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    give_to_apt_user(&deb_dir);

    let mut pkgs = vec![(cand.package.clone(), cand.package_version.clone())];
    if let Some(c) = &cand.config_package {
        if *c != cand.package {
            pkgs.push((c.clone(), cand.package_version.clone()));
        }
    }
    let names: Vec<String> = pkgs.iter().map(|(n, v)| format!("{n} {v}")).collect();
    log(&format!(
        "{request}: downloading {} from {}",
        names.join(" + "),
        cand.suite
    ));
    let debs = apt.download(&pkgs, &deb_dir)?;
    let downloaded = started.elapsed();

    let mut deb_meta = Vec::new();
    let mut config_from = None;
    let mut vmlinuz_from = None;
    for (file, name, version) in &debs {
        let size = fs::metadata(file).map_err(io_err(file))?.len();
        let sha256 = sha256_file(file)?;
        let px = x.join(name);
        fs::create_dir_all(&px).map_err(io_err(&px))?;
        extract_members(file, &px)?;
        let (v, c) = locate(&px, &cand.release);
        if vmlinuz_from.is_none() {
            vmlinuz_from = v.map(|p| (p, name.clone(), px.clone()));
        }
        if config_from.is_none() {
            config_from = c.map(|p| (p, name.clone(), px.clone()));
        }
        deb_meta.push(DebMeta {
            package: name.clone(),
            version: version.clone(),
            file: file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            size,
            sha256,
        });
        // The packages are big: drop each as soon as it is read.
        fs::remove_file(file).map_err(io_err(file))?;
    }
    let Some((vsrc, vpkg, vroot)) = vmlinuz_from else {
        return Err(KernelError::Package {
            package: cand.package.clone(),
            version: cand.package_version.clone(),
            what: format!(
                "no vmlinuz for {} inside (looked for {})",
                cand.release,
                MEMBER_PATTERNS.join(", ")
            ),
        });
    };
    if !is_bzimage(&vsrc) {
        return Err(KernelError::Package {
            package: vpkg,
            version: cand.package_version.clone(),
            what: format!("{} is not a bzImage (no \"HdrS\" at 0x202)", vsrc.display()),
        });
    }
    let member = |p: &Path, r: &Path| p.strip_prefix(r).unwrap_or(p).display().to_string();
    let vdst = entry.join("vmlinuz");
    fs::rename(&vsrc, &vdst).map_err(io_err(&vsrc))?;
    let vmlinuz_member = member(&vsrc, &vroot);
    let (config_package, config_member) = match &config_from {
        Some((csrc, cpkg, croot)) => {
            let cdst = entry.join("config");
            fs::rename(csrc, &cdst).map_err(io_err(csrc))?;
            (Some(cpkg.clone()), Some(member(csrc, croot)))
        }
        None => (None, None),
    };
    let meta = Meta {
        request: request.to_string(),
        release: cand.release.clone(),
        package: vpkg,
        package_version: cand.package_version.clone(),
        suite: cand.suite.clone(),
        vmlinuz_member,
        config_package,
        config_member,
        debs: deb_meta,
        fetched_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
    let mp = entry.join("meta.json");
    let mut f = fs::File::create(&mp).map_err(io_err(&mp))?;
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&mp))?;
    drop(f);

    let dest = root.join(&cand.release);
    match fs::rename(&entry, &dest) {
        Ok(()) => {}
        // Another process stored the same release meanwhile: use theirs.
        Err(_) if read_entry(&dest).is_some() => {}
        Err(e) => {
            return Err(KernelError::Io {
                path: dest,
                source: e,
            })
        }
    }
    drop(tmp);
    let mut k = read_entry(&dest).ok_or_else(|| KernelError::Io {
        path: dest.join("meta.json"),
        source: std::io::Error::other("entry unreadable right after it was stored"),
    })?;
    k.request = request.to_string();
    let total: u64 = meta.debs.iter().map(|d| d.size).sum();
    log(&format!(
        "{request}: stored {} in {} ({:.1} MB downloaded in {:.1}s, {:.1}s in all; config: {})",
        k.release,
        k.dir.display(),
        total as f64 / 1e6,
        downloaded.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        k.config_package.as_deref().unwrap_or("none in the archive"),
    ));
    Ok(k)
}

/// Remove `.tmp-PID-…` directories of fetches that died (killed, or exited on
/// a signal without unwinding): their process is gone, or they are more than a
/// day old.
fn clean_stale_temps(root: &Path) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let pid: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let dead = pid.is_some_and(|p| {
            p > 0
                && unsafe { libc::kill(p, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|a| a > LISTS_MAX_AGE);
        if dead || old {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

// ---------------------------------------------------------------------------
// Small helpers

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn sha256_file(p: &Path) -> Result<String, KernelError> {
    let mut f = fs::File::open(p).map_err(io_err(p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Write a file by temp file + rename, mode 0644: apt reads keyrings and
/// sources as the unprivileged `_apt` user (a 0600 keyring makes every
/// signature "invalid").
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), KernelError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut t = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    t.write_all(data).map_err(io_err(path))?;
    t.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(path))?;
    t.persist(path).map_err(|e| KernelError::Io {
        path: path.into(),
        source: e.error,
    })?;
    Ok(())
}

fn display_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn spawn_err(command: &str, e: std::io::Error) -> KernelError {
    KernelError::Command {
        command: command.to_string(),
        status: format!("could not run: {e}"),
        stderr: String::new(),
    }
}

/// Run with LC_ALL=C (apt's messages are parsed), capturing both streams.
fn run_capture(
    cmd: &mut Command,
) -> Result<(std::process::ExitStatus, String, String), KernelError> {
    cmd.env("LC_ALL", "C").stdin(Stdio::null());
    let out = cmd.output().map_err(|e| spawn_err(&display_cmd(cmd), e))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

fn run_checked(cmd: &mut Command) -> Result<String, KernelError> {
    let (status, stdout, stderr) = run_capture(cmd)?;
    if !status.success() {
        return Err(KernelError::Command {
            command: display_cmd(cmd),
            status: status.to_string(),
            stderr,
        });
    }
    Ok(stdout)
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const MIRROR: &str = "http://mirror.invalid/debian";

    #[test]
    fn deb822_picks_the_main_archive_not_security() {
        let text = format!(
            "Types: deb\n\
             # a comment\n\
             URIs: {MIRROR}\n\
             Suites: bookworm bookworm-updates\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             URIs: http://mirror.invalid/debian-security\n\
             Suites: bookworm-security\n\
             Components: main\n"
        );
        let s = parse_deb822(&text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(pick_debian_mirror(&s), Some(vec![MIRROR.to_string()]));
        // Security first in the file changes nothing.
        let rev: Vec<AptSource> = s.iter().rev().cloned().collect();
        assert_eq!(pick_debian_mirror(&rev), Some(vec![MIRROR.to_string()]));
    }

    #[test]
    fn deb822_continuation_lines_disabled_entries_and_third_parties() {
        let text = "Types: deb\nURIs: https://other.invalid/apt\nSuites: nodistro\nComponents: main\n\n\
                    Types: deb\nURIs: http://off.invalid/debian\nSuites: trixie\nComponents: main\nEnabled: no\n\n\
                    Types: deb deb-src\nURIs: http://mirror.invalid/debian/\n  http://mirror2.invalid/debian\n\
                    Suites: trixie\nComponents: main contrib\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 3);
        assert!(!s[1].enabled);
        assert_eq!(s[2].uris.len(), 2);
        assert_eq!(
            pick_debian_mirror(&s),
            Some(vec![
                MIRROR.to_string(),
                "http://mirror2.invalid/debian".to_string()
            ])
        );
    }

    #[test]
    fn one_line_sources() {
        let text = format!(
            "# comment\n\
             deb https://packages.invalid/apt cloud-sdk-bookworm main\n\
             deb-src {MIRROR} bookworm main\n\
             deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://mirror.invalid/debian-security bookworm-security main\n\
             deb [arch=amd64] {MIRROR}/ bookworm main contrib # trailing\n"
        );
        let s = parse_one_line(&text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[2].uris, vec!["http://mirror.invalid/debian-security"]);
        assert_eq!(s[3].components, vec!["main", "contrib"]);
        assert_eq!(pick_debian_mirror(&s), Some(vec![MIRROR.to_string()]));
        assert_eq!(
            pick_debian_mirror(&s[..3]),
            None,
            "deb-src, security and third parties never count"
        );
    }

    #[test]
    fn rendered_sources_use_the_given_mirror_and_all_suites() {
        let t = render_sources(&[MIRROR.to_string()], &[PathBuf::from(SYSTEM_KEYRING)]);
        assert!(t.contains(&format!("URIs: {MIRROR}\n")));
        assert!(t.contains(
            "Suites: bookworm bookworm-backports trixie trixie-backports sid experimental\n"
        ));
        assert!(t.contains(&format!("Signed-By: {SYSTEM_KEYRING}\n")));
        assert!(!t.contains("trusted"));
        let parsed = parse_deb822(&t);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].suites.len(), SUITES.len());
    }

    #[test]
    fn dpkg_version_order() {
        use Ordering::*;
        for (a, b, o) in [
            ("6.1.176-1", "6.1.170-3", Greater),
            ("6.12.117-1", "6.12.95-1~bpo12+1", Greater),
            ("7.3.4-1~bpo13+1", "7.3~rc7-1~exp1", Greater),
            ("7.3~rc7-1~exp1", "7.3-1", Less),
            ("6.19.6-2~bpo13+1", "6.19.6-1~bpo13+1", Greater),
            ("1:1.0-1", "2.0-1", Greater),
            ("1.0~", "1.0", Less),
            ("1.0a", "1.0", Greater),
            ("1.0+b1", "1.0", Greater),
            ("6.1.176-1", "6.1.176-1", Equal),
            ("2025.1", "2023.3+deb12u2", Greater),
        ] {
            assert_eq!(dpkg_cmp(a, b), o, "{a} vs {b}");
            assert_eq!(dpkg_cmp(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn flavour_filtering() {
        assert_eq!(
            classify_package("linux-image-6.1.0-50-amd64"),
            Some((Role::Image, "6.1.0-50-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-image-6.1.0-50-amd64-unsigned"),
            Some((Role::ImageUnsigned, "6.1.0-50-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-binary-unsigned-7.3.4+deb13-amd64"),
            Some((Role::BinaryUnsigned, "7.3.4+deb13-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-base-7.3-amd64"),
            Some((Role::Base, "7.3-amd64".into()))
        );
        for no in [
            "linux-image-6.1.0-50-cloud-amd64",
            "linux-image-6.1.0-50-rt-amd64",
            "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
            "linux-image-6.1.0-50-amd64-dbg",
            "linux-image-amd64",
            "linux-image-cloud-amd64",
            "linux-image-amd64-signed-template",
            "linux-base-amd64",
            "linux-binary-7.3-rt-amd64",
            "linux-headers-6.1.0-50-amd64",
            "linux-image-6.1.0-50-arm64",
        ] {
            assert_eq!(classify_package(no), None, "{no}");
        }
    }

    fn madison_fixture() -> String {
        // Shaped like `apt-cache madison` output; the URI is a placeholder.
        let rows = [
            ("linux-image-6.1.0-47-amd64", "6.1.170-3", "bookworm"),
            ("linux-image-6.1.0-50-amd64", "6.1.176-1", "bookworm"),
            (
                "linux-image-6.1.0-50-amd64-unsigned",
                "6.1.176-1",
                "bookworm",
            ),
            (
                "linux-image-6.12.95+deb12-amd64",
                "6.12.95-1~bpo12+1",
                "bookworm-backports",
            ),
            ("linux-image-6.12.117+deb13-amd64", "6.12.117-1", "trixie"),
            ("linux-image-6.12.117+deb13-amd64", "6.12.117-1", "sid"),
            (
                "linux-image-6.18.15+deb13-amd64",
                "6.18.15-1~bpo13+1",
                "trixie-backports",
            ),
            // split packaging: linux-image is a meta package, base (config) gone
            (
                "linux-image-6.19.14+deb13-amd64",
                "6.19.14-1~bpo13+1",
                "trixie-backports",
            ),
            (
                "linux-binary-6.19.14+deb13-amd64",
                "6.19.14-1~bpo13+1",
                "trixie-backports",
            ),
            (
                "linux-binary-6.19.8+deb13-amd64",
                "6.19.8-1~bpo13+1",
                "trixie-backports",
            ),
            // 7.3: a release candidate in experimental, a stable one in backports
            ("linux-binary-7.3-amd64", "7.3~rc7-1~exp1", "experimental"),
            ("linux-base-7.3-amd64", "7.3~rc7-1~exp1", "experimental"),
            (
                "linux-binary-7.3.4+deb13-amd64",
                "7.3.4-1~bpo13+1",
                "trixie-backports",
            ),
            (
                "linux-binary-unsigned-7.3.4+deb13-amd64",
                "7.3.4-1~bpo13+1",
                "trixie-backports",
            ),
            (
                "linux-base-7.3.4+deb13-amd64",
                "7.3.4-1~bpo13+1",
                "trixie-backports",
            ),
            (
                "linux-image-7.3.4+deb13-amd64",
                "7.3.4-1~bpo13+1",
                "trixie-backports",
            ),
            // only unsigned left
            (
                "linux-binary-unsigned-7.2.9+deb13-amd64",
                "7.2.9-1~bpo13+1",
                "trixie-backports",
            ),
        ];
        rows.iter()
            .map(|(n, v, s)| format!("{n} | {v:>12} | {MIRROR} {s}/main amd64 Packages\n"))
            .collect()
    }

    fn fixture_releases() -> Vec<Available> {
        let pv = parse_madison(&madison_fixture());
        let names: Vec<&str> = pv.iter().map(|p| p.name.as_str()).collect();
        assert!(names.iter().all(|n| classify_package(n).is_some()));
        candidates(&pv).into_iter().map(|c| c.available()).collect()
    }

    #[test]
    fn madison_parsing() {
        let pv = parse_madison(&madison_fixture());
        assert_eq!(pv.len(), 17);
        assert_eq!(
            pv[3],
            PkgVersion {
                name: "linux-image-6.12.95+deb12-amd64".into(),
                version: "6.12.95-1~bpo12+1".into(),
                suite: "bookworm-backports".into()
            }
        );
        assert!(parse_madison("garbage\n\n a | b\n").is_empty());
    }

    #[test]
    fn package_choice_per_release() {
        let all = fixture_releases();
        let by = |r: &str| {
            all.iter()
                .find(|a| a.release == r)
                .unwrap_or_else(|| panic!("{r} in {all:#?}"))
        };
        let k = by("6.1.0-50-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            (
                "linux-image-6.1.0-50-amd64",
                Some("linux-image-6.1.0-50-amd64")
            )
        );
        let k = by("6.12.117+deb13-amd64");
        assert_eq!(
            k.suite, "trixie",
            "same version in trixie and sid: the more stable suite"
        );
        let k = by("6.19.14+deb13-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            ("linux-binary-6.19.14+deb13-amd64", None)
        );
        let k = by("7.3.4+deb13-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            (
                "linux-binary-7.3.4+deb13-amd64",
                Some("linux-base-7.3.4+deb13-amd64")
            )
        );
        let k = by("7.2.9+deb13-amd64");
        assert_eq!(k.package, "linux-binary-unsigned-7.2.9+deb13-amd64");
    }

    #[test]
    fn newest_per_major_minor() {
        let all = fixture_releases();
        let v = newest_per_minor(&all);
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|a| (a.request.as_str(), a.release.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("6.1", "6.1.0-50-amd64"),
                ("6.12", "6.12.117+deb13-amd64"),
                ("6.18", "6.18.15+deb13-amd64"),
                ("6.19", "6.19.14+deb13-amd64"),
                ("7.2", "7.2.9+deb13-amd64"),
                ("7.3", "7.3.4+deb13-amd64"),
            ]
        );
    }

    #[test]
    fn request_selection() {
        let all = fixture_releases();
        let sel = |r: &str| select(r, &all).map(|a| a.release);
        assert_eq!(sel("6.1").unwrap(), "6.1.0-50-amd64");
        assert_eq!(sel("6.12").unwrap(), "6.12.117+deb13-amd64");
        assert_eq!(sel("6.12.95").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.12.95+deb12-amd64").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.12.95+deb12").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.1.0-47-amd64").unwrap(), "6.1.0-47-amd64");
        assert_eq!(sel("6.1.170").unwrap(), "6.1.0-47-amd64");
        assert_eq!(sel("6.19").unwrap(), "6.19.14+deb13-amd64");
        assert_eq!(sel("6.19.8").unwrap(), "6.19.8+deb13-amd64");
        assert_eq!(
            sel("7.3").unwrap(),
            "7.3.4+deb13-amd64",
            "7.3.4 is newer than 7.3~rc7"
        );
        assert_eq!(sel("7.3-amd64").unwrap(), "7.3-amd64");
        assert_eq!(sel("7").unwrap(), "7.3.4+deb13-amd64");
        assert!(sel("6.1.17").is_err(), "6.1.17 is not a prefix of 6.1.170");
        assert!(sel("6.12.117+deb13-cloud-amd64").is_err());
        assert!(sel("").is_err());
    }

    #[test]
    fn not_available_lists_what_is() {
        let all = fixture_releases();
        let e = select("6.5", &all).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 6.5 is not available; available: 6.1, 6.12, 6.18, 6.19, 7.2, 7.3"
        );
        let e = select("6.12.200", &all).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("kernel 6.12.200 is not available; available: 6.1, 6.12, "),
            "{msg}"
        );
        assert!(
            msg.contains("releases of that version: 6.12.95+deb12-amd64, 6.12.117+deb13-amd64"),
            "{msg}"
        );
    }

    #[test]
    fn upstream_and_minor() {
        assert_eq!(upstream_version("6.19.14-1~bpo13+1"), "6.19.14");
        assert_eq!(upstream_version("7.3~rc7-1~exp1"), "7.3");
        assert_eq!(upstream_version("6.1.176-1"), "6.1.176");
        assert_eq!(major_minor("6.12.117+deb13-amd64").as_deref(), Some("6.12"));
        assert_eq!(major_minor("7.3-amd64").as_deref(), Some("7.3"));
        assert_eq!(major_minor("7"), None);
        assert_eq!(major_minor("amd64"), None);
    }

    fn fake_entry(root: &Path, release: &str, version: &str, with_config: bool) {
        let d = root.join(release);
        fs::create_dir_all(&d).unwrap();
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        fs::write(d.join("vmlinuz"), img).unwrap();
        if with_config {
            fs::write(d.join("config"), "CONFIG_BPF=y\n").unwrap();
        }
        let meta = Meta {
            request: major_minor(release).unwrap(),
            release: release.into(),
            package: format!("linux-image-{release}"),
            package_version: version.into(),
            suite: "trixie".into(),
            vmlinuz_member: format!("boot/vmlinuz-{release}"),
            config_package: with_config.then(|| format!("linux-image-{release}")),
            config_member: with_config.then(|| format!("boot/config-{release}")),
            debs: vec![],
            fetched_at: 0,
        };
        fs::write(d.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    }

    #[test]
    fn cache_listing_and_lookup() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fake_entry(root, "6.12.117+deb13-amd64", "6.12.117-1", true);
        fake_entry(root, "6.1.0-50-amd64", "6.1.176-1", true);
        fake_entry(root, "6.12.95+deb12-amd64", "6.12.95-1~bpo12+1", true);
        fake_entry(root, "7.0.13+deb13-amd64", "7.0.13-1~bpo13+1", false);
        // A half entry (no meta.json), an interrupted fetch and the apt state are not entries.
        fs::create_dir_all(root.join("6.16.12+deb13-amd64")).unwrap();
        fs::create_dir_all(root.join(".tmp-6.17.13+deb13-amd64-x")).unwrap();
        fs::create_dir_all(root.join("apt/lists")).unwrap();
        let c = cached_in(root);
        let rels: Vec<&str> = c.iter().map(|k| k.release.as_str()).collect();
        assert_eq!(
            rels,
            vec![
                "6.1.0-50-amd64",
                "6.12.95+deb12-amd64",
                "6.12.117+deb13-amd64",
                "7.0.13+deb13-amd64"
            ]
        );
        assert!(is_bzimage(&c[0].vmlinuz));
        assert_eq!(c[3].config, None);
        let k = find_cached_in(root, "6.12").unwrap();
        assert_eq!(
            (k.request.as_str(), k.release.as_str()),
            ("6.12", "6.12.117+deb13-amd64")
        );
        assert_eq!(
            find_cached_in(root, "6.12.95+deb12").unwrap().release,
            "6.12.95+deb12-amd64"
        );
        assert!(find_cached_in(root, "6.16").is_none());
        // Cached requests are answered without apt.
        let r = fetch_in(root, &["6.1".to_string(), "7.0".to_string()], &mut |_| {});
        assert_eq!(r[0].as_ref().unwrap().release, "6.1.0-50-amd64");
        assert_eq!(r[1].as_ref().unwrap().release, "7.0.13+deb13-amd64");
    }

    #[test]
    fn stale_temp_dirs_of_dead_fetches_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let mine = t
            .path()
            .join(format!(".tmp-{}-6.1.0-50-amd64-abc", std::process::id()));
        // pid_max is at most 2^22, so this pid does not exist.
        let dead = t.path().join(".tmp-99999999-6.1.0-50-amd64-abc");
        let entry = t.path().join("6.1.0-50-amd64");
        for d in [&mine, &dead, &entry] {
            fs::create_dir_all(d).unwrap();
        }
        clean_stale_temps(t.path());
        assert!(mine.exists() && entry.exists());
        assert!(!dead.exists());
    }

    #[test]
    fn locate_finds_old_and_new_layouts() {
        let t = tempfile::tempdir().unwrap();
        let x = t.path();
        let r = "7.3.4+deb13-amd64";
        fs::create_dir_all(x.join(format!("usr/lib/modules/{r}"))).unwrap();
        fs::write(x.join(format!("usr/lib/modules/{r}/vmlinuz")), b"k").unwrap();
        fs::write(x.join(format!("usr/lib/modules/{r}/config")), b"c").unwrap();
        let (v, c) = locate(x, r);
        assert!(v.unwrap().ends_with("vmlinuz") && c.unwrap().ends_with("config"));
        let r = "6.1.0-50-amd64";
        fs::create_dir_all(x.join("boot")).unwrap();
        fs::write(x.join(format!("boot/vmlinuz-{r}")), b"k").unwrap();
        let (v, c) = locate(x, r);
        assert!(v.is_some() && c.is_none());
    }

    /// The keyring fallback, for real: start from a keyring that verifies
    /// bookworm only (the bookworm release key), so every other suite fails
    /// verification; the newest debian-archive-keyring is then taken from
    /// bookworm, and all suites verify.
    #[test]
    fn keyring_fallback_for_real() {
        let t = tempfile::tempdir().unwrap();
        let mut apt = Apt::new(t.path());
        apt.base_keyring = PathBuf::from("/usr/share/keyrings/debian-archive-bookworm-stable.gpg");
        apt.ensure_lists(true).unwrap();
        assert!(apt.extra_keyring().is_file());
        let sources = fs::read_to_string(apt.sources_path()).unwrap();
        assert!(
            sources.contains(&apt.extra_keyring().display().to_string()),
            "{sources}"
        );
        let lists: Vec<String> = fs::read_dir(apt.lists_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        for s in SUITES {
            assert!(
                lists
                    .iter()
                    .any(|l| l.contains(&format!("_dists_{s}_main_binary-amd64_Packages"))),
                "{s} not in {lists:?}"
            );
        }
        assert!(apt.releases().unwrap().iter().any(|a| a.request == "6.1"));
    }

    /// Fetches into a private cache so the test does not depend on (or
    /// change) the user's; the apt lists are downloaded too.
    #[test]
    fn fetch_6_1_for_real() {
        let t = tempfile::tempdir().unwrap();
        let r = fetch_in(t.path(), &["6.1".to_string()], &mut |l| eprintln!("{l}"));
        let k = r.into_iter().next().unwrap().unwrap();
        assert!(k.release.starts_with("6.1."), "{}", k.release);
        let bytes = fs::read(&k.vmlinuz).unwrap();
        assert_eq!(&bytes[0x202..0x206], b"HdrS");
        let config = fs::read_to_string(k.config.as_ref().expect("6.1 ships its config")).unwrap();
        assert!(config.contains("CONFIG_BPF=y"));
        // No .deb or temp dir is left behind.
        let leftovers: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "apt" && *n != k.release)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // A second fetch is answered from the cache.
        let again = fetch_in(t.path(), &["6.1".to_string()], &mut |_| {})
            .pop()
            .unwrap()
            .unwrap();
        assert_eq!(again.dir, k.dir);
    }
}
