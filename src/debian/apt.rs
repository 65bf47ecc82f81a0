//! The private apt: every suite of [`SUITES`] from the machine's Debian mirror,
//! with its own sources, lists, caches and keyrings.
//!
//! - **State** under one directory (by default `<cache>/apt/`, see
//!   [`default_dir`]): `debian.sources` (the suites of [`SUITES`], component
//!   `main`, amd64 `Packages` indices only), `apt.conf` (clears the system's
//!   update hooks, which belong to the system's lists), `lists/`, `cache/`
//!   (with its own `pkgcache.bin`, so `apt-cache` is fast), an empty parts
//!   directory, and `keyrings/`. Every apt command gets the same `-c`/`-o`
//!   options ([`Apt::options`]). `Dir::State::status` stays the system's (read
//!   only), except for [`Apt::download_closure`], which resolves against an
//!   empty status of its own. The lists are refreshed when older than a day
//!   ([`LISTS_MAX_AGE`]), when the generated configuration changed, or on
//!   request. When apt's sandbox user `_apt` cannot reach the directory (the
//!   default cache is under `/root`, mode 0700), `APT::Sandbox::User=root` is
//!   passed: apt would fall back to that anyway, with a warning.
//! - **Signatures** are always verified: `Signed-By` names the machine's
//!   `/usr/share/keyrings/debian-archive-keyring.gpg`. When a suite cannot be
//!   verified with it (a newer archive key signs sid/experimental than the
//!   machine's keyring knows), the newest `debian-archive-keyring` package is
//!   fetched with `apt-get download` *from a suite that did verify* (so the
//!   chain of trust starts at the machine's keyring), its keyring is extracted
//!   into `keyrings/`, added to `Signed-By`, and the update is run again.
//!   Nothing here uses `trusted=yes` or disables verification. A suite that
//!   still cannot be verified is left out, with a warning on stderr. Note that
//!   apt's system-wide settings (e.g. `Acquire::Check-Valid-Until`) still
//!   apply: they describe the machine's mirror.
//! - **Lock.** `apt-get update` runs under an exclusive `flock` on `.lock` in
//!   the state directory (one update at a time, across processes); a
//!   dependency closure is resolved and downloaded under a shared one, so the
//!   lists do not change under it.

use super::deb::{self, version_cmp};
use super::{display_cmd, io_err, run_capture, run_checked, sha256_hex, write_atomic, DebianError};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The Debian suites of the private sources list, from the most to the least
/// stable (the order also breaks ties when one version is served by several
/// suites).
pub const SUITES: [&str; 6] = [
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
    "experimental",
];

/// The one architecture of the private sources list.
pub const ARCH: &str = "amd64";

/// The machine's Debian archive keyring, named in `Signed-By`.
pub const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// How long downloaded package lists are used before `apt-get update` runs again.
pub const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The rank of a suite in [`SUITES`] (unknown suites last).
pub fn suite_rank(s: &str) -> usize {
    SUITES.iter().position(|x| *x == s).unwrap_or(SUITES.len())
}

/// The suites a package of `suite` takes its dependencies from: a backports
/// suite also needs its base release, experimental needs sid, the others
/// stand alone (`trixie` never pulls a library from `sid`).
pub fn suite_family(suite: &str) -> Vec<String> {
    if let Some(base) = suite.strip_suffix("-backports") {
        vec![base.to_string(), suite.to_string()]
    } else if suite == "experimental" {
        vec!["sid".to_string(), suite.to_string()]
    } else {
        vec![suite.to_string()]
    }
}

/// The private apt state directory shared by everything in probeconf:
/// `<cache>/apt` (`$PROBECONF_CACHE`, `$XDG_CACHE_HOME/probeconf` or
/// `~/.cache/probeconf`). Until this module existed the state was
/// `<cache>/kernels/apt`; its package lists are copied over once (the old
/// directory is left alone, older binaries still use it), so the first update
/// here does not download every suite again.
pub fn default_dir() -> PathBuf {
    let cache = crate::cache::dir();
    let dir = cache.join("apt");
    adopt_old_lists(&cache.join("kernels").join("apt"), &dir);
    dir
}

