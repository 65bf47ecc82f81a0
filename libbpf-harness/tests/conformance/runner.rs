//! The harness protocol conformance checks, written against
//! go-harness/PROTOCOL.md only: a sequence of requests and the answers any
//! harness must give. Reusable: it needs only std, serde_json and base64, so
//! probeconf's own tests can include it with `#[path]`.
//!
//! A harness is a command line (`HARNESS="path args"`, split at spaces); the
//! checks append `run`, `version` or `gaps`. Levels:
//! - [`Level::Protocol`]: subcommands, hello, strict decoding, validation,
//!   object checks, EOF: needs no BPF (a harness that loads nothing can pass);
//! - [`Level::Bpf`]: loading and attaching probeconf's objects on the running
//!   kernel (root, uprobe_multi and uprobe sessions for two checks), draining
//!   events, release on EOF and on SIGTERM. Needs `artifacts` (the directory
//!   `probeconf artifacts DIR` writes).

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one answer may take (loading a program included).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// `sizeof(struct pc_event)` of the artifacts' ABI (PROTOCOL.md: 144 in ABI v2).
pub const EVENT_SIZE: usize = 144;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Protocol,
    Bpf,
}

#[derive(Clone, Debug)]
pub struct Harness {
    pub argv: Vec<String>,
}

impl Harness {
    pub fn parse(cmd: &str) -> Harness {
        Harness { argv: cmd.split_whitespace().map(String::from).collect() }
    }

    fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]).arg(sub);
        c
    }

    /// Runs a subcommand to its end: (status, stdout, stderr).
    pub fn oneshot(&self, args: &[&str]) -> Result<(i32, String, String), String> {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]).args(args);
        let out = c.stdin(Stdio::null()).output().map_err(|e| format!("running {:?}: {e}", self.argv))?;
        Ok((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into()))
    }

    /// Starts a `run` session and reads its hello line.
    pub fn start(&self) -> Result<Session, String> {
        let mut child = self
            .command("run")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", self.argv))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut s = Session { child, stdin, lines: rx, stderr: log };
        let hello = s.recv()?;
        if hello["type"] != "hello" || hello["protocol"] != 1 || !hello["library"].is_string() || !hello["version"].is_string() {
            return Err(format!("first line is not a protocol 1 hello with library and version: {hello}"));
        }
        Ok(s)
    }
}

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Session {
    pub fn send_raw(&mut self, line: &str) -> Result<(), String> {
        let w = self.stdin.as_mut().ok_or("stdin already closed")?;
        w.write_all(line.as_bytes()).and_then(|_| w.write_all(b"\n")).and_then(|_| w.flush()).map_err(|e| format!("write: {e}"))
    }

    pub fn send(&mut self, v: &Value) -> Result<(), String> {
        self.send_raw(&v.to_string())
    }

    /// The next line, which must be one JSON object with a `type`.
    pub fn recv(&mut self) -> Result<Value, String> {
        loop {
            let line = self
                .lines
                .recv_timeout(ANSWER_TIMEOUT)
                .map_err(|_| format!("no answer (timeout or EOF); stderr:\n{}", self.stderr_tail()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).map_err(|e| format!("not one JSON object: {e}: {line}"))?;
            if !v["type"].is_string() {
                return Err(format!("a line without type: {line}"));
            }
            return Ok(v);
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit status (closing stdin first); no more lines may follow.
    pub fn finish(mut self) -> Result<i32, String> {
        self.close_stdin();
        let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                if let Ok(extra) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    if !extra.trim().is_empty() {
                        return Err(format!("a line after the session ended: {extra}"));
                    }
                }
                return Ok(st.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return Err("the harness did not exit".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the BPF checks need: probeconf's artifacts and a private copy of
/// probe-target (its own inode, so `pid: all` probes see only our runs).
pub struct Fixtures {
    pub artifacts: PathBuf,
    pub dir: PathBuf,
}

impl Fixtures {
    pub fn new(artifacts: &Path) -> Result<Fixtures, String> {
        let dir = std::env::temp_dir().join(format!("pch-conformance-{}-{}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for f in ["probe-target", "libprobetarget.so"] {
            std::fs::copy(artifacts.join(f), dir.join(f)).map_err(|e| format!("{}: {e}", artifacts.join(f).display()))?;
        }
        std::fs::write(dir.join("not-elf.txt"), "just text, not an ELF object\n").map_err(|e| e.to_string())?;
        Ok(Fixtures { artifacts: artifacts.to_path_buf(), dir })
    }
    pub fn object(&self, name: &str) -> String {
        self.artifacts.join(name).display().to_string()
    }
    pub fn target(&self) -> String {
        self.dir.join("probe-target").display().to_string()
    }
    /// Runs probe-target's steps (the workload between attached and drain).
    pub fn run_target(&self, steps: &str) -> Result<(), String> {
        let st = Command::new(self.dir.join("probe-target")).arg(steps).stdout(Stdio::null()).status().map_err(|e| e.to_string())?;
        st.success().then_some(()).ok_or(format!("probe-target {steps:?}: {st}"))
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn cfg() -> String {
    // struct pc_config: probe_index 0, no tgid filter, never skip returns, no cookie write.
    base64::engine::general_purpose::STANDARD.encode([0u8; 32])
}

/// A good uprobe request on probe-target's pc_leaf, for all processes.
pub fn uprobe_request(fx: &Fixtures) -> Value {
    json!({"protocol": 1, "object": fx.object("recorders.bpf.o"), "probes": [{
        "name": "p", "program": "pc_uprobe", "kind": "uprobe", "binary": fx.target(),
        "targets": [{"symbol": "pc_leaf", "offset": 0, "cookie": 9}], "pid": {"scope": "all"},
        "rodata": {".rodata.pc_cfg": cfg()}}]})
}

/// A uprobe.session request with both builds (the harness picks one).
pub fn session_request(fx: &Fixtures) -> Value {
    json!({"protocol": 1, "objects": {"noarg": fx.object("sessions.bpf.o"), "ctx": fx.object("sessions.ctx.bpf.o")}, "probes": [{
        "name": "s", "program": "pc_uprobe_session", "kind": "uprobe.session", "binary": fx.target(),
        "targets": [{"symbol": "pc_leaf", "offset": 0, "cookie": 17}], "pid": {"scope": "all"},
        "rodata": {".rodata.pc_cfg": cfg()}}]})
}

type CheckFn = fn(&Harness, Option<&Fixtures>) -> Result<(), String>;

pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub run: CheckFn,
}

/// Sends `line` as the request and expects an error line with this phase and
/// class, then exit status 1.
fn expect_error(h: &Harness, line: &str, phase: &str, class: &str) -> Result<Value, String> {
    let mut s = h.start()?;
    s.send_raw(line)?;
    let e = s.recv()?;
    if e["type"] != "error" || e["phase"] != phase || e["class"] != class {
        return Err(format!("want an error line {phase}/{class}, got {e}"));
    }
    if !e["detail"].is_string() {
        return Err(format!("error line without detail: {e}"));
    }
    let status = s.finish()?;
    if status != 1 {
        return Err(format!("exit status {status} after an error line, want 1"));
    }
    Ok(e)
}

fn with_probe(mut req: Value, f: impl FnOnce(&mut Value)) -> String {
    f(&mut req["probes"][0]);
    req.to_string()
}

fn fx(f: Option<&Fixtures>) -> &Fixtures {
    f.expect("BPF checks get fixtures")
}

/// A minimal valid-looking request whose object is `object` (for the protocol level).
fn shape_request(object: &str) -> Value {
    json!({"protocol": 1, "object": object, "probes": [{
        "name": "p", "program": "pc_uprobe", "kind": "uprobe", "binary": "/bin/true",
        "targets": [{"symbol": "main", "offset": 0, "cookie": 0}]}]})
}

/// Waits until the kernel no longer knows program `id` (links and objects released).
fn program_gone(id: u64) -> Result<(), String> {
    #[repr(C)]
    struct Attr {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    for _ in 0..300 {
        let attr = Attr { prog_id: id as u32, next_id: 0, open_flags: 0 };
        // SAFETY: BPF_PROG_GET_FD_BY_ID (13) reads the 12-byte attr; returns an fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, 13, &attr as *const Attr, size_of::<Attr>() as u32) };
        if fd < 0 {
            return Ok(());
        }
        // SAFETY: closing the fd we were just given.
        unsafe { libc::close(fd as i32) };
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("program {id} still loaded 6 s after the session ended"))
}

fn attached_ok(a: &Value, names: &[&str]) -> Result<u64, String> {
    if a["type"] != "attached" {
        return Err(format!("want attached, got {a}"));
    }
    let probes = a["probes"].as_array().ok_or(format!("attached without probes: {a}"))?;
    if probes.len() != names.len() {
        return Err(format!("attached lists {} probes, want {}: {a}", probes.len(), names.len()));
    }
    for (p, n) in probes.iter().zip(names) {
        if p["name"] != *n || !(p["via"] == "native" || p["via"] == "compat") || !p["bridge"].is_string() {
            return Err(format!("attached probe without name/via/bridge: {p}"));
        }
        if (p["via"] == "compat") == p["bridge"].as_str().unwrap_or_default().is_empty() {
            return Err(format!("via compat needs a bridge id, native none: {p}"));
        }
    }
    probes[0]["prog_id"].as_u64().filter(|id| *id > 0).ok_or(format!("attached probe without prog_id: {}", probes[0]))
}

fn drain_events(s: &mut Session, want: usize) -> Result<(), String> {
    s.send(&json!({"cmd": "drain"}))?;
    let ev = s.recv()?;
    if ev["type"] != "events" || !ev["dropped"].is_u64() {
        return Err(format!("want events with dropped, got {ev}"));
    }
    let events = ev["events"].as_array().ok_or("events is not an array")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for e in events {
        let raw = b64.decode(e.as_str().ok_or("event is not a string")?).map_err(|e| format!("event is not padded base64: {e}"))?;
        if raw.len() != EVENT_SIZE {
            return Err(format!("event of {} bytes, want sizeof(struct pc_event) = {EVENT_SIZE}", raw.len()));
        }
    }
    if events.len() != want {
        return Err(format!("{} events, want {want}", events.len()));
    }
    let done = s.recv()?;
    if done["type"] != "done" {
        return Err(format!("want done, got {done}"));
    }
    Ok(())
}

/// Every check, in order.
pub fn checks() -> Vec<Check> {
    vec![
        Check { name: "version prints one JSON object (protocol, library, version) and exits 0", level: Level::Protocol, run: |h, _| {
            let (st, out, _) = h.oneshot(&["version"])?;
            let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("version: {e}: {out}"))?;
            if st != 0 || out.trim().lines().count() != 1 || v["protocol"] != 1 || !v["library"].is_string() || !v["version"].is_string() {
                return Err(format!("status {st}, output {out}"));
            }
            Ok(())
        }},
        Check { name: "gaps prints a JSON array of registry entries and exits 0", level: Level::Protocol, run: |h, _| {
            let (st, out, _) = h.oneshot(&["gaps"])?;
            let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("gaps: {e}: {out}"))?;
            let entries = v.as_array().ok_or("gaps is not an array")?;
            for e in entries {
                for f in ["id", "library", "versions", "feature", "status", "workaround"] {
                    if !e[f].is_string() {
                        return Err(format!("entry without {f}: {e}"));
                    }
                }
                if !["native", "compat", "missing"].contains(&e["status"].as_str().unwrap()) {
                    return Err(format!("status not native|compat|missing: {e}"));
                }
            }
            (st == 0).then_some(()).ok_or(format!("status {st}"))
        }},
        Check { name: "no or an unknown subcommand: usage, exit 2", level: Level::Protocol, run: |h, _| {
            for args in [&[][..], &["bogus"][..]] {
                let (st, out, _) = h.oneshot(args)?;
                if st != 2 || !out.trim().is_empty() {
                    return Err(format!("{args:?}: status {st}, stdout {out:?} (want 2 and nothing on stdout)"));
                }
            }
            Ok(())
        }},
        Check { name: "hello first; EOF before the request: protocol error, exit 1", level: Level::Protocol, run: |h, _| {
            let mut s = h.start()?;
            s.close_stdin();
            let e = s.recv()?;
            if e["type"] != "error" || e["phase"] != "protocol" {
                return Err(format!("want a protocol error line, got {e}"));
            }
            let st = s.finish()?;
            (st == 1).then_some(()).ok_or(format!("exit {st}"))
        }},
        Check { name: "a malformed line: protocol/invalid, exit 1", level: Level::Protocol, run: |h, _| {
            expect_error(h, "{this is not json", "protocol", "invalid").map(drop)
        }},
        Check { name: "blank lines are ignored", level: Level::Protocol, run: |h, _| {
            let mut s = h.start()?;
            s.send_raw("")?;
            s.send_raw("   ")?;
            s.send_raw("[1,2]")?;
            let e = s.recv()?;
            if e["type"] != "error" || e["phase"] != "protocol" || e["class"] != "invalid" {
                return Err(format!("want protocol/invalid for the first non-blank line, got {e}"));
            }
            (s.finish()? == 1).then_some(()).ok_or("exit".into())
        }},
        Check { name: "an unknown field: protocol/invalid", level: Level::Protocol, run: |h, _| {
            let mut r = shape_request("/nonexistent.bpf.o");
            r["colour"] = json!("blue");
            expect_error(h, &r.to_string(), "protocol", "invalid").map(drop)
        }},
        Check { name: "an unknown field in a probe or target: protocol/invalid", level: Level::Protocol, run: |h, _| {
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["flavour"] = json!(1)), "protocol", "invalid")?;
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["targets"][0]["addr"] = json!(1)), "protocol", "invalid").map(drop)
        }},
        Check { name: "trailing data after the object: protocol/invalid", level: Level::Protocol, run: |h, _| {
            expect_error(h, &format!("{} {{}}", shape_request("/x.bpf.o")), "protocol", "invalid").map(drop)
        }},
        Check { name: "a wrong type: protocol/invalid", level: Level::Protocol, run: |h, _| {
            let mut r = shape_request("/x.bpf.o");
            r["protocol"] = json!("1");
            expect_error(h, &r.to_string(), "protocol", "invalid").map(drop)
        }},
        Check { name: "another protocol version: protocol/invalid", level: Level::Protocol, run: |h, _| {
            let mut r = shape_request("/x.bpf.o");
            r["protocol"] = json!(2);
            expect_error(h, &r.to_string(), "protocol", "invalid").map(drop)
        }},
        Check { name: "an unknown kind: protocol/invalid naming the valid kinds", level: Level::Protocol, run: |h, _| {
            let e = expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["kind"] = json!("uprobe.sessions")), "protocol", "invalid")?;
            let d = e["detail"].as_str().unwrap();
            ["uprobe.session", "kprobe.multi", "usdt"].iter().all(|k| d.contains(k)).then_some(()).ok_or(format!("detail does not list the kinds: {d}"))
        }},
        Check { name: "object and objects together, or neither: protocol/invalid", level: Level::Protocol, run: |h, _| {
            let mut r = shape_request("/x.bpf.o");
            r["objects"] = json!({"noarg": "/a.o", "ctx": "/b.o"});
            expect_error(h, &r.to_string(), "protocol", "invalid")?;
            let mut r = shape_request("/x.bpf.o");
            r.as_object_mut().unwrap().remove("object");
            expect_error(h, &r.to_string(), "protocol", "invalid")?;
            let mut r = shape_request("/x.bpf.o");
            r.as_object_mut().unwrap().remove("object");
            r["objects"] = json!({"noarg": "/a.o"});
            expect_error(h, &r.to_string(), "protocol", "invalid").map(drop)
        }},
        Check { name: "a relative binary, a session on a single-link kind, a zero pid: protocol/invalid", level: Level::Protocol, run: |h, _| {
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["binary"] = json!("bin/true")), "protocol", "invalid")?;
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["session"] = json!(true)), "protocol", "invalid")?;
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["pid"] = json!({"scope": "pid", "pid": 0})), "protocol", "invalid")?;
            expect_error(h, &with_probe(shape_request("/x.bpf.o"), |p| p["kind"] = json!("kprobe")), "protocol", "invalid").map(drop)
        }},
        Check { name: "a missing object: protocol/not-found, errno 2", level: Level::Protocol, run: |h, _| {
            let e = expect_error(h, &shape_request("/nonexistent/probeconf.bpf.o").to_string(), "protocol", "not-found")?;
            (e["errno"] == 2).then_some(()).ok_or(format!("errno should be 2: {e}"))
        }},
        Check { name: "an object that is a directory: protocol/invalid", level: Level::Protocol, run: |h, _| {
            expect_error(h, &shape_request("/tmp").to_string(), "protocol", "invalid").map(drop)
        }},
        Check { name: "an object that is not ELF: load/invalid, no probe", level: Level::Bpf, run: |h, f| {
            let e = expect_error(h, &shape_request(&fx(f).dir.join("not-elf.txt").display().to_string()).to_string(), "load", "invalid")?;
            e.get("probe").is_none().then_some(()).ok_or(format!("the object's error names a probe: {e}"))
        }},
        Check { name: "an object without struct pc_event: load/invalid, no probe", level: Level::Bpf, run: |h, f| {
            let req = with_probe(uprobe_request(fx(f)), |_| {});
            let mut r: Value = serde_json::from_str(&req).unwrap();
            r["object"] = json!(fx(f).object("feature_probes.bpf.o"));
            r["probes"][0]["program"] = json!("fp_uprobe");
            let e = expect_error(h, &r.to_string(), "load", "invalid")?;
            e.get("probe").is_none().then_some(()).ok_or(format!("names a probe: {e}"))
        }},
        Check { name: "a program not in the object: load/not-found for that probe", level: Level::Bpf, run: |h, f| {
            let e = expect_error(h, &with_probe(uprobe_request(fx(f)), |p| p["program"] = json!("pc_no_such_program")), "load", "not-found")?;
            (e["probe"] == "p").then_some(()).ok_or(format!("probe not named: {e}"))
        }},
        Check { name: "rodata of the wrong size: load/invalid; a missing section: load/not-found", level: Level::Bpf, run: |h, f| {
            let short = base64::engine::general_purpose::STANDARD.encode([0u8; 8]);
            let e = expect_error(h, &with_probe(uprobe_request(fx(f)), |p| p["rodata"] = json!({".rodata.pc_cfg": short})), "load", "invalid")?;
            if e["probe"] != "p" {
                return Err(format!("probe not named: {e}"));
            }
            expect_error(h, &with_probe(uprobe_request(fx(f)), |p| p["rodata"] = json!({".rodata.nope": cfg()})), "load", "not-found").map(drop)
        }},
        Check { name: "a missing binary: attach/not-found, errno 2", level: Level::Bpf, run: |h, f| {
            let e = expect_error(h, &with_probe(uprobe_request(fx(f)), |p| p["binary"] = json!("/nonexistent/probe-target")), "attach", "not-found")?;
            (e["errno"] == 2 && e["probe"] == "p").then_some(()).ok_or(format!("errno 2 and probe p: {e}"))
        }},
        Check { name: "an unknown symbol: attach/not-found", level: Level::Bpf, run: |h, f| {
            expect_error(h, &with_probe(uprobe_request(fx(f)), |p| p["targets"][0]["symbol"] = json!("pc_no_such_fn")), "attach", "not-found").map(drop)
        }},
        Check { name: "a uprobe on pc_leaf: attached with via and prog_id, events of sizeof(struct pc_event), done, exit 0", level: Level::Bpf, run: |h, f| {
            let f = fx(f);
            let mut s = h.start()?;
            s.send(&uprobe_request(f))?;
            let a = s.recv()?;
            attached_ok(&a, &["p"])?;
            if a.get("object_variant").is_some() {
                return Err(format!("object_variant without objects: {a}"));
            }
            f.run_target("call leaf 1; call leaf 2")?;
            drain_events(&mut s, 2)?;
            let st = s.finish()?;
            (st == 0).then_some(()).ok_or(format!("exit {st} after done"))
        }},
        Check { name: "objects: the harness picks a build and says which and why (uprobe.session)", level: Level::Bpf, run: |h, f| {
            let f = fx(f);
            let mut s = h.start()?;
            s.send(&session_request(f))?;
            let a = s.recv()?;
            attached_ok(&a, &["s"])?;
            if !(a["object_variant"] == "noarg" || a["object_variant"] == "ctx") || !a["object_reason"].is_string() {
                return Err(format!("attached without object_variant/object_reason: {a}"));
            }
            f.run_target("call leaf 1; call leaf 2")?;
            // entry and return of each call
            drain_events(&mut s, 4)?;
            (s.finish()? == 0).then_some(()).ok_or("exit".into())
        }},
        Check { name: "an unknown command after attached: protocol/invalid, exit 1, released", level: Level::Bpf, run: |h, f| {
            let mut s = h.start()?;
            s.send(&uprobe_request(fx(f)))?;
            let id = attached_ok(&s.recv()?, &["p"])?;
            s.send(&json!({"cmd": "drian"}))?;
            let e = s.recv()?;
            if e["type"] != "error" || e["phase"] != "protocol" || e["class"] != "invalid" {
                return Err(format!("want protocol/invalid, got {e}"));
            }
            if s.finish()? != 1 {
                return Err("exit status".into());
            }
            program_gone(id)
        }},
        Check { name: "EOF mid-session (after attached): error line of phase protocol, exit 1, everything released", level: Level::Bpf, run: |h, f| {
            let mut s = h.start()?;
            s.send(&uprobe_request(fx(f)))?;
            let id = attached_ok(&s.recv()?, &["p"])?;
            s.close_stdin();
            let e = s.recv()?;
            if e["type"] != "error" || e["phase"] != "protocol" {
                return Err(format!("want a protocol error line, got {e}"));
            }
            if s.finish()? != 1 {
                return Err("exit status".into());
            }
            program_gone(id)
        }},
        Check { name: "SIGTERM mid-session: error line of phase protocol, exit 1, everything released", level: Level::Bpf, run: |h, f| {
            let mut s = h.start()?;
            s.send(&uprobe_request(fx(f)))?;
            let id = attached_ok(&s.recv()?, &["p"])?;
            s.signal(libc::SIGTERM);
            let e = s.recv()?;
            if e["type"] != "error" || e["phase"] != "protocol" {
                return Err(format!("want a protocol error line, got {e}"));
            }
            if s.finish()? != 1 {
                return Err("exit status".into());
            }
            program_gone(id)
        }},
    ]
}

/// Runs every check up to `level`; returns (name, result) per check.
pub fn run_all(h: &Harness, artifacts: Option<&Path>, level: Level) -> Vec<(&'static str, Result<(), String>)> {
    let mut out = Vec::new();
    for c in checks().into_iter().filter(|c| c.level <= level) {
        let fixtures = match (c.level, artifacts) {
            (Level::Bpf, Some(a)) => match Fixtures::new(a) {
                Ok(f) => Some(f),
                Err(e) => {
                    out.push((c.name, Err(format!("fixtures: {e}"))));
                    continue;
                }
            },
            (Level::Bpf, None) => {
                out.push((c.name, Err("no artifacts directory for a BPF check".into())));
                continue;
            }
            _ => None,
        };
        out.push((c.name, (c.run)(h, fixtures.as_ref())));
    }
    out
}
