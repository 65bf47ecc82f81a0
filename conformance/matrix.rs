//! The kernel matrix under `cargo test`: the whole suite, both loaders, in
//! real Debian kernels under QEMU (TCG): the oldest (6.1, no FPROBE), one
//! 6.1x (6.18) and the newest 7.x (7.3, the `void *ctx` session kfuncs), plus
//! a deliberately broken kernel image whose column must be an `error` with its
//! console tail while the others complete.
//!
//! One insta snapshot per kernel (`conformance/snapshots/kernel-<version>.snap`)
//! holds its probed features, config flags and every verdict, so a new kernel
//! adds a file instead of changing every case's snapshot.
//!
//! Set PROBECONF_KERNELS=6.1,6.12,… to choose other kernels.

use probeconf::judge::check::Verdict;
use probeconf::matrix::{kernel_snapshot, ColumnStatus};
use probeconf::matrix::run::{run, MatrixOptions};
use std::path::PathBuf;
use std::time::Duration;

const CI_KERNELS: &[&str] = &["6.1", "6.18", "7.3"];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn kernel_matrix() {
    if !is_root() {
        eprintln!("NOT RUN: booting kernels and loading BPF in them needs root here (/dev/kvm is not used; QEMU TCG)");
        return;
    }
    let kernels: Vec<String> = std::env::var("PROBECONF_KERNELS")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| CI_KERNELS.iter().map(|s| s.to_string()).collect());
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("matrix-ci");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // Not a kernel at all: QEMU must fail quickly, and only this column.
    let broken = work.join("broken").join("bzImage");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, vec![0u8; 4096]).unwrap();

    let mut requested = kernels.clone();
    requested.push(broken.to_string_lossy().into_owned());
    let mut opts = MatrixOptions::new(
        requested,
        vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases"))],
        probeconf::loaders::registry::parse_list(&[]).unwrap(),
        work.clone(),
    );
    opts.timeout = Duration::from_secs(900);
    opts.init = Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf")));
    let m = run(&opts, |line| eprintln!("{line}")).unwrap_or_else(|e| panic!("matrix: {e}"));
    std::fs::write(work.join("matrix.html"), probeconf::matrix::html(&m)).unwrap();
    std::fs::write(work.join("matrix.md"), probeconf::matrix::markdown(&m)).unwrap();
    eprintln!("{}", probeconf::matrix::terminal(&m));

    let broken_col = m.kernels.last().unwrap();
    match &broken_col.status {
        ColumnStatus::Error { reason, .. } => eprintln!("broken image column: error: {reason}"),
        s => panic!("a 4 KB image of zeros must give an error column, got {s:?}"),
    }
    for k in &m.kernels[..kernels.len()] {
        if let ColumnStatus::Error { reason, console_tail } = &k.status {
            panic!("kernel {} did not complete: {reason}\n{console_tail}", k.request);
        }
        let errors: Vec<_> = k.results.iter().filter(|r| r.verdict == Verdict::Error).map(|r| format!("{} [{}]: {}", r.case, r.loader, r.detail)).collect();
        assert!(errors.is_empty(), "kernel {}: runs that errored:\n{}", k.request, errors.join("\n"));
        insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true,
                               description => format!("kernel {} ({})", k.request, k.release)}, {
            insta::assert_snapshot!(format!("kernel-{}", k.request), kernel_snapshot(&m, k));
        });
    }
    // The acceptance case: a kprobe session with cookies and return
    // filtering passes where sessions exist and is unsupported (probed) on 6.1.
    for k in &m.kernels[..kernels.len()] {
        let want = if k.features.as_ref().is_some_and(|f| f.has(probeconf::probing::features::Feature::KprobeSession)) {
            Verdict::Pass
        } else {
            Verdict::Unsupported
        };
        for loader in ["libbpf", "cilium"] {
            let cell = m.cell("kprobe-session-cookie-filter", k, loader);
            assert_eq!(cell.verdict, Some(want), "kprobe-session-cookie-filter on {} via {loader}", k.request);
        }
    }
}

/// bpftrace in one kernel (issue 11, item 4): Debian's bpftrace 0.27.1 from a
/// private root, in the image, on 6.12 (kprobe sessions, and no private stack
/// for uprobe programs, so the thread case is deterministic there), every
/// bpftrace case; verdicts, the session-merge row and the kernel objects in
/// `kernel-6.12-bpftrace.snap`. PROBECONF_BPFTRACE_KERNEL picks the kernel.
#[test]
fn bpftrace_in_one_kernel() {
    if !is_root() {
        eprintln!("NOT RUN: booting kernels and loading BPF in them needs root here");
        return;
    }
    let kernel = std::env::var("PROBECONF_BPFTRACE_KERNEL").unwrap_or_else(|_| "6.12".into());
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("matrix-bpftrace");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let mut opts = MatrixOptions::new(
        vec![kernel.clone()],
        vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases/bpftrace"))],
        probeconf::loaders::registry::parse_list(&["bpftrace@0.27.1".into()]).unwrap(),
        work.clone(),
    );
    opts.init = Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf")));
    let m = run(&opts, |line| eprintln!("{line}")).unwrap_or_else(|e| panic!("matrix: {e}"));
    std::fs::write(work.join("matrix.html"), probeconf::matrix::html(&m)).unwrap();
    std::fs::write(work.join("matrix.json"), probeconf::matrix::json(&m)).unwrap();
    eprintln!("{}", probeconf::matrix::terminal(&m));
    let k = &m.kernels[0];
    if let ColumnStatus::Error { reason, console_tail } = &k.status {
        panic!("kernel {} did not complete: {reason}\n{console_tail}", k.request);
    }
    let bad: Vec<_> = k.results.iter().filter(|r| r.verdict.is_failure()).map(|r| format!("{} [{}]: {} {}", r.case, r.loader, r.verdict, r.detail)).collect();
    assert!(bad.is_empty(), "kernel {}: bpftrace runs that did not pass:\n{}", k.request, bad.join("\n"));
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true,
                           description => format!("kernel {} ({}), bpftrace 0.27.1", k.request, k.release)}, {
        insta::assert_snapshot!(format!("kernel-{}-bpftrace", k.request), kernel_snapshot(&m, k));
    });
}
