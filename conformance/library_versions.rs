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

/// `@PATH` with trees that are really there: the libbpf source inside the
/// libbpf-sys 1.6.x crate cargo fetched (built into a libbpf harness), and a
/// cilium/ebpf module from the Go module cache (the Go harness with a
/// `replace`). Both run a uprobe.session case and name their origin.
#[test]
fn loaders_built_from_source_trees_run_and_say_where_they_came_from() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("NOT RUN: loading BPF needs root; run as root (`.ci/run` does)");
        return;
    }
    use probeconf::loaders::libbpf_build::{ensure_libbpf_harness, LibbpfBuild};
    // The 1.6 build fetches libbpf-sys 1.6.4 (with its libbpf source) into cargo's registry.
    ensure_libbpf_harness(LibbpfBuild::Version("1.6".into())).unwrap();
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let tree = std::fs::read_dir(home.join("registry/src"))
        .unwrap()
        .flatten()
        .flat_map(|idx| std::fs::read_dir(idx.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libbpf-sys-1.6.")))
        .expect("libbpf-sys 1.6.x in cargo's registry")
        .join("libbpf");
    // A cilium/ebpf release from the module cache.
    let out = std::process::Command::new("go").args(["mod", "download", "-json", "github.com/cilium/ebpf@v0.21.0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let module: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checkout = PathBuf::from(module["Dir"].as_str().unwrap());

    let requests = [format!("libbpf@{}", tree.display()), format!("cilium@{}", checkout.display())];
    let loaders: Vec<Box<dyn Loader>> =
        requests.iter().map(|r| registry::open(&LoaderRequest::parse(r).unwrap()).unwrap_or_else(|e| panic!("{r}: {e}"))).collect();
    let libbpf = loaders[0].library();
    assert!(libbpf.version.starts_with("1.6.3") && libbpf.version.contains(&format!("source tree {}", tree.display())) && libbpf.version.contains("not a git tree"), "{libbpf:?}");
    let cilium = loaders[1].library();
    assert!(cilium.version.contains(&format!("replaced by {}", checkout.display())) && cilium.version.contains("not a git tree"), "{cilium:?}");
    let case = probeconf::case::Case::load(&PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cases/uprobe-session/uprobe-session-cookie-roundtrip.yaml"))).unwrap();
    let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    for r in run_all(std::slice::from_ref(&case), &refs, host_features(), &RunOptions::default(), |_| {}) {
        assert_eq!(r.verdict, Verdict::Pass, "{} [{}]: {}", r.case, r.loader, r.detail);
        assert!(r.library.contains("not a git tree"), "{}", r.library);
    }
}
