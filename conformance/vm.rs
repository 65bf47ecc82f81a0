//! Real boots under QEMU (TCG; no root needed), of the paths the matrix test
//! does not take: a hung boot, a kernel panic, a broken or missing kernel,
//! bad guest options, the guest's own fatal path, hello mode, the KVM probe,
//! and PVH extraction. The kernel is Debian 6.18 from the kernel cache
//! (downloaded once when missing), or `PROBECONF_TEST_VMLINUZ`.
//!
//! The image's /init is the real probeconf binary (a test binary has no
//! guest hook in its main). No case runs in most of them, so their image
//! has no loaders.

use probeconf::vm::vmlinux::{extract, has_pvh_note};
use probeconf::vm::{boot, boot_retrying, Accel, BootOptions, BootOutcome, BootStatus, GuestMode, GuestOptions, ImageSpec, Initramfs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

fn vmlinuz() -> PathBuf {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| match std::env::var_os("PROBECONF_TEST_VMLINUZ") {
        Some(p) => PathBuf::from(p),
        None => probeconf::kernels::fetch(&["6.18".to_string()]).remove(0).unwrap_or_else(|e| panic!("kernel 6.18: {e}")).vmlinuz,
    })
    .clone()
}

/// An image with no cases and no loaders: /init is probeconf.
fn image(dir: &Path) -> PathBuf {
    let spec = ImageSpec { init: Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf"))), loaders: vec![], cases: vec![] };
    let out = dir.join("initramfs.cpio");
    probeconf::vm::image::write(&spec, &out).unwrap();
    out
}

fn options(dir: &Path, mode: Option<GuestMode>) -> BootOptions {
    let mut o = BootOptions::new(vmlinuz(), image(dir));
    o.timeout = Duration::from_secs(120);
    if let Some(mode) = mode {
        o.kernel_cmdline_extra = GuestOptions { mode, ..Default::default() }.to_kernel_args();
    }
    o
}

fn show(o: &BootOutcome) -> String {
    format!(
        "status {:?}, wall {:.1?}, {:?} booting {}\n--- lines\n{}\n--- console tail\n{}",
        o.status,
        o.wall,
        o.accel,
        o.kernel.display(),
        o.lines.iter().map(|l| l.render()).collect::<Vec<_>>().join("\n"),
        o.console_tail
    )
}

/// Boots, booting again only after a panic before the guest ran.
fn boot_guest(o: &BootOptions) -> BootOutcome {
    let (out, crashes) = boot_retrying(o, 3);
    if !crashes.is_empty() {
        eprintln!("{} boot-time kernel panic(s) before the guest ran; booted again", crashes.len());
    }
    out
}

#[test]
fn hello_mode_boots_to_userspace() {
    let dir = tempfile::tempdir().unwrap();
    let o = boot_guest(&options(dir.path(), Some(GuestMode::Hello)));
    assert_eq!(o.status, BootStatus::Completed { exit_code: 0 }, "{}", show(&o));
    assert!(o.hello().is_some() && o.results().is_empty(), "{}", show(&o));
}

#[test]
fn a_hung_guest_is_killed_by_stall_detection_with_a_console_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(GuestMode::Hang));
    opts.timeout = Duration::from_secs(300);
    opts.stall_timeout = Some(Duration::from_secs(3));
    let o = boot(&opts);
    assert_eq!(o.status, BootStatus::TimedOut, "{}", show(&o));
    assert!(o.hello().is_some(), "{}", show(&o));
    // Killed for its silence, long before the overall timeout.
    assert!(o.wall < Duration::from_secs(200), "{}", show(&o));
    // The kernel printed its boot log before the guest said hello.
    assert!(!o.console_tail.is_empty(), "{}", show(&o));
}

#[test]
fn an_image_without_init_is_a_kernel_panic() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("empty.cpio");
    Initramfs::new().char_device("/dev/console", 0o600, 5, 1).write_file(&initrd).unwrap();
    let mut opts = BootOptions::new(vmlinuz(), &initrd);
    opts.timeout = Duration::from_secs(120);
    let o = boot(&opts);
    assert!(matches!(&o.status, BootStatus::Crashed(line) if line.starts_with("Kernel panic")), "{}", show(&o));
    assert!(o.console_tail.contains("Kernel panic"), "{}", o.console_tail);
}

#[test]
fn bad_guest_options_are_fatal_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), None);
    opts.kernel_cmdline_extra = "probeconf.loader=libbpf".into();
    let o = boot_guest(&opts);
    assert!(matches!(&o.status, BootStatus::Incomplete(m) if m.contains("probeconf.loader")), "{}", show(&o));
}

#[test]
fn a_panic_in_the_guest_ends_the_vm_with_a_fatal_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = boot_guest(&options(dir.path(), Some(GuestMode::Panic)));
    assert!(matches!(&o.status, BootStatus::Incomplete(m) if m.contains("deliberate panic")), "{}", show(&o));
    assert!(o.lines.iter().any(|l| matches!(l, probeconf::vm::lines::GuestLine::Fatal { .. })), "{}", show(&o));
}

