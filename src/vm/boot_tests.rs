//! Real boots. The kernel comes from `PROBECONF_TEST_VMLINUZ` (a Debian
//! vmlinuz, e.g. ~/.cache/probeconf/kernels/<release>/vmlinuz); the tests
//! that need one are `#[ignore]`d, so run them with
//!
//! ```sh
//! PROBECONF_TEST_VMLINUZ=/path/to/vmlinuz cargo test --lib vm:: -- --ignored --nocapture
//! ```
//!
//! The image's /init must be the probeconf binary (the test binary has no
//! guest hook in its `main`), so the tests build it with cargo first.

use super::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn vmlinuz() -> PathBuf {
    let p = std::env::var_os("PROBECONF_TEST_VMLINUZ").expect("set PROBECONF_TEST_VMLINUZ to a vmlinuz to boot");
    PathBuf::from(p)
}

fn have_qemu() -> bool {
    which::which("qemu-system-x86_64").is_ok()
}

/// The probeconf binary of this profile, built now so that it is current.
fn probeconf_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--quiet", "--bin", "probeconf"];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    duct::cmd(cargo, &args).dir(env!("CARGO_MANIFEST_DIR")).run().expect("cargo build --bin probeconf");
    // The test binary is target/<triple>/<profile>/deps/probeconf-HASH.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("probeconf");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Writes an image with these cases (relative to cases/) into `dir`. With no
/// cases, nothing runs the cilium loader, so a placeholder stands in for the
/// Go harness (and these tests do not depend on building it).
fn image_with(dir: &Path, cases: &[&str]) -> PathBuf {
    let harness = if cases.is_empty() {
        let p = dir.join("no-harness");
        std::fs::write(&p, "#!/bin/false\n").unwrap();
        p
    } else {
        crate::harness_build::ensure_harness(None).expect("Go harness")
    };
    let spec =
        ImageSpec { init: Some(probeconf_bin()), harness: Some(harness), cases: cases.iter().map(|c| cases_dir().join(c)).collect() };
    let out = dir.join("initramfs.cpio");
    let t = Instant::now();
    let bytes = image::write(&spec, &out).unwrap();
    eprintln!("image: {:.1} MB in {:.2?}", bytes as f64 / 1e6, t.elapsed());
    out
}

