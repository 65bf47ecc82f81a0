//! Cross-library-version runs on the host kernel: the uprobe family, USDT
//! and the fast-uprobe cases through libbpf 1.5 and 1.7 (harness programs
//! built per version, `--loader libbpf@1.5` / `@1.7`), the in-process libbpf
//! (the same code as the 1.7 harness), and cilium/ebpf v0.20.0 and the pinned
//! v0.22.0. Every run must pass (or be unsupported, probed); versions of one
//! library may differ only where the case documents it; uprobe.session must
//! go through the compatibility layer on libbpf 1.5 and natively on 1.7; and
//! the in-process libbpf must give exactly what its harness gives.

use probeconf::case::discover;
use probeconf::judge::check::Verdict;
use probeconf::loaders::registry::{self, LoaderRequest};
use probeconf::loaders::{Loader, ViaKind};
use probeconf::probing::host_features;
use probeconf::report::version_differences;
use probeconf::run::{run_all, RunOptions};
use std::path::PathBuf;

const FAMILIES: &[&str] = &["uprobe", "uretprobe", "uprobe-multi", "uprobe-session", "errors", "usdt", "fast-uprobes"];
const LOADERS: &[&str] = &["libbpf", "libbpf@1.5", "libbpf@1.7", "cilium", "cilium@v0.20.0"];

#[test]
fn uprobe_family_across_library_versions() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("NOT RUN: loading BPF needs root; run as root (`.ci/run` does)");
        return;
    }
    let loaders: Vec<Box<dyn Loader>> = LOADERS
        .iter()
        .map(|l| registry::open(&LoaderRequest::parse(l).unwrap()).unwrap_or_else(|e| panic!("loader {l}: {e}")))
        .collect();
    let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let dirs: Vec<PathBuf> = FAMILIES.iter().map(|f| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases")).join(f)).collect();
    let (cases, errors) = probeconf::case::load_set(&discover(&dirs).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    let opts = RunOptions { self_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_probeconf"))), ..RunOptions::default() };
    let all = run_all(&cases, &refs, host_features(), &opts, |_| {});
    for l in &loaders {
        eprintln!("loader {}: {} {}", l.label(), l.library().library, l.library().version);
    }
    let bad: Vec<String> = all
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Pass | Verdict::Unsupported))
        .map(|r| format!("{} [{}] {}: {}", r.case, r.loader, r.verdict, r.detail))
        .collect();
    assert!(bad.is_empty(), "failures:\n{}", bad.join("\n"));
    // Between versions of one library: only differences the case documents
    // (each version met its own expectation), never a verdict that differs.
    let undocumented: Vec<String> = version_differences(&all).into_iter().filter(|d| !d.contains("as its version's expectation says")).collect();
    assert!(undocumented.is_empty(), "between versions of one library:\n{}", undocumented.join("\n"));
    // The compat layer per version: uprobe.session is bridged on 1.5, native on 1.7.
    let via = |case: &str, loader: &str| all.iter().find(|r| r.case == case && r.loader == loader).map(|r| r.via).unwrap();
    assert_eq!(via("uprobe-session-cookie-roundtrip", "libbpf@1.5"), ViaKind::Compat);
    assert_eq!(via("uprobe-session-cookie-roundtrip", "libbpf@1.7"), ViaKind::Native);
    let bridge = all.iter().find(|r| r.case == "uprobe-session-cookie-roundtrip" && r.loader == "libbpf@1.5").unwrap();
    assert!(bridge.vias.iter().any(|v| v.bridge.as_deref() == Some("libbpf-uprobe-session-raw")), "{:?}", bridge.vias);
    // One implementation: in-process libbpf and the libbpf 1.7 harness agree run by run.
    for r in all.iter().filter(|r| r.loader == "libbpf") {
        let h = all.iter().find(|x| x.case == r.case && x.loader == "libbpf@1.7").unwrap();
        assert_eq!((r.verdict, &r.observed, &r.vias.iter().map(|v| (&v.via, &v.bridge)).collect::<Vec<_>>()), (h.verdict, &h.observed, &h.vias.iter().map(|v| (&v.via, &v.bridge)).collect::<Vec<_>>()), "{}", r.case);
    }
}
