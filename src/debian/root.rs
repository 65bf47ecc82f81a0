//! Private roots of Debian packages: a package at a version (or the newest in
//! a suite) **and its whole dependency closure**, extracted into a directory
//! of the cache and run from there, never installed system-wide (issue 11:
//! bpftrace as a loader-like client; other QEMU versions for the matrix).
//!
//! - **Which version.** [`Root::ensure`]`(package, want)` takes a suite of
//!   [`SUITES`] ("the newest `package` in that suite") or a version: an exact
//!   Debian version (`0.23.2-1`, `1:11.1.3+ds-1`), the same without its epoch,
//!   or an upstream version (`0.23.2`, `11.1.3`, which also matches
//!   `11.1.3+ds-…`). When several versions match, the newest wins (ties: the
//!   most stable suite). A version Debian does not have is
//!   [`RootError::NoVersion`], which lists the versions it has, per suite.
//! - **The closure** is computed by apt itself
//!   ([`super::apt::Apt::download_closure`]) against an *empty* dpkg status,
//!   so everything down to libc6 is in it: `apt-get install --download-only
//!   --no-install-recommends -t SUITE package=version` into a private
//!   archives directory, with only the suite and what it builds on in the
//!   sources (a backport takes its base release too; a trixie package never
//!   takes a sid library), the mirror, lists, keyrings and apt.conf of the
//!   private apt that the kernels use. Depends and Pre-Depends only, no
//!   Recommends. Nothing is configured: no maintainer script runs, so
//!   alternatives and generated files (ld.so.cache, …) do not exist in a root.
//! - **Extraction.** Every .deb of the closure is extracted with `dpkg-deb
//!   -x` into the root. Then the root is made self-contained: the merged-/usr
//!   links a Debian system has (`lib`, `lib64`, `bin`, `sbin` → `usr/…`) are
//!   added where the packages did not make a directory of that name, and every
//!   absolute symlink is rewritten to point inside the root (bookworm's
//!   `/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…` would otherwise
//!   name the host's loader).
//! - **Cache.** `<cache>/roots/<package>-<version>/` (a `:` of an epoch is
//!   written `%3a`, as apt names its files), keyed by the exact version, with
//!   `meta.json` at its top: the request, the suite, every package of the
//!   closure with its version, size and sha256, the download and root sizes,
//!   and the time it took. It is built in `<cache>/roots/.tmp-PID-…` and
//!   renamed into place, so an interrupted build never leaves a half root; the
//!   temp directories of dead processes are removed by the next build. The
//!   .deb files are deleted with the temp directory. A request for an exact or
//!   upstream version that is cached is answered without apt; a suite request
//!   consults the lists (refreshed once a day) for the newest version first.
//! - **Running.** [`Root::command`] runs a binary of the root through the
//!   root's own dynamic loader and libraries:
//!   `<root>/lib64/ld-linux-x86-64.so.2 --inhibit-cache --library-path
//!   <root>/lib/x86_64-linux-gnu:<root>/usr/lib/x86_64-linux-gnu:… --argv0 NAME
//!   <root>/usr/bin/NAME`, so a trixie or sid package runs on a bookworm
//!   machine. `--inhibit-cache` keeps the host's `/etc/ld.so.cache` out; the
//!   loader still falls back to the host's default directories for a library
//!   the root lacks, which [`Root::foreign_libraries`] detects. Programs that
//!   find data or plugins through compiled-in paths (QEMU's `-L` firmware
//!   directory and module directory) need those paths passed in; see
//!   [`Root::path`].

use super::apt::{suite_rank, Apt, DebFile, PkgVersion, LISTS_MAX_AGE, SUITES};
use super::deb::{self, version_cmp};
use super::{
    clean_stale_temps, io_err, now_secs, sha256_file, temp_entry, write_synced, DebianError,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The multiarch triplet of the roots' libraries.
const TRIPLET: &str = "x86_64-linux-gnu";

/// Where the dynamic loader may be, relative to the root, in order.
const LOADERS: [&str; 4] = [
    "lib64/ld-linux-x86-64.so.2",
    "usr/lib64/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
];

/// `<cache>/roots` (`$PROBECONF_CACHE`, `$XDG_CACHE_HOME/probeconf` or `~/.cache/probeconf`).
pub fn roots_dir() -> PathBuf {
    crate::cache::dir().join("roots")
}

/// What version of a package to root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The newest version in this suite (one of [`SUITES`]).
    Suite(String),
    /// An exact Debian version, or an upstream one (see the module docs).
    Version(String),
}

