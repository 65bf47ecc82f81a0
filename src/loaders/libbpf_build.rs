//! Building the libbpf harness (libbpf-harness/) for a libbpf version or a
//! libbpf source tree, cached like the Go harness (src/loaders/go_build.rs).
//!
//! The one public function:
//!
//! ```text
//! pub fn ensure_libbpf_harness(req: LibbpfBuild) -> Result<(PathBuf, BuildInfo), String>
//! ```
//!
//! `req` is [`LibbpfBuild::parse`] of what follows `--loader libbpf@`:
//! `1.5`, `1.6`, `1.7` (libbpf-rs 0.25.0 / 0.26.1 / 0.27.2 on libbpf-sys
//! 1.5.2 / 1.6.4 / 1.7.0, vendoring libbpf 1.5.1 / 1.6.3 / 1.7.0), an exact
//! libbpf-rs version (`0.26.0`: its libbpf-sys line is picked from the table
//! in [`pins`]), or a path to a libbpf source tree (libbpf's own layout,
//! `src/*.c` + `include/uapi/linux/`, or the kernel's, `tools/lib/bpf` +
//! `tools/include/uapi/linux`), built with libbpf-rs 0.27.2 on a private copy
//! of libbpf-sys 1.7.0 whose vendored `libbpf/` is that tree (`[patch]`).
//! It returns the path of a static `probeconf-libbpf-harness` binary and what
//! it links; the binary's own `version` line is read back and checked, so a
//! build that links another libbpf than asked for is an error.
//!
//! How: `libbpf-harness/` and `bpf/errno-classes.tsv` are copied into
//! `CACHE/libbpf-harness/KEY/src/`, the libbpf-rs / libbpf-sys pins in the
//! copy's Cargo.toml are rewritten (and `[patch.crates-io]` added for a tree),
//! and `cargo build --release --target x86_64-unknown-linux-gnu` runs there
//! with `+crt-static` and `--no-default-features --features api-0-NN`
//! (libbpf-sys `vendored` + `static` come from the harness's Cargo.toml).
//! The binary is kept as `CACHE/libbpf-harness/KEY/probeconf-libbpf-harness`
//! with `source.sha256` (harness sources + pins + for a tree its files) and
//! `build.json`; it is rebuilt when the hash changes. All keys share one
//! cargo target dir (`CACHE/libbpf-harness/target`, so serde & co. build
//! once) under a lock file. CACHE is `$PROBECONF_CACHE`, else
//! `$XDG_CACHE_HOME/probeconf`, else `~/.cache/probeconf` (as
//! `crate::cache::dir`). `PROBECONF_LIBBPF_HARNESS_SRC` names another
//! harness source directory (default: `libbpf-harness/` of this repository).
//!
//! Not wired into the runner: the lead's loader registry calls it for
//! `--loader libbpf@VERSION|@PATH`.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LibbpfBuild {
    /// `1.5`, `1.6`, `1.7`, or an exact libbpf-rs version such as `0.26.0`.
    Version(String),
    /// A libbpf source tree.
    Tree(PathBuf),
}

impl LibbpfBuild {
    /// `1.6` → a version, anything with a `/` (or an existing directory) → a tree.
    pub fn parse(spec: &str) -> Self {
        if spec.contains('/') || Path::new(spec).is_dir() {
            LibbpfBuild::Tree(PathBuf::from(spec))
        } else {
            LibbpfBuild::Version(spec.to_string())
        }
    }
}

/// A source tree's origin, as the built harness reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeInfo {
    pub path: PathBuf,
    /// `libbpf` or `kernel`.
    pub layout: String,
    /// `git describe --always --dirty --tags` and the commit, or "not a git tree".
    pub git: String,
}

/// What a build links and how long it took.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildInfo {
    /// The cache key (directory name).
    pub key: String,
    pub libbpf_rs: String,
    /// The libbpf-sys version required (`=X`); for a tree, the patched 1.7.0.
    pub libbpf_sys: String,
    /// The `api-0-NN` feature of libbpf-harness.
    pub api: String,
    pub tree: Option<TreeInfo>,
    /// The binary's `version` line (protocol, library, version, libbpf_rs, ...).
    pub version: serde_json::Value,
    /// Objects built with this libbpf's headers ([`OWN_OBJECTS`]): (file
    /// name, path). The runner loads these instead of its own.
    #[serde(default)]
    pub objects: Vec<(String, PathBuf)>,
    /// Seconds the build took when this call built it; 0 when it was cached.
    pub build_secs: f64,
}