fn show(o: &BootOutcome) -> String {
    format!(
        "status {:?}, wall {:.1?}, to userspace {:?}, {:?} booting {}{}\n--- lines\n{}\n--- console tail\n{}",
        o.status,
        o.wall,
        o.to_userspace,
        o.accel,
        o.kernel.display(),
        o.pvh_fallback.as_ref().map(|w| format!(" (no PVH: {w})")).unwrap_or_default(),
        o.lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"),
        o.console_tail
    )
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn boots_a_debian_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let cases = ["uprobe/uprobe-entry-leaf.yaml", "uprobe-session/uprobe-session-skip-odd.yaml", "uretprobe/uretprobe-return-leaf.yaml"];
    let initrd = image_with(dir.path(), &cases);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(300);
    // PROBECONF_TEST_WORK keeps console.log, results.jsonl and qemu.log.
    opts.work_dir = Some(std::env::var_os("PROBECONF_TEST_WORK").map(PathBuf::from).unwrap_or_else(|| dir.path().join("vm")));
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert_eq!(o.status, BootStatus::Completed { exit_code: 0 }, "{}", show(&o));
    let hello = o.hello().unwrap();
    let features = o.lines.iter().find(|l| l["type"] == "features").expect("features line");
    let session = features["features"]["results"]["uprobe-session"]["supported"].as_bool().unwrap();
    eprintln!(
        "kernel {} · guest uptime at hello {}s, at done {}s · uprobe-session {session}",
        hello["kernel"],
        hello["uptime_s"],
        o.done().unwrap()["uptime_s"]
    );
    let results = o.results();
    assert_eq!(results.len(), cases.len() * 2, "{}", show(&o));
    for id in ["uprobe-entry-leaf", "uprobe-session-skip-odd", "uretprobe-return-leaf"] {
        for loader in ["libbpf", "cilium"] {
            let r: &Value =
                results.iter().find(|r| r["case"] == id && r["loader"] == loader).unwrap_or_else(|| panic!("no {id} [{loader}]"));
            eprintln!("{id:<28} {loader:<7} {:<12} {}", r["verdict"].as_str().unwrap(), r["duration_ms"]);
            // The VM machinery is under test here, not the kernel: a run may
            // fail (6.1 lacks bpf_get_func_ip in uprobes, which the uprobe
            // cases need), but it must not break (`error`), and a session
            // case on a kernel the probes found without sessions is unsupported.
            assert_ne!(r["verdict"], "error", "{id} [{loader}]: {}", r["detail"]);
            if id.contains("session") && !session {
                assert_eq!(r["verdict"], "unsupported", "{id} [{loader}]: {}", r["detail"]);
            }
        }
    }
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn a_hung_boot_times_out_with_a_console_tail() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &[]);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(1);
    let t = Instant::now();
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert_eq!(o.status, BootStatus::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(5), "kill took {:?}", t.elapsed());
    assert!(!o.console_tail.is_empty(), "no console output within 1 s");
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn an_image_without_init_is_a_kernel_panic() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("empty.cpio");
    Initramfs::new().char_device("/dev/console", 0o600, 5, 1).write_file(&initrd).unwrap();
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert_eq!(o.status, BootStatus::Panicked);
    assert!(o.console_tail.contains("Kernel panic"), "{}", o.console_tail);
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn hello_mode_boots_to_userspace() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &[]);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    opts.kernel_cmdline_extra = GuestOptions { mode: GuestMode::Hello, ..Default::default() }.to_kernel_args();
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert_eq!(o.status, BootStatus::Completed { exit_code: 0 });
    assert!(o.results().is_empty());
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn bad_guest_options_are_fatal_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &[]);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    opts.kernel_cmdline_extra = "probeconf.loader=libbpf".into();
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert!(matches!(&o.status, BootStatus::Incomplete(m) if m.contains("probeconf.loader")), "{:?}", o.status);
}

/// Needs QEMU but no kernel: the corrupt one is made here.
#[test]
fn a_corrupt_vmlinuz_fails_quickly_with_qemus_message() {
    if !have_qemu() {
        eprintln!("qemu-system-x86_64 not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd) = (dir.path().join("vmlinuz"), dir.path().join("initrd"));
    std::fs::write(&kernel, vec![0u8; 4096]).unwrap();
    Initramfs::new().dir("/tmp", 0o1777).write_file(&initrd).unwrap();
    let mut opts = BootOptions::new(&kernel, &initrd);
    opts.timeout = Duration::from_secs(30);
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert!(!o.is_completed());
    assert!(o.wall < Duration::from_secs(10), "took {:?}", o.wall);
    match &o.status {
        // QEMU 7.2: "linux kernel too old to load a ram disk" (it finds no bzImage header).
        BootStatus::QemuFailed(m) => assert!(m.contains("qemu") && !o.console_tail.is_empty(), "{m}"),
        other => assert!(!o.console_tail.is_empty(), "{other:?} without a console tail"),
    }
}

/// A manual tool: boots `PROBECONF_TEST_VMLINUZ` with the cases of
/// `PROBECONF_TEST_CASES` (comma-separated, relative to cases/; default all)
/// and the kernel arguments of `PROBECONF_TEST_ARGS`, and prints every line.
#[test]
#[ignore = "manual: boots a kernel with cases and arguments from the environment"]
fn boot_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let cases = std::env::var("PROBECONF_TEST_CASES").unwrap_or_else(|_| ".".into());
    let cases: Vec<&str> = cases.split(',').filter(|c| !c.is_empty()).collect();
    let work = std::env::var_os("PROBECONF_TEST_WORK").map(PathBuf::from);
    if let Some(w) = &work {
        std::fs::create_dir_all(w).unwrap();
    }
    let initrd = image_with(work.as_deref().unwrap_or(dir.path()), &cases);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(1800);
    opts.kernel_cmdline_extra = std::env::var("PROBECONF_TEST_ARGS").unwrap_or_default();
    opts.work_dir = work;
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    for r in o.results() {
        eprintln!(
            "{:<36} {:<7} {:<12} {:>6} ms  {}",
            r["case"].as_str().unwrap_or(""),
            r["loader"].as_str().unwrap_or(""),
            r["verdict"].as_str().unwrap_or(""),
            r["duration_ms"],
            r["detail"].as_str().unwrap_or("").lines().next().unwrap_or("")
        );
    }
}

/// Accel::Auto tries one short KVM boot and keeps TCG if it does not complete
/// (nested KVM fails on the CI machine); either way the boot completes.
#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn auto_accel_picks_one_that_boots() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &[]);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    opts.accel = Accel::Auto;
    opts.kernel_cmdline_extra = GuestOptions { mode: GuestMode::Hello, ..Default::default() }.to_kernel_args();
    let t = Instant::now();
    let o = boot(&opts);
    eprintln!("{}\nchose {:?}; probe + boot took {:.1?}", show(&o), o.accel, t.elapsed());
    assert_eq!(o.status, BootStatus::Completed { exit_code: 0 });
}