impl Want {
    /// A suite of [`SUITES`] is a suite; anything else a version.
    pub fn parse(s: &str) -> Want {
        let s = s.trim();
        if SUITES.contains(&s) {
            Want::Suite(s.to_string())
        } else {
            Want::Version(s.to_string())
        }
    }
}

impl std::fmt::Display for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Want::Suite(s) => write!(f, "the newest in {s}"),
            Want::Version(v) => write!(f, "{v}"),
        }
    }
}

/// Why a root could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// No suite serves the package at all.
    #[error("{package} is not in Debian's archive (suites {})", SUITES.join(", "))]
    NoPackage { package: String },
    /// The package exists, not at that version (or not in that suite).
    #[error("{package} {wanted} is not in Debian's archive; it has {}", per_suite(.versions))]
    NoVersion {
        package: String,
        wanted: String,
        /// (suite, versions), most stable suite first.
        versions: Vec<(String, Vec<String>)>,
    },
    /// Debian's archive: no mirror on this machine, apt failed, …
    #[error(transparent)]
    Debian(#[from] DebianError),
}

fn per_suite(versions: &[(String, Vec<String>)]) -> String {
    versions
        .iter()
        .map(|(s, v)| format!("{s}: {}", v.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One package of a root's closure, as `meta.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPackage {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// The .deb's file name (deleted after extraction).
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// `meta.json` of a root.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    package: String,
    version: String,
    suite: String,
    /// What was asked for: a suite or a version.
    request: String,
    /// Every package of the closure, by name.
    packages: Vec<RootPackage>,
    /// Sum of the .deb sizes.
    download_bytes: u64,
    /// [`Root::size_bytes`] right after the build.
    root_bytes: u64,
    /// Wall time of download, and of download + extraction.
    download_secs: f64,
    build_secs: f64,
    /// Seconds since the epoch.
    fetched_at: u64,
}

/// A private root: a package and its dependency closure, extracted.
#[derive(Debug, Clone)]
pub struct Root {
    /// The package asked for.
    pub package: String,
    /// Its exact Debian version.
    pub version: String,
    /// The suite it came from.
    pub suite: String,
    /// The root directory (`<cache>/roots/<package>-<version>`).
    pub dir: PathBuf,
    /// The closure: every package with its exact version, sorted by name.
    pub packages: Vec<RootPackage>,
    /// Sum of the sizes of the .deb files.
    pub download_bytes: u64,
    /// Seconds the download took, and download + extraction (when it was built).
    pub download_secs: f64,
    pub build_secs: f64,
}

impl Root {
    /// The root of `package` at `want` (a suite of [`SUITES`] or a version,
    /// see [`Want::parse`]), built if it is not in the cache.
    pub fn ensure(package: &str, want: &str) -> Result<Root, RootError> {
        Self::ensure_with_log(package, want, &mut |_| {})
    }

    /// [`Root::ensure`], reporting progress (one line per step) to `log`.
    pub fn ensure_with_log(
        package: &str,
        want: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<Root, RootError> {
        ensure_in(
            &roots_dir(),
            &Apt::shared(),
            package,
            &Want::parse(want),
            log,
        )
    }

    /// The roots in the cache.
    pub fn cached() -> Vec<Root> {
        cached_in(&roots_dir())
    }

    /// `rel` inside the root (a leading `/` is ignored): `root.path("/usr/share/qemu")`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.dir.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    /// The root's dynamic loader, e.g. `<root>/lib64/ld-linux-x86-64.so.2`:
    /// the first of the usual places that leads, through symlinks that stay
    /// inside the root, to a file (`None`: the closure has no libc6).
    pub fn loader(&self) -> Option<PathBuf> {
        LOADERS
            .iter()
            .map(|l| self.dir.join(l))
            .find(|p| deb::resolve_in(&self.dir, p).is_some())
    }

    /// The library directories of the root, in search order: the multiarch
    /// and plain `lib` directories, then those the root's
    /// `etc/ld.so.conf.d/*.conf` name; only those that exist.
    pub fn library_path(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [
            format!("lib/{TRIPLET}"),
            format!("usr/lib/{TRIPLET}"),
            "lib".to_string(),
            "usr/lib".to_string(),
        ]
        .iter()
        .map(|d| self.dir.join(d))
        .collect();
        let conf = self.dir.join("etc/ld.so.conf.d");
        let mut files: Vec<PathBuf> = fs::read_dir(&conf)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "conf"))
        {
            let text = fs::read_to_string(f).unwrap_or_default();
            for line in text.lines() {
                let l = line.split('#').next().unwrap_or("").trim();
                if l.starts_with('/') {
                    dirs.push(self.path(l));
                }
            }
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for d in dirs {
            if d.is_dir() && !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// `binary` inside the root: a path (`usr/lib/qemu/x`, `/usr/bin/x`), or
    /// a name looked up in `usr/bin`, `usr/sbin`, `bin`, `sbin`.
    pub fn binary(&self, binary: &str) -> PathBuf {
        if binary.contains('/') {
            return self.path(binary);
        }
        ["usr/bin", "usr/sbin", "bin", "sbin"]
            .iter()
            .map(|d| self.dir.join(d).join(binary))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.dir.join("usr/bin").join(binary))
    }

    /// The root's loader and its options: `--inhibit-cache --library-path …`.
    fn loader_with_options(&self) -> Option<(PathBuf, Vec<String>)> {
        let loader = self.loader()?;
        let lp: Vec<String> = self
            .library_path()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Some((
            loader,
            vec![
                "--inhibit-cache".into(),
                "--library-path".into(),
                lp.join(":"),
            ],
        ))
    }

    /// A command that runs `binary` (see [`Root::binary`]) of the root with
    /// the root's loader and libraries (see the module docs); argv[0] is the
    /// binary's name. Without a loader in the root (no libc6 in the closure)
    /// the binary is run directly.
    pub fn command(&self, binary: &str) -> Command {
        let bin = self.binary(binary);
        let Some((loader, opts)) = self.loader_with_options() else {
            return Command::new(bin);
        };
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.to_string());
        let mut cmd = Command::new(loader);
        cmd.args(opts).arg("--argv0").arg(name).arg(bin);
        cmd
    }

    /// Write an executable `sh` script `<root>/.probeconf/bin/<name>` that
    /// runs [`Root::command`]`(binary)` with `args` before the caller's and
    /// `env` set: a program path for tools that take one (`probeconf matrix
    /// --qemu PATH`). Rewritten on every call (atomically).
    pub fn wrapper(
        &self,
        binary: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> Result<PathBuf, DebianError> {
        use std::os::unix::fs::PermissionsExt;
        let cmd = self.command(binary);
        let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let mut text = format!(
            "#!/bin/sh\n# Generated by probeconf (src/debian/root.rs): {binary} of {} {} ({}), run with the root's own loader and libraries.\n",
            self.package, self.version, self.suite
        );
        for (k, v) in env {
            text.push_str(&format!("{k}={}\nexport {k}\n", q(v.as_ref())));
        }
        text.push_str("exec");
        for a in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
            text.push(' ');
            text.push_str(&q(a));
        }
        for a in args {
            text.push(' ');
            text.push_str(&q(a.as_ref()));
        }
        text.push_str(" \"$@\"\n");
        let name = Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.to_string());
        let path = self.dir.join(".probeconf/bin").join(name);
        super::write_atomic(&path, text.as_bytes())?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_err(&path))?;
        Ok(path)
    }

    /// [`Root::wrapper`] for `qemu-system-x86_64` of a QEMU root: the root's
    /// firmware and data (`-L <root>/usr/share/qemu -L <root>/usr/share/seabios`;
    /// QEMU's compiled-in paths would take the host's) and its modules
    /// (`QEMU_MODULE_DIR=<root>/usr/lib/x86_64-linux-gnu/qemu`; the host's
    /// modules of another build are refused, so a display, audio or device
    /// that is a module would be missing).
    pub fn qemu_wrapper(&self) -> Result<PathBuf, DebianError> {
        let p = |r: &str| self.path(r).display().to_string();
        self.wrapper(
            "qemu-system-x86_64",
            &[
                "-L".into(),
                p("usr/share/qemu"),
                "-L".into(),
                p("usr/share/seabios"),
            ],
            &[("QEMU_MODULE_DIR", p(&format!("usr/lib/{TRIPLET}/qemu")))],
        )
    }

    /// The shared libraries `binary` would load from outside the root (the
    /// loader's `--list`; empty: every one comes from the root).
    pub fn foreign_libraries(&self, binary: &str) -> Result<Vec<String>, DebianError> {
        let Some((loader, opts)) = self.loader_with_options() else {
            return Ok(Vec::new());
        };
        let mut list = Command::new(loader);
        list.args(opts).arg("--list").arg(self.binary(binary));
        let out = super::run_checked(&mut list)?;
        let root = self.dir.display().to_string();
        Ok(out
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                // "libfoo.so.1 => /path (0x…)", or "/path (0x…)" for the loader;
                // "linux-vdso.so.1 (0x…)" has no path.
                let path = match l.split_once("=>") {
                    Some((_, r)) => r.split_whitespace().next()?,
                    None => l.split_whitespace().next().filter(|p| p.starts_with('/'))?,
                };
                (!path.starts_with(&root)).then(|| l.to_string())
            })
            .collect())
    }

    /// The apparent size of every file in the root (symlinks not followed).
    pub fn size_bytes(&self) -> u64 {
        tree_size(&self.dir)
    }
}

