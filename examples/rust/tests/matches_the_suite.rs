//! session-tracer against probeconf's probe-target, checked against the
//! suite's own expectations: the trace of
//! cases/uprobe-session/uprobe-session-cookie-roundtrip.yaml (and, on a kernel
//! with kprobe sessions, cases/kprobe-session/kprobe-session-cookie-filter.yaml),
//! parsed here from the YAML and compared field by field with what the tracer
//! prints. The Go example's test (examples/go/main_test.go) does the same for
//! the cilium/ebpf tracer.
//!
//! Needs root and the artifacts: PROBECONF_ARTIFACTS=DIR after
//! `probeconf artifacts DIR`. Without them each test says why and passes
//! without checking anything.

use serde::Deserialize;
use session_tracer::Event;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The part of a probeconf case the test reads.
#[derive(Deserialize)]
struct Case {
    id: String,
    probes: Vec<CaseProbe>,
    run: String,
    expect: Expect,
}

#[derive(Deserialize)]
struct CaseProbe {
    kind: String,
    targets: Vec<Target>,
    #[serde(default)]
    record: Record,
}

#[derive(Deserialize)]
struct Target {
    symbol: String,
    #[serde(default)]
    cookie: u64,
}

#[derive(Deserialize, Default)]
struct Record {
    #[serde(default)]
    session_cookie: Option<SessionCookie>,
    #[serde(default)]
    skip_return: Option<String>,
    /// How many arguments the trace shows (2 when absent).
    #[serde(default)]
    args: Option<usize>,
    /// The return value's width in bits (64 when absent).
    #[serde(default)]
    ret_width: Option<u32>,
}

#[derive(Deserialize)]
struct SessionCookie {
    #[serde(rename = "const-plus-arg0")]
    const_plus_arg0: u64,
}

#[derive(Deserialize)]
struct Expect {
    trace: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_case(path: &str) -> Case {
    let path = repo().join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let c: Case = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(c.probes.len() == 1 && c.probes[0].targets.len() == 1, "{}: want one probe with one target", c.id);
    c
}

fn num(s: &str) -> i64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).map(|v| v as i64),
        None => s.parse::<i64>().or_else(|_| s.parse::<u64>().map(|v| v as i64)),
    }
    .unwrap_or_else(|e| panic!("number {s:?}: {e}"))
}

/// One expected event, and what the case leaves open: only the first `args`
/// arguments, `ret_width` bits of the return value, and an entry's session
/// cookie when the trace prints `*` (not defined for kprobe sessions).
struct Want {
    event: Event,
    args: usize,
    ret_width: u32,
    any_session_cookie: bool,
}

/// A case's trace as the tracer's events. The lines are src/trace.rs's:
/// `P0/T0 s entry pc_leaf(1, 0) cookie=0x0 is_return=false session_cookie=0x0 wrote=0x1001 prog_ret=0`,
/// `P0/T0 s return pc_leaf => 10 cookie=0x0 is_return=true session_cookie=0x1001`.
fn expected(c: &Case) -> Vec<Want> {
    let probe = &c.probes[0];
    let mut out = Vec::new();
    for line in c.expect.trace.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || panic!("case {}: trace line {line:?} is not one this test reads", c.id);
        let mut words = line.splitn(4, ' ');
        let (Some("P0/T0"), Some(_name), Some(phase), Some(rest)) = (words.next(), words.next(), words.next(), words.next()) else { bad() };
        let (head, fields) = match phase {
            "entry" => rest.split_once(") ").map(|(h, f)| (format!("{h})"), f)).unwrap_or_else(|| bad()),
            "return" => {
                let mut w = rest.splitn(4, ' ');
                let (Some(func), Some("=>"), Some(ret), Some(f)) = (w.next(), w.next(), w.next(), w.next()) else { bad() };
                (format!("{func} {ret}"), f)
            }
            _ => bad(),
        };
        let field = |k: &str| {
            fields
                .split(' ')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_else(|| panic!("case {}: {line:?} has no {k}=", c.id))
        };
        let session_cookie = field("session_cookie");
        let mut e = Event {
            probe: probe.kind.clone(),
            phase: phase.into(),
            func: String::new(),
            args: Vec::new(),
            ret: None,
            cookie: num(field("cookie")) as u64,
            is_return: field("is_return") == "true",
            session_cookie: if session_cookie == "*" { 0 } else { num(session_cookie) as u64 },
            wrote: None,
            prog_ret: None,
        };
        if phase == "entry" {
            let (func, args) = head.trim_end_matches(')').split_once('(').unwrap_or_else(|| bad());
            e.func = func.into();
            e.args = args.split(", ").map(num).collect();
            e.wrote = Some(num(field("wrote")) as u64);
            e.prog_ret = Some(num(field("prog_ret")) as u32);
        } else {
            let (func, ret) = head.split_once(' ').unwrap();
            e.func = func.into();
            e.ret = Some(num(ret));
        }
        out.push(Want {
            args: probe.record.args.unwrap_or(2),
            ret_width: probe.record.ret_width.unwrap_or(64),
            any_session_cookie: session_cookie == "*",
            event: e,
        });
    }
    out
}

