//! The conformance suite under `cargo test`: every case in cases/ runs for real
//! against the host kernel, through every loader, and is checked three ways:
//! (a) against its `expect` (the kernel's documented semantics),
//! (b) against its insta snapshot in conformance/snapshots/ (regressions),
//! (c) across loaders (once more than one loader is built).
//!
//! BPF needs root. Without it every case says so in the test output (it does
//! not pass silently with nothing checked): run `sudo -E cargo test` or `.ci/run`.

use probeconf::case::Case;
use probeconf::judge::check::Verdict;
use probeconf::loaders::registry;
use probeconf::loaders::Loader;
use probeconf::probing::host_features;
use probeconf::run::{run_all, RunOptions};
use rstest::rstest;
use std::path::PathBuf;
use std::sync::OnceLock;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The bpftrace that runs the bpftrace cases (cases/bpftrace): Debian's
/// 0.27.1 from a private root, built on first use (src/loaders/bpftrace.rs);
/// `PROBECONF_BPFTRACE=VERSION|PATH` picks another.
fn bpftrace() -> &'static dyn Loader {
    static LOADER: OnceLock<Box<dyn Loader>> = OnceLock::new();
    LOADER
        .get_or_init(|| {
            let want = std::env::var("PROBECONF_BPFTRACE").unwrap_or_else(|_| "0.27.1".into());
            let req = registry::LoaderRequest::parse(&format!("bpftrace@{want}")).unwrap_or_else(|e| panic!("{e}"));
            registry::open(&req).unwrap_or_else(|e| panic!("loader {}: {e}", req.label()))
        })
        .as_ref()
}

/// libbpf, and cilium/ebpf through the Go harness (built once, on first use).
/// A harness that cannot be built fails the suite: it is half of the product.
fn loaders() -> Vec<&'static dyn Loader> {
    static LOADERS: OnceLock<Vec<Box<dyn Loader>>> = OnceLock::new();
    let all = LOADERS.get_or_init(|| {
        registry::parse_list(&[])
            .unwrap()
            .iter()
            .map(|r| registry::open(r).unwrap_or_else(|e| panic!("loader {}: {e}", r.label())))
            .collect()
    });
    all.iter().map(|l| l.as_ref()).collect()
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
    // Every loader, with the cross-loader check (c) and reruns in fresh
    // processes for what does not pass: a result that changes is `flaky`.
    let opts = RunOptions { self_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf"))), ..RunOptions::default() };
    // A bpftrace case runs through bpftrace (the default loaders skip it).
    let loaders = if case.bpftrace.is_some() { vec![bpftrace()] } else { loaders() };
    let runs = run_all(std::slice::from_ref(&case), &loaders, features, &opts, |_| {});
    let mut observed: Vec<(String, String)> = Vec::new();
    for r in runs {
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
    // (b) The snapshot of the normalised result: one per case, and one more per
    // loader whose result is a documented difference.
    if let Some((_, first)) = observed.first() {
        insta::with_settings!({
            snapshot_path => "snapshots",
            prepend_module_to_snapshot => false,
            description => case.description.trim(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(case.id.as_str(), first);
            for (loader, other) in &observed[1..] {
                if other != first {
                    insta::assert_snapshot!(format!("{}@{loader}", case.id), other);
                }
            }
        });
    }
}

/// The README's gaps table is generated from the registry; this fails when
/// they drift (fix: `cargo run -- gaps --update-readme README.md`).
#[test]
fn readme_gaps_table_is_current() {
    let harness = probeconf::loaders::go_build::ensure_harness(None).unwrap_or_else(|e| panic!("{e}"));
    let mut gaps = probeconf::loaders::compat::rust_registry();
    gaps.extend(probeconf::loaders::compat::go_registry(&harness).unwrap());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let want = probeconf::loaders::compat::readme_with(&readme, &probeconf::loaders::compat::markdown(&gaps)).unwrap();
    assert!(readme == want, "README.md's gaps table is stale: run `cargo run -- gaps --update-readme README.md`");
}

/// The project's own cases: ids are unique (the suite refuses duplicates),
/// and every known issue a case declares is written up where it says.
#[test]
fn case_ids_are_unique_and_every_known_issue_is_written_up() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases"));
    let (cases, errors) = probeconf::case::load_set(&probeconf::case::discover(&[root]).unwrap());
    assert!(errors.is_empty(), "{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
    for c in &cases {
        for k in &c.known {
            let see = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&k.see);
            assert!(see.is_file(), "{}: known issue names {}, which is not a file in the repository", c.id, k.see);
            // Findings, and bpftrace cases meeting a written-up finding (the
            // private stack under bpftrace's printf).
            assert!(
                c.path.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/cases/findings"))
                    || (c.path.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/cases/bpftrace")) && k.see.starts_with("docs/findings/")),
                "{}: only findings may declare known issues",
                c.id
            );
        }
    }
}