/// libbpf-rs, libbpf-sys and the API feature for a version request.
pub fn pins(version: &str) -> Result<(&'static str, &'static str, &'static str), String> {
    Ok(match version {
        "1.5" => ("0.25.0", "1.5.2", "api-0-25"),
        "1.6" => ("0.26.1", "1.6.4", "api-0-26"),
        "1.7" => ("0.27.2", "1.7.0", "api-0-27"),
        "0.25.0" => ("0.25.0", "1.5.2", "api-0-25"),
        "0.26.0" => ("0.26.0", "1.6.4", "api-0-26"),
        "0.26.1" => ("0.26.1", "1.6.4", "api-0-26"),
        "0.26.2" => ("0.26.2", "1.7.0", "api-0-26"),
        "0.27.0" => ("0.27.0", "1.7.0", "api-0-27"),
        "0.27.1" => ("0.27.1", "1.7.0", "api-0-27"),
        "0.27.2" => ("0.27.2", "1.7.0", "api-0-27"),
        other => {
            return Err(format!(
                "libbpf@{other}: expected 1.5, 1.6, 1.7, an exact libbpf-rs version (0.25.0, 0.26.0-0.26.2, 0.27.0-0.27.2) \
                 or a path to a libbpf source tree"
            ))
        }
    })
}

/// The pins of a tree build: libbpf-rs 0.27.2 on a patched libbpf-sys 1.7.0.
const TREE_PINS: (&str, &str, &str) = ("0.27.2", "1.7.0", "api-0-27");
/// Bumped when the build recipe changes, so cached binaries are rebuilt.
const RECIPE: &str = "libbpf-build v1";
const BINARY: &str = "probeconf-libbpf-harness";
const TARGET: &str = "x86_64-unknown-linux-gnu";


/// `libbpf-harness/` of this repository (or `PROBECONF_LIBBPF_HARNESS_SRC`).
pub fn harness_source_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROBECONF_LIBBPF_HARNESS_SRC") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("libbpf-harness/Cargo.toml").is_file() {
        here.join("libbpf-harness")
    } else {
        // Compiled as part of libbpf-harness itself (its tests).
        here
    }
}

fn files_under(dir: &Path, skip: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        if name.starts_with('.') || skip(&name) {
            continue;
        }
        if p.is_dir() {
            files_under(&p, skip, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn hash_files(h: &mut Sha256, root: &Path, files: &mut [PathBuf]) -> std::io::Result<()> {
    files.sort();
    for f in files.iter() {
        h.update(f.strip_prefix(root).unwrap_or(f).to_string_lossy().as_bytes());
        h.update(std::fs::read(f)?);
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&str) -> bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name == ".git" || skip(&name) {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &to.join(&name), skip)?;
        } else {
            std::fs::copy(&p, to.join(&name))?;
        }
    }
    Ok(())
}

/// A libbpf tree in one of the two layouts: (src dir with *.c, uapi dir, layout).
fn tree_layout(tree: &Path) -> Result<(PathBuf, PathBuf, &'static str), String> {
    let libbpf = (tree.join("src"), tree.join("include/uapi/linux"));
    if libbpf.0.join("libbpf.c").is_file() && libbpf.1.join("bpf.h").is_file() {
        return Ok((libbpf.0, libbpf.1, "libbpf"));
    }
    // A kernel tree's root, or its tools/lib/bpf.
    for (bpf, uapi) in [
        (tree.join("tools/lib/bpf"), tree.join("tools/include/uapi/linux")),
        (tree.to_path_buf(), tree.join("../../include/uapi/linux")),
    ] {
        if bpf.join("libbpf.c").is_file() && uapi.join("bpf.h").is_file() {
            return Ok((bpf, uapi, "kernel"));
        }
    }
    Err(format!(
        "{}: not a libbpf source tree (want src/libbpf.c + include/uapi/linux/bpf.h, or a kernel tree's \
         tools/lib/bpf/libbpf.c + tools/include/uapi/linux/bpf.h)",
        tree.display()
    ))
}

fn git_origin(tree: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").arg("-C").arg(tree).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    match (git(&["describe", "--always", "--dirty", "--tags"]), git(&["rev-parse", "HEAD"])) {
        (Some(d), Some(c)) => format!("{d} ({c})"),
        _ => "not a git tree".into(),
    }
}

