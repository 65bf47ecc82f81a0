//! Reading `.deb` files (through `dpkg-deb`, which every Debian machine has)
//! and comparing Debian versions (through the `debversion` crate).

use super::{display_cmd, run_checked, spawn_err, DebianError};
use std::cmp::Ordering;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian version comparison, dpkg's order (epoch, then upstream version, then
/// revision; `~` sorts before everything, even the end of the string), by the
/// `debversion` crate (see README "Design"). A string that is not a Debian
/// version at all (apt never prints one) sorts before every version; two such
/// strings compare as text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| debversion::Version::parse_lenient(v.trim()).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// Extract a whole package into `dest` (`dpkg-deb -x`: files, directories
/// and symlinks as they are in the package; no maintainer script runs).
pub fn extract(deb: &Path, dest: &Path) -> Result<(), DebianError> {
    run_checked(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest)).map(|_| ())
}

/// Fields of a package's control file (`dpkg-deb -f`), in the order asked.
/// A field the package does not have is an empty string.
pub fn control_fields(deb: &Path, fields: &[&str]) -> Result<Vec<String>, DebianError> {
    let mut out = Vec::new();
    for f in fields {
        let v = run_checked(Command::new("dpkg-deb").arg("-f").arg(deb).arg(f))?;
        out.push(v.trim().to_string());
    }
    Ok(out)
}

/// Extract the members of a .deb matching `patterns` (tar wildcards relative
/// to the package root, e.g. `./boot/vmlinuz-*`) into `dest`, without
/// unpacking the rest (`dpkg-deb --fsys-tarfile | tar -x --wildcards`). tar
/// reports the patterns a package does not have ("Not found in archive", exit
/// status 2); only other errors count.
pub fn extract_members(deb: &Path, dest: &Path, patterns: &[&str]) -> Result<(), DebianError> {
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
        .args(patterns);
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
        return Err(DebianError::Command {
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
        return Err(DebianError::Command {
            command: tar_text,
            status: tar_out.status.to_string(),
            stderr: tar_err,
        });
    }
    Ok(())
}

/// `p` if it is a regular file, following symlinks only inside `root` (an
/// absolute link target is taken relative to `root`, as it would be on the
/// system the package is installed on).
pub fn resolve_in(root: &Path, p: &Path) -> Option<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The orderings the hand-written comparison (`dpkg_cmp`) was pinned to,
    /// kernels' and keyrings' versions among them.
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
            // and a few more of dpkg's rules
            ("1.0-1", "1.0-1+b1", Less),
            ("1:19.1.7-3+b1", "19.1.7-3+b1", Greater),
            ("0.27.1-1", "0.23.2-1", Greater),
            ("1.0", "1.0-0", Equal),
            (" 6.1.176-1 ", "6.1.176-1", Equal),
            ("10.0.0+ds-1", "9.2.0+ds-1", Greater),
        ] {
            assert_eq!(version_cmp(a, b), o, "{a} vs {b}");
            assert_eq!(version_cmp(b, a), o.reverse(), "{b} vs {a}");
        }
        assert_eq!(version_cmp("not a version!", "1.0"), Less);
    }

    #[test]
    fn symlinks_resolve_inside_the_root_only() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(r.join("usr/lib64")).unwrap();
        fs::write(r.join("usr/lib/x86_64-linux-gnu/ld.so"), b"x").unwrap();
        std::os::unix::fs::symlink(
            "../lib/x86_64-linux-gnu/ld.so",
            r.join("usr/lib64/relative"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/x86_64-linux-gnu/ld.so",
            r.join("usr/lib64/absolute"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("usr/lib64/host")).unwrap();
        let want = r.join("usr/lib64/../lib/x86_64-linux-gnu/ld.so");
        assert_eq!(resolve_in(r, &r.join("usr/lib64/relative")), Some(want));
        assert_eq!(
            resolve_in(r, &r.join("usr/lib64/absolute")),
            Some(r.join("usr/lib/x86_64-linux-gnu/ld.so"))
        );
        assert_eq!(resolve_in(r, &r.join("usr/lib64/host")), None);
    }
}
