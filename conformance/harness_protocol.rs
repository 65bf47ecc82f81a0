//! The harness conformance test (go-harness/PROTOCOL.md as a contract): the
//! same sequence of requests with the answers they must get, against every
//! harness the suite ships — the Go harness (pinned cilium/ebpf), the libbpf
//! harness built for libbpf 1.5, 1.6 and 1.7 — and against
//! libbpf-harness/tests/fixtures/mini-harness.py, a third loader written from
//! the protocol document alone (it loads nothing, so it passes the protocol
//! checks and, as `--loader mini=…`, gives honest errors for every case).
//! The checks are libbpf-harness/tests/conformance/runner.rs.

#[path = "../libbpf-harness/tests/conformance/runner.rs"]
mod runner;

use probeconf::loaders::registry::{self, LibraryPick, LoaderRequest};
use std::path::PathBuf;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn artifacts() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    probeconf::run::artifacts::write_all(&dir).unwrap();
    dir
}

fn check(label: &str, cmd: &str, level: runner::Level) {
    let art = artifacts();
    let results = runner::run_all(&runner::Harness::parse(cmd), Some(&art), level);
    let failed: Vec<String> = results.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
    eprintln!("{label}: {} checks, {} failed", results.len(), failed.len());
    assert!(failed.is_empty(), "{label} ({cmd}):\n{}", failed.join("\n"));
}

#[test]
fn the_go_harness_conforms() {
    if !is_root() {
        eprintln!("NOT RUN: the BPF checks load programs; run as root");
        return;
    }
    let bin = probeconf::loaders::go_build::ensure_harness(None).unwrap();
    check("cilium", &bin.display().to_string(), runner::Level::Bpf);
}

#[test]
fn the_libbpf_harness_conforms_at_every_version() {
    if !is_root() {
        eprintln!("NOT RUN: the BPF checks load programs; run as root");
        return;
    }
    for v in ["1.5", "1.6", "1.7"] {
        let (bin, _) = probeconf::loaders::libbpf_build::ensure_libbpf_harness(probeconf::loaders::libbpf_build::LibbpfBuild::Version(v.into()))
            .unwrap_or_else(|e| panic!("libbpf@{v}: {e}"));
        check(&format!("libbpf@{v}"), &bin.display().to_string(), runner::Level::Bpf);
    }
}

fn mini() -> String {
    format!("python3 {}/libbpf-harness/tests/fixtures/mini-harness.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_third_party_harness_written_from_the_document_conforms_and_plugs_in() {
    check("mini-harness.py", &mini(), runner::Level::Protocol);
    // As a loader (`--loader mini=COMMAND`), without touching the runner: it
    // opens, reports its library, and every case it cannot run is an error
    // line the runner turns into a verdict; the run goes on.
    let req = LoaderRequest::parse(&format!("mini={}", mini())).unwrap();
    assert_eq!(req.label(), "mini");
    let l = registry::open(&req).unwrap();
    assert_eq!(l.label(), "mini");
    assert!(!l.library().library.is_empty());
    if is_root() {
        let case = probeconf::case::Case::load(&PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases/uprobe/uprobe-entry-leaf.yaml"))).unwrap();
        let r = probeconf::run::run_case(&case, l.as_ref(), probeconf::probing::host_features(), &Default::default());
        assert!(matches!(r.verdict, probeconf::judge::check::Verdict::Fail | probeconf::judge::check::Verdict::Error), "{r:?}");
    }
    // And paths are paths: a cilium checkout that is not one is refused clearly.
    let err = probeconf::loaders::go_build::ensure_harness(Some(&LibraryPick::Path("/".into()))).unwrap_err();
    assert!(err.contains("go.mod"), "{err}");
}