/// The libbpf-sys 1.7.0 crate in cargo's registry (downloaded by a plain
/// resolution of the harness copy, `cargo fetch`, when missing).
fn registry_libbpf_sys(version: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let prefix = format!("libbpf-sys-{version}+");
    for index in std::fs::read_dir(home.join("registry/src")).ok()? {
        let index = index.ok()?.path();
        for e in std::fs::read_dir(&index).ok()?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) && e.path().join("build.rs").is_file() {
                return Some(e.path());
            }
        }
    }
    None
}

/// Replaces the one line that pins `name` in a Cargo.toml, keeping its features.
fn rewrite_pin(manifest: &str, name: &str, version: &str) -> Result<String, String> {
    let mut found = false;
    let out: Vec<String> = manifest
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{name} = ")) && l.contains("version = \"") {
                found = true;
                let at = l.find("version = \"").unwrap() + "version = \"".len();
                let end = at + l[at..].find('"').unwrap();
                format!("{}={version}{}", &l[..at], &l[end..])
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        return Err(format!("libbpf-harness/Cargo.toml has no one-line `{name} = {{ version = ... }}` pin"));
    }
    Ok(out.join("\n") + "\n")
}

/// An exclusive flock on the build directory, held while the value lives
/// (the open file is the lock; it is never read).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn take(path: &Path) -> Result<Lock, String> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; released when `f` closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("lock {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }
}

/// BPF objects built per libbpf version, against that version's headers:
/// (file name the runner uses, source in the repository).
pub const OWN_OBJECTS: [(&str, &str); 1] = [("usdt_recorder.bpf.o", "bpf/usdt_recorder.bpf.c")];

/// Compiles one BPF object with this libbpf's headers (`<bpf/…>` from
/// `headers`, the libbpf source's src/), the repository's bpf/ headers, and
/// the same flags as build.rs.
fn compile_own_object(source: &Path, headers: &Path, work: &Path, out: &Path) -> Result<(), String> {
    let include = work.join("include");
    let bpf_inc = include.join("bpf");
    let _ = std::fs::remove_dir_all(&include);
    std::fs::create_dir_all(&bpf_inc).map_err(|e| e.to_string())?;
    for e in std::fs::read_dir(headers).map_err(|e| format!("{}: {e}", headers.display()))?.flatten() {
        if e.file_name().to_string_lossy().ends_with(".h") {
            std::fs::copy(e.path(), bpf_inc.join(e.file_name())).map_err(|e| e.to_string())?;
        }
    }
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let repo_bpf = source.parent().ok_or("object source has no directory")?;
    let out_tmp = out.with_extension("tmp");
    let o = Command::new(&clang)
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall"])
        .arg(format!("-I{}", include.display()))
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(format!("-I{}", repo_bpf.display()))
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&out_tmp)
        .output()
        .map_err(|e| format!("running {clang}: {e}"))?;
    if !o.status.success() {
        return Err(format!("compiling {} with {}: {}", source.display(), headers.display(), String::from_utf8_lossy(&o.stderr)));
    }
    std::fs::rename(&out_tmp, out).map_err(|e| e.to_string())
}