fn tree_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// The directory name of a root: `<package>-<version>`, `:` written `%3a`.
fn entry_name(package: &str, version: &str) -> String {
    format!("{package}-{}", version.replace(':', "%3a"))
}

/// Whether the Debian version `v` answers `want` (exact, without epoch, or
/// upstream; see the module docs).
fn version_matches(want: &str, v: &str) -> bool {
    let no_epoch = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let upstream = no_epoch
        .rsplit_once('-')
        .map(|(u, _)| u)
        .unwrap_or(no_epoch);
    want == v
        || want == no_epoch
        || want == upstream
        || upstream
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with(['+', '~']))
}

/// The (version, suite) of `versions` (one package's madison rows) that
/// answers `want`.
fn choose(
    package: &str,
    want: &Want,
    versions: &[PkgVersion],
) -> Result<(String, String), RootError> {
    if versions.is_empty() {
        return Err(RootError::NoPackage {
            package: package.to_string(),
        });
    }
    let best = versions
        .iter()
        .filter(|v| match want {
            Want::Suite(s) => v.suite == *s,
            Want::Version(w) => version_matches(w, &v.version),
        })
        .max_by(|a, b| {
            version_cmp(&a.version, &b.version)
                .then_with(|| suite_rank(&b.suite).cmp(&suite_rank(&a.suite)))
        });
    match best {
        Some(v) => Ok((v.version.clone(), v.suite.clone())),
        None => {
            let mut by: Vec<(String, Vec<String>)> = Vec::new();
            let mut sorted = versions.to_vec();
            sorted.sort_by(|a, b| {
                suite_rank(&a.suite)
                    .cmp(&suite_rank(&b.suite))
                    .then_with(|| version_cmp(&b.version, &a.version))
            });
            for v in sorted {
                match by.iter_mut().find(|(s, _)| *s == v.suite) {
                    Some((_, l)) if !l.contains(&v.version) => l.push(v.version),
                    Some(_) => {}
                    None => by.push((v.suite, vec![v.version])),
                }
            }
            Err(RootError::NoVersion {
                package: package.to_string(),
                wanted: want.to_string(),
                versions: by,
            })
        }
    }
}

