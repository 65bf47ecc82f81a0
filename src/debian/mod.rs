//! Access to Debian's archive, for any package (issue 4's kernels, issue 11's
//! bpftrace, other QEMU versions).
//!
//! Everything goes through the machine's own apt with a **private**
//! configuration, so the system's sources, lists, caches and dpkg status are
//! never touched, and nothing is ever installed system-wide:
//!
//! - [`mirror`]: the Debian mirror the machine already has configured (read
//!   from its apt sources; no mirror host is written into the repository).
//! - [`apt`]: the private apt: sources for every suite of [`apt::SUITES`],
//!   lists, caches and keyrings under `<cache>/apt/`, `apt-get update` with
//!   signature checks and the keyring refresh, the lock, `apt-cache madison`,
//!   `apt-get download`, and the dependency closure of a package against an
//!   empty dpkg status.
//! - [`deb`]: reading a `.deb` (`dpkg-deb`), and Debian version comparison
//!   (the `debversion` crate).
//! - [`root`]: private roots: a package and its whole dependency closure,
//!   extracted under `<cache>/roots/<package>-<version>/`, and its binaries run
//!   with the root's own dynamic loader and libraries.
//!
//! Kernel images are built on top of this in [`crate::kernels`].

pub mod apt;
pub mod deb;
pub mod mirror;
pub mod root;

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Why something could not be had from Debian's archive.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
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
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DebianError + '_ {
    move |source| DebianError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Cache entries built in a temp dir and renamed into place (kernels, roots)

/// Remove `.tmp-PID-…` directories under `root` whose process died (killed,
/// or exited on a signal without unwinding), or that are older than `max_age`.
pub(crate) fn clean_stale_temps(root: &Path, max_age: Duration) {
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
            .is_some_and(|a| a > max_age);
        if dead || old {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A temp dir `<root>/.tmp-PID-<name>-XXXX` (see [`clean_stale_temps`]).
pub(crate) fn temp_entry(root: &Path, name: &str) -> Result<tempfile::TempDir, DebianError> {
    fs::create_dir_all(root).map_err(io_err(root))?;
    tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-{}-", std::process::id(), name))
        .tempdir_in(root)
        .map_err(io_err(root))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Small helpers

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

pub(crate) fn sha256_file(p: &Path) -> Result<String, DebianError> {
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
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), DebianError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut t = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    t.write_all(data).map_err(io_err(path))?;
    t.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(path))?;
    t.persist(path).map_err(|e| DebianError::Io {
        path: path.into(),
        source: e.error,
    })?;
    Ok(())
}

/// Write `path` and fsync it (the meta.json of a cache entry).
pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<(), DebianError> {
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io_err(path))
}

pub(crate) fn display_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub(crate) fn spawn_err(command: &str, e: std::io::Error) -> DebianError {
    DebianError::Command {
        command: command.to_string(),
        status: format!("could not run: {e}"),
        stderr: String::new(),
    }
}

/// Run with LC_ALL=C (apt's messages are parsed), capturing both streams.
pub(crate) fn run_capture(
    cmd: &mut Command,
) -> Result<(std::process::ExitStatus, String, String), DebianError> {
    cmd.env("LC_ALL", "C").stdin(Stdio::null());
    let out = cmd.output().map_err(|e| spawn_err(&display_cmd(cmd), e))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

pub(crate) fn run_checked(cmd: &mut Command) -> Result<String, DebianError> {
    let (status, stdout, stderr) = run_capture(cmd)?;
    if !status.success() {
        return Err(DebianError::Command {
            command: display_cmd(cmd),
            status: status.to_string(),
            stderr,
        });
    }
    Ok(stdout)
}
