//! Nothing of ours stays in the kernel: after passing, failing, erroring and
//! panicking cases, and after SIGINT in the middle of a run, the census of our
//! BPF programs, links and uprobe events is what it was before.
//!
//! Its own test binary, so no other BPF test runs at the same time; the tests
//! within it are serialised by a lock.

use probeconf::case::Case;
use probeconf::probing::census::Census;
use probeconf::judge::check::Verdict;
use probeconf::loaders::libbpf::LibbpfLoader;
use probeconf::loaders::{AttachRequest, Attached, LibraryInfo, Loader, LoaderError};
use probeconf::case::LoaderId;
use probeconf::probing::host_features;
use probeconf::run::{run_case, RunOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("NOT RUN: counting BPF programs and links needs root; run as root (`.ci/run` does)");
            return;
        }
    };
}

fn case(yaml: &str) -> Case {
    Case::parse(yaml, Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/inline.yaml").as_path()).unwrap()
}

const SESSION_AND_PLAIN: &str = r#"
id: cleanup-mix
description: three links of two kinds
probes:
  - {name: s, kind: uprobe.session, targets: [{symbol: pc_leaf}]}
  - {name: up, kind: uprobe, targets: [{symbol: pc_leaf}]}
  - {name: um, kind: uretprobe.multi, targets: [{symbol: pc_leaf}, {symbol: pc_nop5}]}
run: call leaf 1
expect:
  trace: |
    this line is deliberately wrong, so the case fails
"#;

/// A loader that attaches for real, then panics while holding the links.
struct PanicsAfterAttach;

impl Loader for PanicsAfterAttach {
    fn id(&self) -> LoaderId {
        LoaderId::Libbpf
    }
    fn library(&self) -> LibraryInfo {
        LibbpfLoader.library()
    }
    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        let attached = LibbpfLoader.attach(req)?;
        assert!(!Census::take().links.is_empty(), "links exist while attached");
        let _keep = attached;
        panic!("deliberate panic inside a case, with links attached");
    }
}

#[test]
fn failing_erroring_and_panicking_cases_leave_nothing_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root!();
    let features = host_features();
    let before = Census::take();
    let opts = RunOptions::default();

    let failing = run_case(&case(SESSION_AND_PLAIN), &LibbpfLoader, features, &opts);
    assert_eq!(failing.verdict, Verdict::Fail, "{}", failing.detail);

    let missing = SESSION_AND_PLAIN.replace("{symbol: pc_nop5}", "{symbol: pc_missing}");
    let erroring = run_case(&case(&missing), &LibbpfLoader, features, &opts);
    assert_eq!(erroring.verdict, Verdict::Fail, "expected trace, got attach error: {}", erroring.detail);
    assert!(erroring.detail.contains("not-found"), "{}", erroring.detail);

    let panicking = run_case(&case(SESSION_AND_PLAIN), &PanicsAfterAttach, features, &opts);
    assert_eq!(panicking.verdict, Verdict::Error);
    assert!(panicking.detail.contains("deliberate panic"), "{}", panicking.detail);

    assert_eq!(Census::settle(&before, Duration::from_secs(10)), before, "BPF programs/links/uprobe events left behind");
}

#[test]
fn sigint_mid_run_releases_everything() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root!();
    let before = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.yaml");
    std::fs::write(
        &slow,
        r#"
id: slow
description: sleeps while attached, to be interrupted
probes:
  - {name: s, kind: uprobe.session, targets: [{symbol: pc_leaf}]}
  - {name: up, kind: uprobe, targets: [{symbol: pc_leaf}]}
run: call leaf 1; sleep 20000
expect:
  trace: ""
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_probeconf"))
        .args(["run", "--format", "json"])
        .arg(&slow)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the probes are attached, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Census::take().links.len() < before.links.len() + 2 {
        assert!(Instant::now() < deadline, "the run never attached");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status after SIGINT");
    assert_eq!(Census::settle(&before, Duration::from_secs(10)), before, "BPF programs/links/uprobe events left behind after SIGINT");
}

#[test]
fn a_malformed_case_is_located_and_the_run_goes_on() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "id: bad\ndescription: x\nprobes:\n  - {name: a, kind: uprobe.sesion, targets: []}\n").unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/uprobe/uprobe-entry-leaf.yaml"), dir.path().join("good.yaml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_probeconf")).args(["run", "--format", "json"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("bad.yaml:4:21: probes[0].kind: unknown variant `uprobe.sesion`, expected one of"), "{stderr}");
    assert!(stderr.contains("`uprobe.session`"), "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results[0]["case"], "uprobe-entry-leaf");
    assert_eq!(results[0]["verdict"], "pass");
    assert_eq!(out.status.code(), Some(1), "a bad case file fails the run");
}

/// A harness that breaks the protocol (here: garbage after hello) gives that
/// case `error` with the harness's words, and the run goes on to the next case.
#[test]
fn a_broken_harness_is_an_error_and_the_run_goes_on() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("broken-harness");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         case \"$1\" in\n\
         version) echo '{\"protocol\":1,\"library\":\"github.com/cilium/ebpf\",\"version\":\"v0.0.0-broken\"}' ;;\n\
         run) echo '{\"type\":\"hello\",\"protocol\":1,\"library\":\"github.com/cilium/ebpf\",\"version\":\"v0.0.0-broken\"}'; read line; echo 'this is not JSON'; echo 'panic: something' >&2; exit 2 ;;\n\
         esac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let broken = probeconf::loaders::harness::HarnessLoader::new(vec![fake.display().to_string()], "broken".into(), LoaderId::Cilium).unwrap();
    let cases = [case(SESSION_AND_PLAIN), case(&SESSION_AND_PLAIN.replace("cleanup-mix", "cleanup-mix-2"))];
    let results = probeconf::run::run_all(&cases, &[&broken as &dyn Loader], host_features(), &RunOptions::default(), |_| {});
    assert_eq!(results.len(), 2, "the run went on to the second case");
    for r in &results {
        assert_eq!(r.verdict, Verdict::Error, "{}", r.detail);
        assert!(r.detail.contains("protocol violation") && r.detail.contains("this is not JSON"), "{}", r.detail);
    }
}