fn matches(got: &Event, want: &Want) -> bool {
    let mut g = got.clone();
    if g.args.len() > want.args {
        g.args.truncate(want.args);
    }
    if want.ret_width == 32 {
        g.ret = g.ret.map(|r| r as i32 as i64);
    }
    if want.any_session_cookie {
        g.session_cookie = want.event.session_cookie;
    }
    g == want.event
}

/// The artifacts directory, or why the test cannot run.
fn setup() -> Result<PathBuf, String> {
    let Some(dir) = std::env::var_os("PROBECONF_ARTIFACTS") else {
        return Err("PROBECONF_ARTIFACTS is not set: write the artifacts with `probeconf artifacts DIR`".into());
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: loading BPF programs needs root".into());
    }
    Ok(PathBuf::from(dir))
}

/// (major, minor) of the running kernel.
fn kernel() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Runs the tracer; `Err` with its stderr when it exits with 3 (the kernel
/// lacks a feature).
fn run_tracer(args: &[String]) -> Result<Vec<Event>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_session-tracer")).args(args).output().expect("run session-tracer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => return Err(stderr.into_owned()),
        _ => panic!("session-tracer {}: {}\n{stderr}", args.join(" "), out.status),
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("tracer line {l:?}: {e}")))
        .map(Ok)
        .collect()
}

fn check(case: &Case, got: &[Event]) {
    let want = expected(case);
    let ok = got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| matches(g, w));
    let lines = |es: &mut dyn Iterator<Item = &Event>| es.map(|e| serde_json::to_string(e).unwrap() + "\n").collect::<String>();
    assert!(
        ok,
        "session-tracer printed\n{}want (from the trace of case {})\n{}",
        lines(&mut got.iter()),
        case.id,
        lines(&mut want.iter().map(|w| &w.event))
    );
}

/// The artifacts directory when the test can run here, else `None` after
/// saying why.
fn ready(test: &str, since: (u32, u32), feature: &str) -> Option<PathBuf> {
    let why = match setup() {
        Ok(_) if kernel() < since => format!("kernel {:?} has no {feature} ({}.{}+)", kernel(), since.0, since.1),
        Ok(dir) => return Some(dir),
        Err(why) => why,
    };
    eprintln!("SKIP {test}: {why}");
    None
}

/// The tracer's command line: `flags`, then probe-target running the case.
fn tracer_args(dir: &Path, case: &Case, flags: &[(&str, String)]) -> Vec<String> {
    let mut args = vec!["--objects".to_string(), dir.display().to_string()];
    for (flag, value) in flags {
        args.extend([flag.to_string(), value.clone()]);
    }
    args.extend(["--".into(), dir.join("probe-target").display().to_string(), "--wait".into(), case.run.clone()]);
    args
}