/// The harness binary for `req`, built if needed (see the module doc).
pub fn ensure_libbpf_harness(req: LibbpfBuild) -> Result<(PathBuf, BuildInfo), String> {
    let src = harness_source_dir();
    if !src.join("Cargo.toml").is_file() {
        return Err(format!("no libbpf harness sources at {} (set PROBECONF_LIBBPF_HARNESS_SRC)", src.display()));
    }
    let tsv = std::env::var_os("PROBECONF_ERRNO_TSV").map(PathBuf::from).unwrap_or_else(|| src.join("../bpf/errno-classes.tsv"));
    if !tsv.is_file() {
        return Err(format!("no errno table at {}", tsv.display()));
    }
    let (key, (libbpf_rs, libbpf_sys, api), tree) = match &req {
        LibbpfBuild::Version(v) => (v.clone(), pins(v)?, None),
        LibbpfBuild::Tree(t) => {
            let t = std::fs::canonicalize(t).map_err(|e| format!("libbpf tree {}: {e}", t.display()))?;
            let (bpf, uapi, layout) = tree_layout(&t)?;
            let mut h = Sha256::new();
            h.update(t.to_string_lossy().as_bytes());
            let key = format!("tree-{}", &format!("{:x}", h.finalize())[..16]);
            (key, TREE_PINS, Some((t, bpf, uapi, layout)))
        }
    };

    // What the binary depends on: recipe, pins, harness sources, the errno
    // table, and a tree's files.
    let mut h = Sha256::new();
    h.update(format!("{RECIPE} {libbpf_rs} {libbpf_sys} {api}\n").as_bytes());
    let mut files = Vec::new();
    files_under(&src, &|n| n == "target", &mut files).map_err(|e| format!("reading {}: {e}", src.display()))?;
    hash_files(&mut h, &src, &mut files).map_err(|e| e.to_string())?;
    h.update(std::fs::read(&tsv).map_err(|e| e.to_string())?);
    // The BPF sources of OWN_OBJECTS and the headers they include.
    let mut bpf_files = Vec::new();
    files_under(&src.join("../bpf"), &|_| false, &mut bpf_files).map_err(|e| e.to_string())?;
    bpf_files.retain(|f| f.extension().is_some_and(|x| x == "c" || x == "h"));
    hash_files(&mut h, &src.join("../bpf"), &mut bpf_files).map_err(|e| e.to_string())?;
    if let Some((t, bpf, uapi, _)) = &tree {
        let mut tf = Vec::new();
        files_under(bpf, &|_| false, &mut tf).map_err(|e| e.to_string())?;
        files_under(uapi, &|_| false, &mut tf).map_err(|e| e.to_string())?;
        tf.retain(|f| f.is_file());
        hash_files(&mut h, t, &mut tf).map_err(|e| e.to_string())?;
    }
    let want = format!("{:x}", h.finalize());

    let root = crate::cache::dir().join("libbpf-harness");
    let dir = root.join(&key);
    let bin = dir.join(BINARY);
    let stamp = dir.join("source.sha256");
    let info_file = dir.join("build.json");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _lock = Lock::take(&root.join("build.lock"))?;
    let cached = || -> Option<BuildInfo> {
        if !bin.is_file() || std::fs::read_to_string(&stamp).ok()?.trim() != want {
            return None;
        }
        let mut info: BuildInfo = serde_json::from_slice(&std::fs::read(&info_file).ok()?).ok()?;
        info.build_secs = 0.0;
        Some(info)
    };
    if let Some(info) = cached() {
        return Ok((bin, info));
    }

    let started = std::time::Instant::now();
    let work = dir.join("src");
    let _ = std::fs::remove_dir_all(&work);
    let harness = work.join("libbpf-harness");
    copy_tree(&src, &harness, &|n| n == "target").map_err(|e| format!("copying harness sources: {e}"))?;
    std::fs::create_dir_all(work.join("bpf")).map_err(|e| e.to_string())?;
    std::fs::copy(&tsv, work.join("bpf/errno-classes.tsv")).map_err(|e| e.to_string())?;
    let manifest_path = harness.join("Cargo.toml");
    let mut manifest = std::fs::read_to_string(&manifest_path).map_err(|e| e.to_string())?;
    manifest = rewrite_pin(&manifest, "libbpf-rs", libbpf_rs)?;
    manifest = rewrite_pin(&manifest, "libbpf-sys", libbpf_sys)?;

    let target_dir = root.join("target");
    let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("cargo"));
    let run_cargo = |args: &[&str]| -> Result<(), String> {
        let out = Command::new(&cargo)
            .args(args)
            .current_dir(&harness)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env(format!("CARGO_TARGET_{}_RUSTFLAGS", TARGET.to_uppercase().replace('-', "_")), "-C target-feature=+crt-static")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .map_err(|e| format!("running cargo {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = text.lines().collect();
            Err(format!("cargo {} failed:\n{}", args.join(" "), lines[lines.len().saturating_sub(40)..].join("\n")))
        }
    };

    let mut tree_info = None;
    if let Some((t, bpf, uapi, layout)) = &tree {
        std::fs::write(&manifest_path, &manifest).map_err(|e| e.to_string())?;
        // The crate to patch: libbpf-sys 1.7.0 from cargo's registry.
        if registry_libbpf_sys(libbpf_sys).is_none() {
            run_cargo(&["fetch"])?;
        }
        let crate_dir = registry_libbpf_sys(libbpf_sys).ok_or(format!("libbpf-sys {libbpf_sys} not in cargo's registry after cargo fetch"))?;
        let patched = work.join("libbpf-sys");
        copy_tree(&crate_dir, &patched, &|_| false).map_err(|e| format!("copying libbpf-sys: {e}"))?;
        let lib = patched.join("libbpf");
        if *layout == "libbpf" {
            // The tree replaces libbpf/ whole (its own src/Makefile).
            std::fs::remove_dir_all(&lib).map_err(|e| e.to_string())?;
            copy_tree(t, &lib, &|_| false).map_err(|e| format!("copying {}: {e}", t.display()))?;
        } else {
            // Kernel layout: libbpf-sys's standalone Makefile and compat
            // headers stay; src/ gets the tree's sources, OBJS its *.c, and
            // include/uapi/linux the tree's versions of the same headers.
            let lsrc = lib.join("src");
            for e in std::fs::read_dir(&lsrc).map_err(|e| e.to_string())?.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                let source = n.ends_with(".c") || n.ends_with(".h") || n == "libbpf.map";
                // bpf_helper_defs.h is generated in a kernel tree: keep libbpf-sys's if the tree has none.
                let keep = n == "bpf_helper_defs.h" && !bpf.join(&n).exists();
                if source && !keep {
                    std::fs::remove_file(e.path()).map_err(|e| e.to_string())?;
                }
            }
            let mut objs = Vec::new();
            for e in std::fs::read_dir(bpf).map_err(|e| e.to_string())?.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with(".c") || n.ends_with(".h") || n == "libbpf.map" {
                    std::fs::copy(e.path(), lsrc.join(&n)).map_err(|e| e.to_string())?;
                    if let Some(stem) = n.strip_suffix(".c") {
                        objs.push(format!("{stem}.o"));
                    }
                }
            }
            objs.sort();
            // The Makefile's release number must agree with libbpf.map: a
            // kernel tree has MAJOR.MINOR (libbpf_version.h) and no patch level.
            let vh = std::fs::read_to_string(bpf.join("libbpf_version.h")).map_err(|e| format!("{}: {e}", bpf.join("libbpf_version.h").display()))?;
            let define = |name: &str| -> Result<String, String> {
                vh.lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("#define {name} ")).map(|v| v.trim().to_string()))
                    .ok_or(format!("libbpf_version.h has no {name}"))
            };
            let (major, minor) = (define("LIBBPF_MAJOR_VERSION")?, define("LIBBPF_MINOR_VERSION")?);
            let mk = std::fs::read_to_string(lsrc.join("Makefile")).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let mut in_objs = false;
            for l in mk.lines() {
                if l.starts_with("LIBBPF_MAJOR_VERSION :=") {
                    out.push(format!("LIBBPF_MAJOR_VERSION := {major}"));
                } else if l.starts_with("LIBBPF_MINOR_VERSION :=") {
                    out.push(format!("LIBBPF_MINOR_VERSION := {minor}"));
                } else if l.starts_with("LIBBPF_PATCH_VERSION :=") {
                    out.push("LIBBPF_PATCH_VERSION := 0".to_string());
                } else if l.starts_with("OBJS :=") {
                    out.push(format!("OBJS := {}", objs.join(" ")));
                    in_objs = l.trim_end().ends_with('\\');
                } else if in_objs {
                    in_objs = l.trim_end().ends_with('\\');
                } else {
                    out.push(l.to_string());
                }
            }
            std::fs::write(lsrc.join("Makefile"), out.join("\n") + "\n").map_err(|e| e.to_string())?;
            let luapi = lib.join("include/uapi/linux");
            for e in std::fs::read_dir(&luapi).map_err(|e| e.to_string())?.flatten() {
                let from = uapi.join(e.file_name());
                if from.is_file() {
                    std::fs::copy(&from, e.path()).map_err(|e| e.to_string())?;
                }
            }
        }
        let info = TreeInfo { path: t.clone(), layout: layout.to_string(), git: git_origin(t) };
        std::fs::write(lib.join("PROBECONF-ORIGIN"), format!("path={}\nlayout={}\ngit={}\n", info.path.display(), info.layout, info.git))
            .map_err(|e| e.to_string())?;
        manifest.push_str("\n[patch.crates-io]\nlibbpf-sys = { path = \"../libbpf-sys\" }\n");
        tree_info = Some(info);
    }
    std::fs::write(&manifest_path, &manifest).map_err(|e| e.to_string())?;
    run_cargo(&["build", "--release", "--target", TARGET, "--no-default-features", "--features", api, "--bin", BINARY])?;
    let built = target_dir.join(TARGET).join("release").join(BINARY);
    let tmp = dir.join(format!("{BINARY}.tmp"));
    std::fs::copy(&built, &tmp).map_err(|e| format!("{}: {e}", built.display()))?;
    std::fs::rename(&tmp, &bin).map_err(|e| e.to_string())?;

    // Ask the binary what it links, and refuse a mismatch.
    let out = Command::new(&bin).arg("version").output().map_err(|e| format!("{} version: {e}", bin.display()))?;
    let version: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{} version: {e}: {}", bin.display(), String::from_utf8_lossy(&out.stderr)))?;
    if version["libbpf_rs"] != libbpf_rs {
        return Err(format!("built {} reports libbpf-rs {}, asked for {libbpf_rs}", bin.display(), version["libbpf_rs"]));
    }
    if let LibbpfBuild::Version(v) = &req {
        let linked = version["version"].as_str().unwrap_or_default();
        let sys_minor = libbpf_sys.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        if !linked.starts_with(&format!("{sys_minor}.")) && linked != sys_minor {
            return Err(format!("libbpf@{v}: the built harness links libbpf {linked}, not {sys_minor}"));
        }
    }
    // The objects whose layout this libbpf's headers define, built with them:
    // the USDT recorder (usdt.bpf.h's spec layout changed in 1.7). A tool on
    // this libbpf compiles against these headers too.
    let headers = match &tree {
        Some(_) => work.join("libbpf-sys/libbpf/src"),
        None => registry_libbpf_sys(libbpf_sys).ok_or(format!("libbpf-sys {libbpf_sys} not in cargo's registry after the build"))?.join("libbpf/src"),
    };
    let mut objects = Vec::new();
    for (name, source) in OWN_OBJECTS {
        let obj = dir.join(name);
        compile_own_object(&src.join("..").join(source), &headers, &work, &obj)?;
        objects.push((name.to_string(), obj));
    }
    let info = BuildInfo {
        key,
        libbpf_rs: libbpf_rs.into(),
        libbpf_sys: libbpf_sys.into(),
        api: api.into(),
        tree: tree_info,
        version,
        build_secs: started.elapsed().as_secs_f64(),
        objects,
    };
    std::fs::write(&info_file, serde_json::to_vec_pretty(&info).unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&stamp, &want).map_err(|e| e.to_string())?;
    Ok((bin, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_pins() {
        assert_eq!(LibbpfBuild::parse("1.5"), LibbpfBuild::Version("1.5".into()));
        assert_eq!(LibbpfBuild::parse("/src/libbpf"), LibbpfBuild::Tree("/src/libbpf".into()));
        assert_eq!(pins("1.5").unwrap(), ("0.25.0", "1.5.2", "api-0-25"));
        assert_eq!(pins("0.26.2").unwrap().1, "1.7.0");
        assert!(pins("1.4").is_err());
    }

    #[test]
    fn rewrites_one_pin_line() {
        let m = "[dependencies]\nlibbpf-rs = { version = \"=0.27.2\", default-features = false, features = [\"vendored\"] }\nlibc = \"0.2\"\n";
        let r = rewrite_pin(m, "libbpf-rs", "0.25.0").unwrap();
        assert!(r.contains("libbpf-rs = { version = \"=0.25.0\", default-features = false"), "{r}");
        assert!(rewrite_pin(m, "libbpf-sys", "1.5.2").is_err());
    }
}