/// Copy `old/lists` and `old/keyrings` into `new` when `new` has no lists yet
/// (through a temp dir and a rename: never a half copy).
fn adopt_old_lists(old: &Path, new: &Path) {
    if new.join("lists").exists() || !old.join("lists").is_dir() {
        return;
    }
    let copy = || -> std::io::Result<()> {
        fs::create_dir_all(new)?;
        let tmp = tempfile::Builder::new().prefix(".adopt-").tempdir_in(new)?;
        for sub in ["lists", "keyrings"] {
            let (from, to) = (old.join(sub), tmp.path().join(sub));
            fs::create_dir_all(&to)?;
            let Ok(rd) = fs::read_dir(&from) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type()?.is_file() && e.file_name() != "lock" {
                    fs::copy(e.path(), to.join(e.file_name()))?;
                }
            }
        }
        if new.join("lists").exists() {
            return Ok(());
        }
        // keyrings/ may exist already (then it is kept).
        let _ = fs::rename(tmp.path().join("keyrings"), new.join("keyrings"));
        fs::rename(tmp.path().join("lists"), new.join("lists"))
    };
    if let Err(e) = copy() {
        eprintln!(
            "probeconf: apt: could not reuse the package lists of {}: {e}",
            old.display()
        );
    }
}

/// The private deb822 sources file: `suites`, `main`, amd64 `Packages`
/// indices only, signed by `keyrings`.
pub(crate) fn render_sources(uris: &[String], suites: &[&str], keyrings: &[PathBuf]) -> String {
    let keys: Vec<String> = keyrings.iter().map(|k| k.display().to_string()).collect();
    format!(
        "# Generated by probeconf (src/debian/apt.rs): Debian's archive for kernels and private roots.\n\
         # The URIs are the machine's Debian mirror, read from its apt configuration.\n\
         Types: deb\n\
         URIs: {}\n\
         Suites: {}\n\
         Components: main\n\
         Architectures: {ARCH}\n\
         Targets: Packages\n\
         Signed-By: {}\n",
        uris.join(" "),
        suites.join(" "),
        keys.join(" ")
    )
}

/// The private apt.conf, read after the system's configuration (`-c`): the
/// system's update/dpkg hooks (appstream, packagekit, docker-clean) act on the
/// system's lists and caches, so they are cleared for ours.
const APT_CONF: &str = "// Generated by probeconf (src/debian/apt.rs).\n\
#clear APT::Update::Pre-Invoke;\n\
#clear APT::Update::Post-Invoke;\n\
#clear APT::Update::Post-Invoke-Success;\n\
#clear DPkg::Pre-Invoke;\n\
#clear DPkg::Post-Invoke;\n";

/// One version of one package, with the suite serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgVersion {
    pub name: String,
    pub version: String,
    pub suite: String,
}

/// A downloaded `.deb`, as its control file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebFile {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub file: PathBuf,
    pub size: u64,
}

/// apt with a private sources list, lists, caches and keyrings under `dir`.
pub struct Apt {
    dir: PathBuf,
    /// The keyring every suite is first checked with ([`SYSTEM_KEYRING`]).
    pub(crate) base_keyring: PathBuf,
}

impl Apt {
    /// The private apt whose state is in `dir`.
    pub fn new(dir: &Path) -> Apt {
        Apt {
            dir: dir.to_path_buf(),
            base_keyring: PathBuf::from(SYSTEM_KEYRING),
        }
    }

    /// The private apt of [`default_dir`].
    pub fn shared() -> Apt {
        Apt::new(&default_dir())
    }

