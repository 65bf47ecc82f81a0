//! Cross-library-version runs: the uprobe family (and USDT, the fast-uprobe
//! cases) through the Go harness built against cilium/ebpf v0.20.0, side by
//! side with the pinned v0.22.0 and libbpf, on the host kernel. A verdict that
//! differs between the two cilium releases is a finding and fails the test,
//! listed like the summary of `probeconf run --cilium-version …` lists it.

use probeconf::case::{discover, Case};
use probeconf::judge::check::{cross_check, Verdict};
use probeconf::loaders::cilium::CiliumLoader;
use probeconf::loaders::libbpf::LibbpfLoader;
use probeconf::loaders::Loader;
use probeconf::probing::host_features;
use probeconf::report::version_differences;
use probeconf::run::{run_case, RunOptions};
use std::path::PathBuf;

const OLDER: &str = "v0.20.0";
const FAMILIES: &[&str] = &["uprobe", "uretprobe", "uprobe-multi", "uprobe-session", "errors", "usdt", "fast-uprobes"];

#[test]
fn uprobe_family_across_cilium_releases() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("NOT RUN: loading BPF needs root; run as root (`.ci/run` does)");
        return;
    }
    let older = CiliumLoader::build(Some(OLDER)).unwrap_or_else(|e| panic!("building the harness against cilium/ebpf {OLDER}: {e}"));
    let pinned = CiliumLoader::build(None).unwrap_or_else(|e| panic!("building the harness: {e}"));
    let loaders: Vec<&dyn Loader> = vec![&LibbpfLoader, &pinned, &older];
    let dirs: Vec<PathBuf> = FAMILIES.iter().map(|f| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases")).join(f)).collect();
    let features = host_features();
    let mut all = Vec::new();
    for file in discover(&dirs).unwrap() {
        let case = Case::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let mut runs: Vec<_> = loaders.iter().map(|l| run_case(&case, *l, features, &RunOptions::default())).collect();
        cross_check(&mut runs);
        all.extend(runs);
    }
    eprintln!("{} runs: libbpf, cilium {} (pinned) and cilium@{OLDER}", all.len(), pinned.version());
    let bad: Vec<String> = all
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Pass | Verdict::Unsupported))
        .map(|r| format!("{} [{}] {}: {}", r.case, r.loader, r.verdict, r.detail))
        .collect();
    let differences = version_differences(&all);
    assert!(bad.is_empty() && differences.is_empty(), "failures:\n{}\nbetween cilium releases:\n{}", bad.join("\n"), differences.join("\n"));
}
