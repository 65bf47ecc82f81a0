//! The guest image: a self-contained initramfs that needs no kernel modules
//! and no root filesystem.
//!
//! ```text
//! /init                     the static probeconf binary (guest mode, src/vm/guest.rs)
//! /loaders.json             the loaders to run, as specs (src/loaders/registry.rs)
//! /harness/N                each harness program those specs name (static binaries)
//! /cases/...                the chosen case files, in their layout under cases/,
//!                           with the fixtures they name (`binary: ../fixtures/x`)
//! /lib64/ld-linux-x86-64.so.2, /lib/x86_64-linux-gnu/libc.so.6, ...
//!                           what probe-target needs: it is embedded in probeconf
//!                           and written out per run, but linked against libc
//! /dev/{console,null,ttyS0,ttyS1}   nodes for before devtmpfs is mounted
//! /proc /sys /dev /tmp /sys/fs/bpf /sys/kernel/{tracing,debug}   mount points
//! ```

use super::initramfs::Initramfs;
use crate::run::artifacts::{LIB_PROBE_TARGET, PROBE_TARGET};
use std::path::{Component, Path, PathBuf};

/// The loaders of the image, read by the guest.
pub const LOADERS_FILE: &str = "/loaders.json";

/// What goes into an image.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// The static probeconf binary; `None` = this executable.
    pub init: Option<PathBuf>,
    /// The loaders the guest runs, as the host opened them: the harness
    /// programs they name are copied into the image and the specs rewritten
    /// to point at the copies.
    pub loaders: Vec<crate::loaders::registry::LoaderSpec>,
    /// Case files or directories (a directory brings everything under it).
    pub cases: Vec<PathBuf>,
}

/// The image's archive path for a host file under a `cases/` directory:
/// `/work/main/cases/uprobe/a.yaml` → `cases/uprobe/a.yaml`. A path with no
/// `cases` component lands directly in `/cases`.
pub fn guest_case_path(host: &Path) -> String {
    let parts: Vec<String> = lexical(host).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.iter().rposition(|p| p == "cases") {
        Some(i) if i + 1 < parts.len() => format!("cases/{}", parts[i + 1..].join("/")),
        _ => format!("cases/{}", host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
    }
}

/// Resolves `.` and `..` without touching the filesystem (fixtures are named
/// relative to their case: `../fixtures/not-elf.txt`).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn add_case_tree(mut img: Initramfs, host: &Path) -> Result<Initramfs, String> {
    if host.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(host).map_err(|e| format!("{}: {e}", host.display()))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            img = add_case_tree(img, &e)?;
        }
        return Ok(img);
    }
    let is_case = host.extension().is_some_and(|x| x == "yaml" || x == "yml");
    img = img.file_from(&guest_case_path(host), host, 0o644);
    if is_case {
        // A case that cannot be read still goes in: the guest reports it as a
        // case-error, like `probeconf run` does.
        if let Ok(case) = crate::case::Case::load(host) {
            let dir = host.parent().unwrap_or(Path::new("."));
            for p in &case.probes {
                if matches!(p.binary.as_str(), "probe-target" | "libprobetarget.so") || Path::new(&p.binary).is_absolute() {
                    continue;
                }
                let fixture = lexical(&dir.join(&p.binary));
                // A missing fixture is part of some cases (the loader must say not-found).
                if fixture.is_file() {
                    img = img.file_from(&guest_case_path(&fixture), &fixture, 0o644);
                }
            }
        }
    }
    Ok(img)
}

/// The shared objects probe-target loads, as `ldd` resolves them on this
/// host: the dynamic loader and libc (libprobetarget.so is written beside
/// probe-target at run time and found through its `$ORIGIN` runpath).
pub fn probe_target_libraries() -> Result<Vec<PathBuf>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = dir.path().join("probe-target");
    std::fs::write(&exe, PROBE_TARGET).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("libprobetarget.so"), LIB_PROBE_TARGET).map_err(|e| e.to_string())?;
    let mut libs = Vec::new();
    for bin in [exe, dir.path().join("libprobetarget.so")] {
        let out = duct::cmd("ldd", [&bin]).stdout_capture().stderr_capture().unchecked().run().map_err(|e| format!("running ldd: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        libs.extend(parse_ldd(&text, dir.path())?);
    }
    libs.sort();
    libs.dedup();
    if !libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")) {
        return Err(format!("ldd of probe-target named no dynamic loader: {libs:?}"));
    }
    Ok(libs)
}

/// The absolute paths in `ldd` output, leaving out files under `skip_dir`.
fn parse_ldd(text: &str, skip_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not found") {
            return Err(format!("ldd of probe-target: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') && !Path::new(path).starts_with(skip_dir) {
            out.push(PathBuf::from(path));
        }
    }
    Ok(out)
}