fn read_root(dir: &Path) -> Option<Root> {
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
    Some(Root {
        package: meta.package,
        version: meta.version,
        suite: meta.suite,
        dir: dir.to_path_buf(),
        packages: meta.packages,
        download_bytes: meta.download_bytes,
        download_secs: meta.download_secs,
        build_secs: meta.build_secs,
    })
}

fn cached_in(roots: &Path) -> Vec<Root> {
    let Ok(rd) = fs::read_dir(roots) else {
        return Vec::new();
    };
    let mut out: Vec<Root> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_root(&e.path()))
        .collect();
    out.sort_by(|a, b| {
        a.package
            .cmp(&b.package)
            .then_with(|| version_cmp(&a.version, &b.version))
    });
    out
}

pub(crate) fn ensure_in(
    roots: &Path,
    apt: &Apt,
    package: &str,
    want: &Want,
    log: &mut dyn FnMut(&str),
) -> Result<Root, RootError> {
    // A version already rooted needs no apt at all.
    if let Want::Version(w) = want {
        let hit = cached_in(roots)
            .into_iter()
            .filter(|r| r.package == package && version_matches(w, &r.version))
            .max_by(|a, b| version_cmp(&a.version, &b.version));
        if let Some(r) = hit {
            log(&format!(
                "{package} {w}: cached {} ({})",
                r.version,
                r.dir.display()
            ));
            return Ok(r);
        }
    }
    apt.ensure_lists(false)?;
    let versions: Vec<PkgVersion> = apt
        .madison(&[package.to_string()])?
        .into_iter()
        .filter(|v| v.name == package)
        .collect();
    let (version, suite) = choose(package, want, &versions)?;
    let dest = roots.join(entry_name(package, &version));
    if let Some(r) = read_root(&dest) {
        log(&format!(
            "{package} {want}: cached {version} ({})",
            dest.display()
        ));
        return Ok(r);
    }
    build(roots, apt, package, &version, &suite, want, log)
}

