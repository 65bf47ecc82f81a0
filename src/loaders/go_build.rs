//! Finding or building the Go harness (go-harness/, on cilium/ebpf).
//!
//! The harness is built with the machine's `go` (found with `which`) as a
//! static binary (CGO_ENABLED=0) into the user's cache directory, keyed by the
//! cilium/ebpf version, and rebuilt when its sources change (a hash of every
//! source file is kept beside the binary). `PROBECONF_HARNESS` names a prebuilt
//! binary instead (VM images ship one).
//!
//! Another cilium/ebpf version is built from a copy of the sources in which
//! `go get github.com/cilium/ebpf@VERSION` has been run: the harness code is
//! the same, only the library under it changes.

use super::registry::LibraryPick;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The cilium/ebpf version go-harness/go.mod pins.
pub const PINNED_CILIUM: &str = "v0.22.0";

pub fn harness_source_dir() -> PathBuf {
    std::env::var_os("PROBECONF_HARNESS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go-harness"))
}


fn source_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "bin" && !name.starts_with('.') {
                source_files(&p, out)?;
            }
        } else if name.ends_with(".go") || name == "go.mod" || name == "go.sum" {
            out.push(p);
        }
    }
    Ok(())
}

/// A hash of the harness sources and the requested library version.
fn source_hash(src: &Path, version: &str) -> std::io::Result<String> {
    let mut files = Vec::new();
    source_files(src, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    for f in files {
        h.update(f.strip_prefix(src).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update(std::fs::read(&f)?);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        let name = p.file_name().unwrap();
        if name == "bin" {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &to.join(name))?;
        } else {
            std::fs::copy(&p, to.join(name))?;
        }
    }
    Ok(())
}

/// The Go harness for the pinned cilium/ebpf (`None`), a release
/// (`v0.20.0`), or a local checkout (a `replace` directive), built if needed.
pub fn ensure_harness(pick: Option<&LibraryPick>) -> Result<PathBuf, String> {
    if let (Some(p), None) = (std::env::var_os("PROBECONF_HARNESS"), pick) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("PROBECONF_HARNESS={} does not exist", p.display())) };
    }
    let (key, version, checkout) = match pick {
        None => (PINNED_CILIUM.to_string(), PINNED_CILIUM.to_string(), None),
        Some(LibraryPick::Version(v)) => {
            if !v.starts_with('v') || v.contains('/') {
                return Err(format!("cilium@{v}: expected a module version like v0.20.0"));
            }
            (v.clone(), v.clone(), None)
        }
        Some(LibraryPick::Path(p)) => {
            let p = std::fs::canonicalize(p).map_err(|e| format!("cilium@{}: {e}", p.display()))?;
            let go_mod = std::fs::read_to_string(p.join("go.mod")).map_err(|e| format!("cilium@{}: no go.mod ({e})", p.display()))?;
            if !go_mod.lines().any(|l| l.trim() == "module github.com/cilium/ebpf") {
                return Err(format!("cilium@{}: not a cilium/ebpf checkout (its go.mod is not `module github.com/cilium/ebpf`)", p.display()));
            }
            let mut h = Sha256::new();
            h.update(p.to_string_lossy().as_bytes());
            let key = format!("path-{:x}", h.finalize()).chars().take(21).collect::<String>();
            (key, PINNED_CILIUM.to_string(), Some(p))
        }
    };
    let src = harness_source_dir();
    if !src.join("go.mod").is_file() {
        return Err(format!("no Go harness sources at {} (set PROBECONF_HARNESS to a built harness)", src.display()));
    }
    let out_dir = crate::cache::dir().join("harness").join(&key);
    let bin = out_dir.join("probeconf-harness");
    let stamp = out_dir.join("source.sha256");
    let mut want = source_hash(&src, &version).map_err(|e| format!("reading {}: {e}", src.display()))?;
    if let Some(c) = &checkout {
        // A checkout that changes is built again: its Go sources are hashed too.
        want = format!("{want}-{}", source_hash(c, "checkout").map_err(|e| format!("reading {}: {e}", c.display()))?);
    }
    if bin.is_file() && std::fs::read_to_string(&stamp).map(|s| s.trim() == want).unwrap_or(false) {
        return Ok(bin);
    }
    let go = which::which("go").map_err(|_| "`go` not found on PATH: the cilium loader needs Go to build go-harness/ (./x installs nothing for Go; install Go 1.22+)".to_string())?;
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    // Build from a private copy so that another version's go.mod never touches the repo.
    let work = out_dir.join("src");
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(&src, &work).map_err(|e| format!("copying harness sources: {e}"))?;
    let run = |args: &[&str]| -> Result<(), String> {
        let out = duct::cmd(&go, args)
            .dir(&work)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod")
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("running go {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("go {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout)))
        }
    };
    if let Some(c) = &checkout {
        run(&["mod", "edit", &format!("-replace=github.com/cilium/ebpf={}", c.display())])?;
        run(&["mod", "tidy"])?;
    } else if version != PINNED_CILIUM {
        run(&["get", &format!("github.com/cilium/ebpf@{version}")])?;
        run(&["mod", "tidy"])?;
    }
    let tmp_bin = out_dir.join("probeconf-harness.tmp");
    run(&["build", "-trimpath", "-o", tmp_bin.to_str().unwrap(), "."])?;
    std::fs::rename(&tmp_bin, &bin).map_err(|e| e.to_string())?;
    std::fs::write(&stamp, want).map_err(|e| e.to_string())?;
    Ok(bin)
}