/// Assembles the image (files are read when it is written).
pub fn build(spec: &ImageSpec) -> Result<Initramfs, String> {
    let init = match &spec.init {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?,
    };
    if !init.is_file() {
        return Err(format!("init {} is not a file", init.display()));
    }
    let mut img = Initramfs::new().file_from("/init", &init, 0o755);
    // Each harness program goes in as /harness/N; the specs in /loaders.json
    // name those copies. A harness must run there on its own: a static binary
    // (the Go and libbpf harnesses are), not a script needing an interpreter.
    let mut specs = Vec::new();
    for (i, l) in spec.loaders.iter().enumerate() {
        match l {
            crate::loaders::registry::LoaderSpec::Harness { label, id, command, objects } => {
                let exe = PathBuf::from(command.first().ok_or("a loader with an empty command")?);
                if !exe.is_file() {
                    return Err(format!("loader {label}: {} is not a file", exe.display()));
                }
                let inside = format!("/harness/{i}");
                img = img.file_from(&inside, &exe, 0o755);
                let mut command = command.clone();
                command[0] = inside;
                let mut own = Vec::new();
                for (name, path) in objects {
                    let at = format!("/harness/{i}.objects/{name}");
                    img = img.file_from(&at, path, 0o644);
                    own.push((name.clone(), PathBuf::from(at)));
                }
                specs.push(crate::loaders::registry::LoaderSpec::Harness { label: label.clone(), id: *id, command, objects: own });
            }
            crate::loaders::registry::LoaderSpec::Bpftrace(cmd) => {
                let (with, inside) = bpftrace_files(cmd, i)?;
                for (at, host) in with {
                    img = img.file_from(&at, &host, 0o755);
                }
                specs.push(crate::loaders::registry::LoaderSpec::Bpftrace(inside));
            }
            other => specs.push(other.clone()),
        }
    }
    img = img.file(LOADERS_FILE, serde_json::to_vec_pretty(&specs).expect("specs serialise"), 0o644);
    let mut img = img
        .dir("/cases", 0o755)
        .dir("/proc", 0o555)
        .dir("/sys", 0o555)
        .dir("/sys/fs/bpf", 0o755)
        .dir("/sys/kernel/tracing", 0o755)
        .dir("/sys/kernel/debug", 0o755)
        .dir("/dev", 0o755)
        // The kernel opens /dev/console for init's stdio before devtmpfs is
        // mounted; without it init has no fds 0-2, and Rust's runtime aborts
        // when it cannot open /dev/null in their place.
        .char_device("/dev/console", 0o600, 5, 1)
        .char_device("/dev/null", 0o666, 1, 3)
        .char_device("/dev/ttyS0", 0o660, 4, 64)
        .char_device("/dev/ttyS1", 0o660, 4, 65)
        .dir("/tmp", 0o1777)
        .dir("/root", 0o700);
    for lib in probe_target_libraries()? {
        img = img.file_from(&lib.to_string_lossy(), &lib, 0o755);
    }
    for c in &spec.cases {
        if !c.exists() {
            return Err(format!("case path {} does not exist", c.display()));
        }
        img = add_case_tree(img, c)?;
    }
    Ok(img)
}

/// What a bpftrace of the host needs in the image, and how the guest runs
/// it: the binary at `/bpftrace/N/bpftrace` and every shared object the
/// dynamic loader resolves for it (the root's loader `--list`, or `ldd` for a
/// binary given by path) in `/bpftrace/N/lib/` under the name it is looked up
/// by, run with that loader and only that directory. Not the whole root
/// (about 300 MB): only the closure of the binary's ELF dependencies.
pub fn bpftrace_files(
    cmd: &crate::loaders::bpftrace::BpftraceCommand,
    n: usize,
) -> Result<(Vec<(String, PathBuf)>, crate::loaders::bpftrace::BpftraceCommand), String> {
    let dir = format!("/bpftrace/{n}");
    let listing = match &cmd.root {
        Some(_) => {
            // command = [loader, --inhibit-cache, --library-path, LP, --argv0, NAME, BIN]
            let loader = &cmd.command[0];
            let lp = cmd.command.iter().position(|a| a == "--library-path").and_then(|i| cmd.command.get(i + 1)).cloned().unwrap_or_default();
            duct::cmd(loader, ["--inhibit-cache", "--library-path", &lp, "--list", &cmd.binary.display().to_string()])
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .map_err(|e| format!("{}: listing its libraries: {e}", cmd.label))?
        }
        None => duct::cmd("ldd", [&cmd.binary]).stdout_capture().stderr_capture().unchecked().run().map_err(|e| format!("ldd: {e}"))?,
    };
    let text = String::from_utf8_lossy(&listing.stdout);
    let mut files = vec![(format!("{dir}/bpftrace"), cmd.binary.clone())];
    let mut loader_inside = None;
    for line in text.lines().map(str::trim) {
        if line.contains("not found") {
            return Err(format!("{}: a library is missing: {line}", cmd.label));
        }
        match line.split_once("=>") {
            Some((name, right)) => {
                let host = right.trim().split(" (").next().unwrap_or("").trim();
                if host.starts_with('/') {
                    // The loader is listed as `/lib64/ld-linux-x86-64.so.2 => <root>/lib64/…`.
                    let name = Path::new(name.trim()).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let at = format!("{dir}/lib/{name}");
                    if name.contains("ld-linux") {
                        loader_inside = Some(at.clone());
                    }
                    files.push((at, PathBuf::from(host)));
                }
            }
            None => {
                let host = line.split(" (").next().unwrap_or("").trim();
                if host.starts_with('/') && host.contains("ld-linux") {
                    let name = Path::new(host).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let at = format!("{dir}/lib/{name}");
                    files.push((at.clone(), PathBuf::from(host)));
                    loader_inside = Some(at);
                }
            }
        }
    }
    let loader = loader_inside.ok_or_else(|| format!("{}: the loader's listing named no dynamic loader: {}", cmd.label, text.trim()))?;
    let mut inside = cmd.clone();
    inside.command = vec![
        loader,
        "--inhibit-cache".into(),
        "--library-path".into(),
        format!("{dir}/lib"),
        "--argv0".into(),
        "bpftrace".into(),
        format!("{dir}/bpftrace"),
    ];
    inside.binary = PathBuf::from(format!("{dir}/bpftrace"));
    inside.root = None;
    inside.origin = format!("{} (in the image: {dir})", cmd.origin);
    Ok((files, inside))
}

