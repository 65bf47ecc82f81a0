//! The protocol conformance test (tests/conformance/runner.rs) against a
//! harness command:
//!
//!     HARNESS="/path/to/probeconf-harness" PROBECONF_ARTIFACTS=DIR cargo test --test protocol_conformance
//!
//! HARNESS defaults to this crate's probeconf-libbpf-harness. PROBECONF_ARTIFACTS
//! is what `probeconf artifacts DIR` writes (BPF objects, probe-target); without
//! it the test uses ../target/x86_64-unknown-linux-gnu/release/probeconf to
//! write them, if that binary exists. CONFORMANCE_LEVEL=protocol runs only the
//! checks that need no BPF (for a harness that loads nothing).
//!
//! A second test runs the protocol level against tests/fixtures/mini-harness.py,
//! a harness written from PROTOCOL.md alone that loads nothing.

#[path = "conformance/runner.rs"]
mod runner;

use std::path::PathBuf;

fn artifacts() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PROBECONF_ARTIFACTS") {
        return Some(PathBuf::from(d));
    }
    let probeconf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu/release/probeconf");
    if !probeconf.is_file() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("pch-artifacts-{}", std::process::id()));
    let ok = std::process::Command::new(&probeconf).arg("artifacts").arg(&dir).status().map(|s| s.success()).unwrap_or(false);
    ok.then_some(dir)
}

fn report(label: &str, results: Vec<(&str, Result<(), String>)>) {
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => eprintln!("ok    {name}"),
            Err(e) => {
                failed += 1;
                eprintln!("FAIL  {name}\n      {}", e.replace('\n', "\n      "));
            }
        }
    }
    eprintln!("{label}: {} passed, {failed} failed", results.len() - failed);
    assert_eq!(failed, 0, "{label}: {failed} conformance checks failed (see above)");
}

#[test]
fn protocol_conformance() {
    let cmd = std::env::var("HARNESS").unwrap_or_else(|_| env!("CARGO_BIN_EXE_probeconf-libbpf-harness").to_string());
    let harness = runner::Harness::parse(&cmd);
    let level = match std::env::var("CONFORMANCE_LEVEL").as_deref() {
        Ok("protocol") => runner::Level::Protocol,
        Ok("bpf") | Err(_) => runner::Level::Bpf,
        Ok(other) => panic!("CONFORMANCE_LEVEL={other}: protocol or bpf"),
    };
    let artifacts = if level == runner::Level::Bpf {
        Some(artifacts().expect(
            "the BPF checks need probeconf's artifacts: set PROBECONF_ARTIFACTS (cargo run --release -- artifacts DIR), \
             or CONFORMANCE_LEVEL=protocol",
        ))
    } else {
        None
    };
    report(&cmd, runner::run_all(&harness, artifacts.as_deref(), level));
}

#[test]
fn a_third_party_harness_passes_the_protocol_level() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-harness.py");
    let harness = runner::Harness::parse(&format!("python3 {}", script.display()));
    report("mini-harness.py", runner::run_all(&harness, None, runner::Level::Protocol));
}