#[test]
fn uprobe_session_matches_the_suite() {
    let Some(dir) = ready("uprobe_session_matches_the_suite", (6, 13), "uprobe sessions") else { return };
    let case = read_case("cases/uprobe-session/uprobe-session-cookie-roundtrip.yaml");
    let p = &case.probes[0];
    let Some(base) = p.record.session_cookie.as_ref().map(|s| s.const_plus_arg0) else {
        panic!("the case changed: this test reads a uprobe.session writing const-plus-arg0");
    };
    assert!(p.kind == "uprobe.session" && p.targets[0].cookie == 0, "the case changed: want a uprobe.session without attach cookie");
    let args = tracer_args(&dir, &case, &[("--session", p.targets[0].symbol.clone()), ("--session-cookie-base", base.to_string())]);
    let got = run_tracer(&args).unwrap_or_else(|e| panic!("the kernel lacks uprobe sessions: {e}"));
    check(&case, &got);
}

#[test]
fn kprobe_session_matches_the_suite() {
    let Some(dir) = ready("kprobe_session_matches_the_suite", (6, 10), "kprobe sessions") else { return };
    let case = read_case("cases/kprobe-session/kprobe-session-cookie-filter.yaml");
    let p = &case.probes[0];
    let (Some(base), Some(skip)) = (p.record.session_cookie.as_ref().map(|s| s.const_plus_arg0), p.record.skip_return.as_deref()) else {
        panic!("the case changed: this test reads a kprobe.session writing const-plus-arg0 with skip_return");
    };
    assert_eq!(p.kind, "kprobe.session", "the case changed");
    let flags = [
        ("--kprobe-session", p.targets[0].symbol.clone()),
        ("--kprobe-cookie", p.targets[0].cookie.to_string()),
        ("--kprobe-cookie-base", base.to_string()),
        ("--kprobe-skip", skip.to_string()),
    ];
    match run_tracer(&tracer_args(&dir, &case, &flags)) {
        Ok(got) => check(&case, &got),
        // This host's kernel lacks kprobe_multi (no CONFIG_FPROBE, or no kprobes at all).
        Err(why) => eprintln!("SKIP kprobe_session_matches_the_suite: the kernel lacks kprobe sessions:\n{why}"),
    }
}

/// Runs everywhere: both cases' traces parse, and what the kprobe case leaves
/// open (the second argument, an entry's session cookie, the upper half of a
/// 32-bit return value) is what the comparison ignores, and nothing else.
#[test]
fn case_traces_parse() {
    let u = read_case("cases/uprobe-session/uprobe-session-cookie-roundtrip.yaml");
    assert_eq!(expected(&u).len(), 6);
    let k = read_case("cases/kprobe-session/kprobe-session-cookie-filter.yaml");
    let want = expected(&k);
    assert_eq!(want.len(), 6);
    let e = &want[0];
    assert_eq!((e.event.func.as_str(), &e.event.args[..], e.event.cookie, e.event.wrote, e.event.prog_ret), ("do_sys_openat2", &[7][..], 0x31, Some(0x107), Some(1)));
    assert!(e.any_session_cookie && e.args == 1 && e.ret_width == 32);
    assert_eq!(want[2].event.ret, Some(-2));
    // What the tracer prints on a kernel with kprobe sessions.
    let mut got = e.event.clone();
    got.args = vec![7, 0x7fff_1234];
    got.session_cookie = 0xdead;
    assert!(matches(&got, e));
    got.cookie = 0x32;
    assert!(!matches(&got, e));
    let mut ret = want[2].event.clone();
    ret.ret = Some(0xffff_fffe);
    assert!(matches(&ret, &want[2]));
    ret.session_cookie += 1;
    assert!(!matches(&ret, &want[2]), "a return's session cookie is compared");
}
