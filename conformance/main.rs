//! The conformance suite under `cargo test`: every case in cases/ runs for real
//! against the host kernel, through every loader, and is checked three ways:
//! (a) against its `expect` (the kernel's documented semantics),
//! (b) against its insta snapshot in conformance/snapshots/ (regressions),
//! (c) across loaders (once more than one loader is built).
//!
//! BPF needs root. Without it every case says so in the test output (it does
//! not pass silently with nothing checked): run `sudo -E cargo test` or `.ci/run`.

use probeconf::case::Case;
use probeconf::check::Verdict;
use probeconf::loader::libbpf::LibbpfLoader;
use probeconf::loader::Loader;
use probeconf::probing::host_features;
use probeconf::runner::{run_case, RunOptions};
use rstest::rstest;
use std::path::PathBuf;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn loaders() -> Vec<Box<dyn Loader>> {
    vec![Box::new(LibbpfLoader)]
}

#[rstest]
fn case(#[files("cases/**/*.yaml")] path: PathBuf) {
    let case = Case::load(&path).unwrap_or_else(|e| panic!("{e}"));
    if !is_root() {
        eprintln!(
            "NOT RUN {}: loading BPF programs needs root (CAP_BPF, CAP_PERFMON); run the suite as root (`.ci/run` does)",
            case.id
        );
        return;
    }
    let features = host_features();
    let mut observed: Vec<(String, String)> = Vec::new();
    for loader in loaders() {
        let r = run_case(&case, loader.as_ref(), features, &RunOptions::default());
        // (a) The expectation: pass, or unsupported where the probes found the
        // kernel lacks a required feature. Anything else fails the test.
        assert!(
            matches!(r.verdict, Verdict::Pass | Verdict::Unsupported),
            "{} via {}: {} — {}\n{}",
            case.id,
            r.loader,
            r.verdict,
            r.detail,
            r.diff.as_deref().unwrap_or("")
        );
        if r.verdict == Verdict::Unsupported {
            eprintln!("UNSUPPORTED {} via {}: {}", case.id, r.loader, r.detail);
        }
        observed.push((r.loader.to_string(), r.observed.clone().unwrap_or_default()));
    }
    // (c) Loaders agree on the normalised result.
    if let Some((first_loader, first)) = observed.first() {
        for (loader, other) in &observed[1..] {
            assert_eq!(
                first,
                other,
                "{}: loaders disagree\n{}",
                case.id,
                probeconf::check::side_by_side(first_loader, first, loader, other)
            );
        }
        // (b) The snapshot of the normalised result (equal for every loader).
        insta::with_settings!({
            snapshot_path => "snapshots",
            prepend_module_to_snapshot => false,
            description => case.description.trim(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(case.id.as_str(), first);
        });
    }
}