/// The guest memory (QEMU's `-m`) an image of `bytes` needs: the default
/// `1G` while it fits, more only when it must. The kernel holds the archive
/// and its unpacked copy in RAM at once, and a bpftrace in the guest needs
/// about 200 MB more (LLVM): 3 × the image + 256 MB, rounded up to 256 MB.
/// Measured (7.3, 6.12, 6.1): a 297 MB image (one bpftrace) booted in 1G; a
/// 509 MB one (two bpftraces) booted in 1536M, but a 516 MB one (two
/// bpftraces and the Go harness) did not ("No working init found", SIGBUS
/// in init: the archive was not unpacked whole), so the margin is wide.
pub fn memory_for(bytes: u64) -> String {
    let mb = bytes.div_ceil(1 << 20);
    let need = 3 * mb + 256;
    if need <= 1024 {
        "1G".into()
    } else {
        format!("{}M", need.div_ceil(256) * 256)
    }
}

/// Builds and writes the image; returns its size in bytes.
pub fn write(spec: &ImageSpec, out: &Path) -> Result<u64, String> {
    build(spec)?.write_file(out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_grows_only_for_large_images() {
        assert_eq!(memory_for(30 << 20), "1G");
        assert_eq!(memory_for(200 << 20), "1G");
        assert_eq!(memory_for(297_096_268), "1280M");
        assert_eq!(memory_for(516_000_000), "1792M");
    }

    #[test]
    fn case_paths_keep_their_layout_under_cases() {
        assert_eq!(guest_case_path(Path::new("/work/main/cases/uprobe/a.yaml")), "cases/uprobe/a.yaml");
        assert_eq!(guest_case_path(Path::new("cases/errors/../fixtures/not-elf.txt")), "cases/fixtures/not-elf.txt");
        assert_eq!(guest_case_path(Path::new("/elsewhere/b.yaml")), "cases/b.yaml");
    }

    #[test]
    fn ldd_output_is_parsed_without_the_private_library() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibprobetarget.so => /tmp/x/libprobetarget.so (0x1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        let libs = parse_ldd(text, Path::new("/tmp/x")).unwrap();
        assert_eq!(libs, [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]);
        assert!(parse_ldd("\tlibm.so.6 => not found\n", Path::new("/tmp/x")).is_err());
    }

    #[test]
    fn image_has_init_libc_cases_and_fixtures() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
        let fake = tempfile::NamedTempFile::new().unwrap();
        let harness = crate::loaders::registry::LoaderSpec::Harness {
            label: "cilium".into(),
            id: crate::case::LoaderId::Cilium,
            command: vec![fake.path().display().to_string()],
            objects: vec![],
        };
        let spec = ImageSpec {
            init: Some(fake.path().into()),
            loaders: vec![crate::loaders::registry::LoaderSpec::Libbpf, harness],
            cases: vec![root.join("uprobe/uprobe-entry-leaf.yaml"), root.join("errors/uprobe-not-elf.yaml")],
        };
        let img = build(&spec).unwrap();
        for p in [
            "init",
            "harness/1",
            "loaders.json",
            "lib64/ld-linux-x86-64.so.2",
            "cases/uprobe/uprobe-entry-leaf.yaml",
            "cases/errors/uprobe-not-elf.yaml",
            "cases/fixtures/not-elf.txt",
            "dev/console",
            "sys/fs/bpf",
            "tmp",
        ] {
            assert!(img.contains(p), "{p} missing: {:?}", img.paths().collect::<Vec<_>>());
        }
        assert!(img.paths().any(|p| p.ends_with("/libc.so.6")));
        let mut buf = Vec::new();
        img.write_to(&mut buf).unwrap();
        let parsed = crate::vm::initramfs::tests::parse(&buf);
        let fixture = parsed.iter().find(|e| e.name == "cases/fixtures/not-elf.txt").unwrap();
        assert_eq!(fixture.data, std::fs::read(root.join("fixtures/not-elf.txt")).unwrap());
    }
}