#[test]
fn a_corrupt_vmlinuz_fails_quickly_with_qemus_message() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd) = (dir.path().join("vmlinuz"), dir.path().join("initrd"));
    std::fs::write(&kernel, vec![0u8; 4096]).unwrap();
    Initramfs::new().dir("/tmp", 0o1777).write_file(&initrd).unwrap();
    let mut opts = BootOptions::new(&kernel, &initrd);
    opts.timeout = Duration::from_secs(30);
    let o = boot(&opts);
    assert!(o.wall < Duration::from_secs(10), "took {:?}", o.wall);
    // QEMU 7.2: "linux kernel too old to load a ram disk" (no bzImage header).
    assert!(matches!(&o.status, BootStatus::QemuFailed(m) if m.contains("qemu")), "{}", show(&o));
}

/// Accel::Auto tries one short KVM boot and keeps TCG when it does not
/// complete (nested KVM fails on this machine); either way the boot completes.
#[test]
fn auto_accel_picks_one_that_boots() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(GuestMode::Hello));
    opts.accel = Accel::Auto;
    let o = boot_guest(&opts);
    assert_eq!(o.status, BootStatus::Completed { exit_code: 0 }, "{}", show(&o));
}

#[test]
fn a_debian_kernel_extracts_to_a_pvh_vmlinux() {
    let elf = extract(&std::fs::read(vmlinuz()).unwrap()).unwrap();
    assert!(has_pvh_note(&elf), "the extracted vmlinux has no PVH entry note");
}

/// A column of five quick uprobe cases through libbpf, with deliberate
/// kernel crashes (`probeconf.crash=`, sysrq-c in the guest).
fn crashing_column(plan: &str) -> probeconf::matrix::Matrix {
    let dir = tempfile::tempdir().unwrap().keep();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let cases = [
        "uprobe/uprobe-entry-leaf.yaml",
        "uprobe/uprobe-symbol-offset.yaml",
        "uretprobe/uretprobe-return-leaf.yaml",
        "uprobe-multi/uprobe-multi-cookies.yaml",
        "uprobe-session/uprobe-session-entry-return.yaml",
    ]
    .iter()
    .map(|c| root.join(c))
    .collect();
    let mut opts = probeconf::matrix::run::MatrixOptions::new(
        vec![vmlinuz().to_string_lossy().into_owned()],
        cases,
        vec![probeconf::loaders::registry::LoaderRequest::Libbpf(None)],
        dir,
    );
    opts.init = Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf")));
    opts.crash = Some(probeconf::vm::cmdline::CrashPlan::parse(plan).unwrap());
    probeconf::matrix::run::run(&opts, |l| eprintln!("{l}")).unwrap()
}

#[test]
fn a_column_recovers_from_a_crash_anywhere_after_boot() {
    // Cases run in path order (by component): 0 uprobe-entry-leaf,
    // 1 uprobe-symbol-offset, 2 uprobe-multi-cookies, 3 uprobe-session-entry-return,
    // 4 uretprobe-return-leaf.
    // Boot 0 dies after hello, boot 1 while probing, boot 2 as case 1 starts,
    // boot 3 between cases 2 and 3, boots 4 and 5 as case 3 starts.
    let m = crashing_column("hello@0+features@1+case:1@2+after:2@3+case:3@4-5");
    let k = &m.kernels[0];
    assert_eq!(k.status, probeconf::matrix::ColumnStatus::Completed, "{:?}", k.status);
    let crashes: Vec<&str> = k.crashes.iter().map(|c| c.case.as_str()).collect();
    assert_eq!(
        crashes,
        [
            "(feature probing)",
            "(feature probing)",
            "uprobe-symbol-offset",
            "(between `uprobe-multi-cookies` and `uprobe-session-entry-return`)",
            "uprobe-session-entry-return",
            "uprobe-session-entry-return"
        ],
        "{:#?}",
        k.crashes
    );
    assert!(k.crashes.iter().all(|c| c.reason.contains("sysrq triggered crash")), "{:#?}", k.crashes);
    let verdict = |id: &str| k.results.iter().filter(|r| r.case == id).map(|r| r.verdict).collect::<Vec<_>>();
    use probeconf::judge::check::Verdict::*;
    // Every case has exactly one result: the crashed-once case ran again, the
    // case that crashed twice is the crash's error, nothing ran twice.
    assert_eq!(k.results.len(), 5, "{:#?}", k.results.iter().map(|r| (&r.case, r.verdict)).collect::<Vec<_>>());
    for id in ["uprobe-entry-leaf", "uprobe-symbol-offset", "uprobe-multi-cookies", "uretprobe-return-leaf"] {
        assert_eq!(verdict(id), [Pass], "{id}");
    }
    assert_eq!(verdict("uprobe-session-entry-return"), [Error]);
}

#[test]
fn a_kernel_that_cannot_reach_the_first_case_in_three_boots_is_an_error_column() {
    let m = crashing_column("hello@0-2");
    let k = &m.kernels[0];
    match &k.status {
        probeconf::matrix::ColumnStatus::Error { reason, .. } => {
            assert!(reason.contains("3 times in a row before the first case"), "{reason}")
        }
        s => panic!("expected an error column, got {s:?}"),
    }
    assert_eq!(k.crashes.len(), 3);
    assert!(k.results.is_empty());
}