    /// Its state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn sources_path(&self) -> PathBuf {
        self.dir.join("debian.sources")
    }
    fn conf_path(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }
    pub(crate) fn lists_dir(&self) -> PathBuf {
        self.dir.join("lists")
    }
    fn stamp_path(&self) -> PathBuf {
        self.dir.join("updated")
    }
    pub(crate) fn extra_keyring(&self) -> PathBuf {
        self.dir.join("keyrings").join("debian-archive-keyring.gpg")
    }

    /// The options every apt command on the full sources list gets.
    pub fn options(&self) -> Vec<String> {
        self.options_with(&self.sources_path(), "pkgcache.bin")
    }

    /// The options with another sources list (a subset of the suites) and
    /// pkgcache (empty: built in memory).
    fn options_with(&self, sources: &Path, pkgcache: &str) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut o = vec!["-c".to_string(), self.conf_path().display().to_string()];
        for (k, v) in [
            ("Dir::Etc::SourceList", sources.display().to_string()),
            ("Dir::Etc::SourceParts", d("empty.d")),
            ("Dir::Etc::Preferences", d("preferences")),
            ("Dir::Etc::PreferencesParts", d("empty.d")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            ("Dir::Cache::pkgcache", pkgcache.to_string()),
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
    fn write_config(&self, uris: &[String]) -> Result<String, DebianError> {
        for d in [
            "empty.d",
            "lists/partial",
            "cache/archives/partial",
            "keyrings",
        ] {
            let p = self.dir.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let sources = render_sources(uris, &SUITES, &self.keyrings());
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
    pub fn ensure_lists(&self, refresh: bool) -> Result<(), DebianError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let _lock = FileLock::exclusive(&self.dir.join(".lock"))?;
        let uris = super::mirror::system_mirror()?;
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

    fn finish_update(&self, out: &UpdateOutput, config: &str) -> Result<(), DebianError> {
        if !self.has_lists() {
            return Err(DebianError::NoLists(out.problems.join("\n")));
        }
        for p in &out.problems {
            eprintln!("probeconf: apt-get update: {p}");
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

    fn update(&self) -> Result<UpdateOutput, DebianError> {
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
            return Err(DebianError::Command {
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
    fn fetch_newer_keyring(&self) -> Result<bool, DebianError> {
        let versions = self.madison(&["debian-archive-keyring".to_string()])?;
        let newest = versions
            .iter()
            .max_by(|a, b| version_cmp(&a.version, &b.version))
            .ok_or_else(|| DebianError::Package {
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
        deb::extract(&debs[0].0, &x)?;
        let keyrings = x.join("usr/share/keyrings");
        let found = ["debian-archive-keyring.gpg", "debian-archive-keyring.pgp"]
            .iter()
            .map(|n| keyrings.join(n))
            .find_map(|p| deb::resolve_in(&x, &p));
        let Some(src) = found else {
            return Err(DebianError::Package {
                package: newest.name.clone(),
                version: newest.version.clone(),
                what: "holds no usr/share/keyrings/debian-archive-keyring.{gpg,pgp}".into(),
            });
        };
        let bytes = fs::read(&src).map_err(io_err(&src))?;
        write_atomic(&self.extra_keyring(), &bytes)?;
        write_atomic(&version_file, newest.version.as_bytes())?;
        eprintln!(
            "probeconf: apt: added the archive keyring of {} {} ({}) for the suites the machine's keyring cannot verify",
            newest.name, newest.version, newest.suite
        );
        Ok(true)
    }

    /// `apt-cache ARGS… NAMES…` on the full sources list; its stdout.
    pub fn apt_cache(&self, args: &[&str], names: &[String]) -> Result<String, DebianError> {
        let mut cmd = Command::new("apt-cache");
        cmd.args(self.options()).args(args).args(names);
        let (status, stdout, stderr) = run_capture(&mut cmd)?;
        if !status.success() {
            return Err(DebianError::Command {
                command: display_cmd(&cmd),
                status: status.to_string(),
                stderr,
            });
        }
        Ok(stdout)
    }

    /// Every version of each of `names` in every suite (`apt-cache madison`).
    pub fn madison(&self, names: &[String]) -> Result<Vec<PkgVersion>, DebianError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(parse_madison(&self.apt_cache(&["madison"], names)?))
    }

    /// The package names starting with `prefix` (`apt-cache pkgnames`).
    pub fn pkgnames(&self, prefix: &str) -> Result<Vec<String>, DebianError> {
        Ok(self
            .apt_cache(&["pkgnames", prefix], &[])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// `apt-get download name=version…` into `dir`; returns (file, name, version).
    pub fn download(
        &self,
        pkgs: &[(String, String)],
        dir: &Path,
    ) -> Result<Vec<(PathBuf, String, String)>, DebianError> {
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
                .ok_or_else(|| DebianError::Package {
                    package: n.clone(),
                    version: v.clone(),
                    what: format!("apt-get download left no {n}_*.deb in {}", dir.display()),
                })?;
            out.push((f.clone(), n.clone(), v.clone()));
        }
        Ok(out)
    }

    /// Resolve `package` (at `version`, or the candidate of `suite`) and its
    /// whole dependency closure (Depends and Pre-Depends, no Recommends) and
    /// download every .deb of it into `work/archives/`.
    ///
    /// apt computes the closure as if nothing were installed: the dpkg status
    /// is an empty file in `work/`, so libc6 and everything else the package
    /// needs is in it. Only the suites of [`suite_family`]`(suite)` are in the
    /// sources (a trixie package never takes a library from sid), with `-t
    /// suite` so a backport takes the backported libraries; lists, keyrings,
    /// mirror and apt.conf are those of [`Apt::options`]. Call
    /// [`Apt::ensure_lists`] first.
    pub fn download_closure(
        &self,
        package: &str,
        version: Option<&str>,
        suite: &str,
        work: &Path,
    ) -> Result<Vec<DebFile>, DebianError> {
        let _lock = FileLock::shared(&self.dir.join(".lock"))?;
        let uris = super::mirror::system_mirror()?;
        let family = suite_family(suite);
        let family: Vec<&str> = family.iter().map(String::as_str).collect();
        let state = work.join("state");
        let archives = work.join("archives");
        let partial = archives.join("partial");
        for d in [&state, &partial, &work.join("log"), &work.join("cache")] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        give_to_apt_user(&partial);
        let status = state.join("status");
        fs::write(&status, b"").map_err(io_err(&status))?;
        let sources = work.join("closure.sources");
        write_atomic(
            &sources,
            render_sources(&uris, &family, &self.keyrings()).as_bytes(),
        )?;
        let p = |p: &Path| p.display().to_string();
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options_with(&sources, ""));
        for (k, v) in [
            ("Dir::State::status", p(&status)),
            (
                "Dir::State::extended_states",
                p(&state.join("extended_states")),
            ),
            ("Dir::Cache", p(&work.join("cache"))),
            ("Dir::Cache::Archives", format!("{}/", p(&archives))),
            ("Dir::Log", p(&work.join("log"))),
            ("APT::Architectures", ARCH.to_string()),
            ("APT::Install-Recommends", "false".to_string()),
            ("APT::Install-Suggests", "false".to_string()),
        ] {
            cmd.arg("-o").arg(format!("{k}={v}"));
        }
        cmd.args(["-q", "-y", "--download-only", "-t", suite, "install"]);
        cmd.arg(match version {
            Some(v) => format!("{package}={v}"),
            None => package.to_string(),
        });
        run_checked(&mut cmd)?;
        let mut out = Vec::new();
        let rd = fs::read_dir(&archives).map_err(io_err(&archives))?;
        for e in rd.flatten() {
            let f = e.path();
            if f.extension().is_none_or(|x| x != "deb") {
                continue;
            }
            let fields = deb::control_fields(&f, &["Package", "Version", "Architecture"])?;
            let size = fs::metadata(&f).map_err(io_err(&f))?.len();
            let mut it = fields.into_iter();
            out.push(DebFile {
                package: it.next().unwrap_or_default(),
                version: it.next().unwrap_or_default(),
                architecture: it.next().unwrap_or_default(),
                file: f,
                size,
            });
        }
        out.sort_by(|a, b| a.package.cmp(&b.package));
        Ok(out)
    }
}

struct UpdateOutput {
    problems: Vec<String>,
    signature_problem: bool,
}

/// Parse `apt-cache madison` lines: `name | version | URI suite/component arch Packages`.
pub(crate) fn parse_madison(text: &str) -> Vec<PkgVersion> {
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

/// An `flock` on a file, released on drop.
pub(crate) struct FileLock(fs::File);

impl FileLock {
    /// One holder at a time.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock, DebianError> {
        Self::take(path, libc::LOCK_EX)
    }

    /// Any number of holders, but none while an exclusive one holds it.
    pub(crate) fn shared(path: &Path) -> Result<FileLock, DebianError> {
        Self::take(path, libc::LOCK_SH)
    }

    fn take(path: &Path, how: libc::c_int) -> Result<FileLock, DebianError> {
        use std::os::unix::io::AsRawFd;
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
            return Err(DebianError::Io {
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
pub(crate) fn give_to_apt_user(dir: &Path) {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MIRROR: &str = "http://mirror.invalid/debian";

    #[test]
    fn rendered_sources_use_the_given_mirror_and_all_suites() {
        let t = render_sources(
            &[MIRROR.to_string()],
            &SUITES,
            &[PathBuf::from(SYSTEM_KEYRING)],
        );
        assert!(t.contains(&format!("URIs: {MIRROR}\n")));
        assert!(t.contains(
            "Suites: bookworm bookworm-backports trixie trixie-backports sid experimental\n"
        ));
        assert!(t.contains(&format!("Signed-By: {SYSTEM_KEYRING}\n")));
        assert!(!t.contains("trusted"));
        let parsed = super::super::mirror::parse_deb822(&t);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].suites.len(), SUITES.len());
    }

    #[test]
    fn suite_families() {
        assert_eq!(suite_family("trixie"), vec!["trixie"]);
        assert_eq!(suite_family("sid"), vec!["sid"]);
        assert_eq!(
            suite_family("trixie-backports"),
            vec!["trixie", "trixie-backports"]
        );
        assert_eq!(suite_family("experimental"), vec!["sid", "experimental"]);
        assert!(suite_rank("bookworm") < suite_rank("sid"));
        assert_eq!(suite_rank("nonsense"), SUITES.len());
    }

    /// Shaped like `apt-cache madison` output for kernel packages; the URI is
    /// a placeholder. Also used by the kernel selection tests.
    pub(crate) fn madison_fixture() -> String {
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
    fn old_lists_are_adopted_once() {
        let t = tempfile::tempdir().unwrap();
        let (old, new) = (t.path().join("kernels/apt"), t.path().join("apt"));
        fs::create_dir_all(old.join("lists/partial")).unwrap();
        fs::create_dir_all(old.join("keyrings")).unwrap();
        fs::write(
            old.join("lists/x_dists_sid_main_binary-amd64_Packages.lz4"),
            b"p",
        )
        .unwrap();
        fs::write(old.join("lists/lock"), b"").unwrap();
        fs::write(old.join("keyrings/debian-archive-keyring.gpg"), b"k").unwrap();
        adopt_old_lists(&old, &new);
        assert!(new
            .join("lists/x_dists_sid_main_binary-amd64_Packages.lz4")
            .is_file());
        assert!(!new.join("lists/lock").exists());
        assert!(new.join("keyrings/debian-archive-keyring.gpg").is_file());
        // Never again once there are lists.
        fs::write(old.join("lists/y_Packages"), b"p").unwrap();
        adopt_old_lists(&old, &new);
        assert!(!new.join("lists/y_Packages").exists());
        let stray: Vec<_> = fs::read_dir(&new)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".adopt-"))
            .collect();
        assert!(stray.is_empty());
    }

    /// The keyring fallback, for real: start from a keyring that verifies
    /// bookworm only (the bookworm release key), so every other suite fails
    /// verification; the newest debian-archive-keyring is then taken from
    /// bookworm, and all suites verify.
    #[test]
    fn keyring_fallback_for_real() {
        let t = tempfile::tempdir().unwrap();
        let mut apt = Apt::new(&t.path().join("apt"));
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
        assert!(crate::kernels::select::releases(&apt)
            .unwrap()
            .iter()
            .any(|a| a.request == "6.1"));
    }
}