/// Every kernel under `PROBECONF_TEST_KERNELS` (default
/// ~/.cache/probeconf/kernels, `<release>/vmlinuz`), two cases each, through
/// `boot_many` at the default parallelism.
#[test]
#[ignore = "boots every cached kernel"]
fn boots_every_cached_kernel() {
    let root =
        std::env::var_os("PROBECONF_TEST_KERNELS").map(PathBuf::from).unwrap_or_else(|| crate::harness_build::cache_dir().join("kernels"));
    let mut kernels: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().filter_map(|e| Some(e.ok()?.path().join("vmlinuz"))).filter(|k| k.is_file()).collect();
    kernels.sort();
    assert!(!kernels.is_empty(), "no kernels under {}", root.display());
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &["uprobe/uprobe-entry-leaf.yaml", "uprobe-session/uprobe-session-skip-odd.yaml"]);
    let jobs = kernels
        .iter()
        .map(|k| {
            let mut o = BootOptions::new(k, &initrd);
            o.timeout = Duration::from_secs(600);
            o
        })
        .collect();
    let t = Instant::now();
    let outs = boot_many(jobs, 0, |i, o| {
        let release = kernels[i].parent().unwrap().file_name().unwrap().to_string_lossy();
        let verdicts: Vec<String> = o
            .results()
            .iter()
            .map(|r| format!("{}[{}]={}", r["case"].as_str().unwrap(), r["loader"].as_str().unwrap(), r["verdict"].as_str().unwrap()))
            .collect();
        eprintln!(
            "{release:<24} {:?} wall {:.1?} userspace {:.1?}{} {}",
            o.status,
            o.wall,
            o.to_userspace.unwrap_or_default(),
            o.pvh_fallback.as_ref().map(|w| format!(" (bzImage: {w})")).unwrap_or_default(),
            verdicts.join(" ")
        );
    });
    eprintln!("{} kernels in {:.1?} at parallelism {}", outs.len(), t.elapsed(), default_parallelism());
    for (k, o) in kernels.iter().zip(&outs) {
        assert!(o.is_completed(), "{}: {}", k.display(), show(o));
        assert_eq!(o.results().len(), 4, "{}: {}", k.display(), show(o));
        assert!(o.results().iter().all(|r| r["verdict"] != "error"), "{}: {}", k.display(), show(o));
    }
}

#[test]
#[ignore = "boots a kernel: set PROBECONF_TEST_VMLINUZ"]
fn a_panic_in_the_guest_ends_the_vm_with_a_fatal_line() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = image_with(dir.path(), &[]);
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    opts.kernel_cmdline_extra = GuestOptions { mode: GuestMode::Panic, ..Default::default() }.to_kernel_args();
    let o = boot(&opts);
    eprintln!("{}", show(&o));
    assert!(matches!(&o.status, BootStatus::Incomplete(m) if m.contains("deliberate panic")), "{:?}", o.status);
    assert!(o.lines.iter().any(|l| l["type"] == "fatal"));
}