fn build(
    roots: &Path,
    apt: &Apt,
    package: &str,
    version: &str,
    suite: &str,
    want: &Want,
    log: &mut dyn FnMut(&str),
) -> Result<Root, RootError> {
    let started = Instant::now();
    clean_stale_temps(roots, LISTS_MAX_AGE);
    let name = entry_name(package, version);
    let tmp = temp_entry(roots, &name)?;
    let work = tmp.path().join("work");
    let tree = tmp.path().join("root");
    fs::create_dir_all(&tree).map_err(io_err(&tree))?;
    log(&format!(
        "{package} {want}: resolving the closure of {package} {version} ({suite})"
    ));
    let debs: Vec<DebFile> = apt.download_closure(package, Some(version), suite, &work)?;
    let download_secs = started.elapsed().as_secs_f64();
    let download_bytes: u64 = debs.iter().map(|d| d.size).sum();
    log(&format!(
        "{package} {version}: {} packages, {:.1} MB downloaded in {download_secs:.1}s; extracting",
        debs.len(),
        download_bytes as f64 / 1e6
    ));
    let mut packages = Vec::new();
    for d in &debs {
        packages.push(RootPackage {
            package: d.package.clone(),
            version: d.version.clone(),
            architecture: d.architecture.clone(),
            file: d
                .file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            size: d.size,
            sha256: sha256_file(&d.file)?,
        });
        deb::extract(&d.file, &tree)?;
        // Drop each .deb as soon as it is extracted (QEMU's closure is big).
        fs::remove_file(&d.file).map_err(io_err(&d.file))?;
    }
    if !packages
        .iter()
        .any(|p| p.package == package && p.version == version)
    {
        return Err(DebianError::Package {
            package: package.to_string(),
            version: version.to_string(),
            what: format!(
                "apt downloaded a closure without it: {}",
                packages
                    .iter()
                    .map(|p| format!("{} {}", p.package, p.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into());
    }
    make_self_contained(&tree)?;
    let root_bytes = tree_size(&tree);
    let meta = Meta {
        package: package.to_string(),
        version: version.to_string(),
        suite: suite.to_string(),
        request: want.to_string(),
        packages,
        download_bytes,
        root_bytes,
        download_secs,
        build_secs: started.elapsed().as_secs_f64(),
        fetched_at: now_secs(),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
    write_synced(&tree.join("meta.json"), &json)?;
    let dest = roots.join(&name);
    match fs::rename(&tree, &dest) {
        Ok(()) => {}
        // Another process built the same root meanwhile: use theirs.
        Err(_) if read_root(&dest).is_some() => {}
        Err(e) => {
            return Err(DebianError::Io {
                path: dest,
                source: e,
            }
            .into())
        }
    }
    drop(tmp);
    let r = read_root(&dest).ok_or_else(|| DebianError::Io {
        path: dest.join("meta.json"),
        source: std::io::Error::other("root unreadable right after it was built"),
    })?;
    log(&format!(
        "{package} {version}: root {} ({} packages, {:.1} MB, built in {:.1}s)",
        r.dir.display(),
        r.packages.len(),
        root_bytes as f64 / 1e6,
        r.build_secs
    ));
    Ok(r)
}

/// Add the merged-/usr links and rewrite absolute symlinks to stay inside
/// `tree` (see the module docs).
fn make_self_contained(tree: &Path) -> Result<(), DebianError> {
    for d in ["lib", "lib64", "bin", "sbin"] {
        let top = tree.join(d);
        if fs::symlink_metadata(&top).is_err() && tree.join("usr").join(d).is_dir() {
            std::os::unix::fs::symlink(format!("usr/{d}"), &top).map_err(io_err(&top))?;
        }
    }
    relink_absolute(tree, 0)
}

/// Rewrite the absolute symlinks under `dir`, `depth` levels below the root.
fn relink_absolute(dir: &Path, depth: usize) -> Result<(), DebianError> {
    let rd = fs::read_dir(dir).map_err(io_err(dir))?;
    for e in rd.flatten() {
        let p = e.path();
        let t = e.file_type().map_err(io_err(&p))?;
        if t.is_dir() {
            relink_absolute(&p, depth + 1)?;
        } else if t.is_symlink() {
            let target = fs::read_link(&p).map_err(io_err(&p))?;
            if let Ok(rel) = target.strip_prefix("/") {
                let mut new = PathBuf::new();
                for _ in 0..depth {
                    new.push("..");
                }
                new.push(rel);
                fs::remove_file(&p).map_err(io_err(&p))?;
                std::os::unix::fs::symlink(&new, &p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, version: &str, suite: &str) -> PkgVersion {
        PkgVersion {
            name: name.into(),
            version: version.into(),
            suite: suite.into(),
        }
    }

    fn qemu_versions() -> Vec<PkgVersion> {
        vec![
            pv(
                "qemu-system-x86",
                "1:11.1.3+ds-2~bpo13+1",
                "trixie-backports",
            ),
            pv("qemu-system-x86", "1:11.1.3+ds-1", "sid"),
            pv("qemu-system-x86", "1:10.0.13+ds-0+deb13u1", "trixie"),
            pv("qemu-system-x86", "1:7.2+dfsg-7+deb12u18+b3", "bookworm"),
        ]
    }

    #[test]
    fn wants_and_version_choice() {
        assert_eq!(Want::parse("sid"), Want::Suite("sid".into()));
        assert_eq!(Want::parse("0.23.2"), Want::Version("0.23.2".into()));
        let q = qemu_versions();
        let c = |w: &str| choose("qemu-system-x86", &Want::parse(w), &q).map_err(|e| e.to_string());
        assert_eq!(c("sid"), Ok(("1:11.1.3+ds-1".into(), "sid".into())));
        assert_eq!(
            c("trixie-backports"),
            Ok(("1:11.1.3+ds-2~bpo13+1".into(), "trixie-backports".into()))
        );
        assert_eq!(
            c("1:11.1.3+ds-1"),
            Ok(("1:11.1.3+ds-1".into(), "sid".into()))
        );
        assert_eq!(c("11.1.3+ds-1"), Ok(("1:11.1.3+ds-1".into(), "sid".into())));
        // An upstream version: the newest Debian version of it.
        assert_eq!(
            c("11.1.3"),
            Ok(("1:11.1.3+ds-2~bpo13+1".into(), "trixie-backports".into()))
        );
        assert_eq!(
            c("7.2"),
            Ok(("1:7.2+dfsg-7+deb12u18+b3".into(), "bookworm".into()))
        );
        // Not a prefix match: 11.1 is not 11.1.3.
        let e = c("11.1").unwrap_err();
        assert_eq!(
            e,
            "qemu-system-x86 11.1 is not in Debian's archive; it has bookworm: \
             1:7.2+dfsg-7+deb12u18+b3; trixie: 1:10.0.13+ds-0+deb13u1; trixie-backports: \
             1:11.1.3+ds-2~bpo13+1; sid: 1:11.1.3+ds-1"
        );
        let e = c("experimental").unwrap_err();
        assert!(
            e.starts_with("qemu-system-x86 the newest in experimental is not"),
            "{e}"
        );
        let e = choose("nonesuch", &Want::parse("1.0"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("nonesuch is not in Debian's archive"), "{e}");
        assert_eq!(
            entry_name("qemu-system-x86", "1:11.1.3+ds-1"),
            "qemu-system-x86-1%3a11.1.3+ds-1"
        );
    }

    #[test]
    fn roots_are_made_self_contained() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/lib64")).unwrap();
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::create_dir_all(r.join("sbin")).unwrap(); // a package made a real sbin/
        fs::write(
            r.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            b"ld",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            r.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../lib/x86_64-linux-gnu", r.join("usr/bin/rel")).unwrap();
        make_self_contained(r).unwrap();
        assert_eq!(
            fs::read_link(r.join("lib64")).unwrap(),
            PathBuf::from("usr/lib64")
        );
        assert_eq!(
            fs::read_link(r.join("lib")).unwrap(),
            PathBuf::from("usr/lib")
        );
        assert_eq!(
            fs::read_link(r.join("bin")).unwrap(),
            PathBuf::from("usr/bin")
        );
        assert!(fs::symlink_metadata(r.join("sbin")).unwrap().is_dir());
        assert_eq!(
            fs::read_link(r.join("usr/lib64/ld-linux-x86-64.so.2")).unwrap(),
            PathBuf::from("../../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        assert_eq!(
            fs::read_link(r.join("usr/bin/rel")).unwrap(),
            PathBuf::from("../lib/x86_64-linux-gnu")
        );
        assert_eq!(
            fs::read(r.join("lib64/ld-linux-x86-64.so.2")).unwrap(),
            b"ld"
        );
        let root = Root {
            package: "x".into(),
            version: "1".into(),
            suite: "sid".into(),
            dir: r.to_path_buf(),
            packages: vec![],
            download_bytes: 0,
            download_secs: 0.0,
            build_secs: 0.0,
        };
        assert_eq!(root.loader(), Some(r.join("lib64/ld-linux-x86-64.so.2")));
        let w = root
            .wrapper("x", &["it's".to_string()], &[("ENV_X", "a b".to_string())])
            .unwrap();
        let text = fs::read_to_string(&w).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(text.contains("ENV_X='a b'\nexport ENV_X\n"), "{text}");
        assert!(
            text.contains(" '--inhibit-cache' '--library-path' "),
            "{text}"
        );
        assert!(text.ends_with(" 'it'\\''s' \"$@\"\n"), "{text}");
        assert_eq!(
            root.library_path(),
            vec![
                r.join("lib/x86_64-linux-gnu"),
                r.join("usr/lib/x86_64-linux-gnu"),
                r.join("lib"),
                r.join("usr/lib")
            ]
        );
    }

    /// A small package and its closure, for real: `hello` from trixie (on
    /// this bookworm machine) with libc6 and the rest, run from the root. Uses
    /// the shared private apt (its lists, refreshed once a day) and a
    /// private roots directory.
    #[test]
    fn closure_of_a_small_package_for_real() {
        let t = tempfile::tempdir().unwrap();
        let apt = Apt::shared();
        let r = ensure_in(t.path(), &apt, "hello", &Want::parse("trixie"), &mut |l| {
            eprintln!("{l}")
        })
        .unwrap();
        assert_eq!(r.suite, "trixie");
        assert!(r.dir.starts_with(t.path()));
        let names: Vec<&str> = r.packages.iter().map(|p| p.package.as_str()).collect();
        for p in ["hello", "libc6"] {
            assert!(names.contains(&p), "{p} not in {names:?}");
        }
        assert!(r
            .packages
            .iter()
            .all(|p| p.sha256.len() == 64 && p.size > 0));
        assert_eq!(
            r.packages
                .iter()
                .find(|p| p.package == "hello")
                .unwrap()
                .version,
            r.version
        );
        let out = r.command("hello").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!\n");
        assert_eq!(r.foreign_libraries("hello").unwrap(), Vec::<String>::new());
        assert!(r.size_bytes() > r.download_bytes / 2);
        // Nothing but the root is left in the roots dir, and a second request
        // (the exact version) is answered from the cache without apt.
        let left: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![entry_name("hello", &r.version)]);
        let nowhere = Apt::new(&t.path().join("no-apt-here"));
        let again = ensure_in(
            t.path(),
            &nowhere,
            "hello",
            &Want::parse(&r.version),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            (again.dir, again.packages),
            (r.dir.clone(), r.packages.clone())
        );
    }

    /// A version Debian does not have: the error lists those it has, per suite.
    #[test]
    fn version_that_does_not_exist_for_real() {
        let t = tempfile::tempdir().unwrap();
        let e = ensure_in(
            t.path(),
            &Apt::shared(),
            "hello",
            &Want::parse("0.0.1-0"),
            &mut |_| {},
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, RootError::NoVersion { .. }), "{msg}");
        assert!(
            msg.starts_with("hello 0.0.1-0 is not in Debian's archive; it has "),
            "{msg}"
        );
        for s in ["bookworm: ", "trixie: ", "sid: "] {
            assert!(msg.contains(s), "{s} in {msg}");
        }
        let e = ensure_in(
            t.path(),
            &Apt::shared(),
            "probeconf-no-such-package",
            &Want::parse("sid"),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, RootError::NoPackage { .. }), "{e}");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0, "nothing built");
    }
}
