//! bpftrace as a loader-like client (issue 11): not a library that loads
//! probeconf's objects, but a tool that compiles and attaches its own programs
//! from a script. Its run of a case:
//!
//! 1. the runner has spawned the targets (probe-target waits for its go);
//! 2. [`BpftraceLoader::attach`] writes the case's program (or one derived
//!    from its probes, [`derive_program`]) with `${target}`, `${lib}` and
//!    `${pid}` replaced, prepends `BEGIN { printf("PC|ready\n") }`, starts
//!    bpftrace, and waits for that line (bpftrace triggers BEGIN once every
//!    probe is attached); then it takes the **census** of what bpftrace made in
//!    the kernel (its programs and links, [`crate::probing::census::client_census`]);
//! 3. the runner releases the target and waits for it;
//! 4. `drain` stops bpftrace (SIGINT, as a user would: END runs, output is
//!    flushed) and parses its `PC|…` lines ([`parse_line`]) into
//!    [`ClientEvent`]s, which the one normaliser turns into the canonical trace.
//!
//! bpftrace comes from a private root of Debian's package (`bpftrace@0.27.1`,
//! src/debian/root.rs) and runs with the root's own loader and libraries, or
//! is a binary given by path (`bpftrace@/usr/bin/bpftrace`). bpftrace >= 0.27
//! reads /sys/kernel/tracing at start: where it is not mounted, bpftrace runs
//! in a private mount namespace with tracefs mounted there. Run through the
//! root's loader, bpftrace's `comm` is `ld-linux-x86-64`; nothing here uses
//! comm (the census finds bpftrace's objects through its pid's fds).

use super::registry::LoaderSpec;
use super::{AttachRequest, Attached, Drained, FailPhase, LibraryInfo, Loader, LoaderError, Via};
use crate::case::{Case, LoaderId, ProbeKind};
use crate::judge::classify::{errno_in_text, Classified, ErrorClass};
use crate::observe::normalise::{ClientEvent, ClientPhase};
use crate::plan::{Plan, ProbePlan};
use crate::probing::census::ClientCensus;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long bpftrace may take to compile and attach (LLVM under TCG is slow).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(180);

/// The marker line of the prepended BEGIN probe.
pub const READY: &str = "PC|ready";

/// How a bpftrace is run: its command line (the root's loader and options and
/// the binary, or the binary alone), and where its root is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpftraceCommand {
    /// The label in reports: `bpftrace@0.27.1`.
    pub label: String,
    /// `bpftrace --version`'s number: `0.27.1`.
    pub version: String,
    /// Where it came from: `Debian 0.27.1-1 (sid), private root …` or a path.
    pub origin: String,
    /// The command that runs bpftrace (arguments follow).
    pub command: Vec<String>,
    /// The root's directory, when it runs from a private root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// The bpftrace binary itself.
    pub binary: PathBuf,
}

impl BpftraceCommand {
    /// bpftrace from the private root of Debian's package at `want` (a
    /// version such as `0.27.1` or a suite).
    pub fn from_debian(want: &str) -> Result<BpftraceCommand, String> {
        let root = crate::debian::root::Root::ensure_with_log("bpftrace", want, &mut |l| eprintln!("bpftrace root: {l}"))
            .map_err(|e| e.to_string())?;
        let cmd = root.command("bpftrace");
        let command: Vec<String> =
            std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
        let mut c = BpftraceCommand {
            label: format!("bpftrace@{want}"),
            version: String::new(),
            origin: format!("Debian {} ({}), private root {}", root.version, root.suite, root.dir.display()),
            command,
            root: Some(root.dir.clone()),
            binary: root.binary("bpftrace"),
        };
        c.version = c.query_version()?;
        Ok(c)
    }

    /// A bpftrace binary given by path.
    pub fn from_path(path: &Path) -> Result<BpftraceCommand, String> {
        if !path.is_file() {
            return Err(format!("--loader bpftrace@{}: not a file", path.display()));
        }
        let mut c = BpftraceCommand {
            label: format!("bpftrace@{}", path.display()),
            version: String::new(),
            origin: path.display().to_string(),
            command: vec![path.display().to_string()],
            root: None,
            binary: path.to_path_buf(),
        };
        c.version = c.query_version()?;
        Ok(c)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.command[0]);
        c.args(&self.command[1..]);
        c
    }

    /// `bpftrace --version` → `0.27.1`.
    fn query_version(&self) -> Result<String, String> {
        let out = self.command().arg("--version").output().map_err(|e| format!("{}: {e}", self.label))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        parse_version(&text).ok_or_else(|| format!("{}: `bpftrace --version` said {:?}", self.label, text.trim()))
    }
}

/// `bpftrace v0.27.1` (or `bpftrace v0.23.2-…`) → `0.27.1`.
pub fn parse_version(text: &str) -> Option<String> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v').filter(|r| r.starts_with(|c: char| c.is_ascii_digit())))?;
    Some(v.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?.trim_end_matches('.').to_string())
}

pub struct BpftraceLoader {
    pub cmd: BpftraceCommand,
}

/// Why bpftrace cannot run a case (derived programs only: a case with its own
/// program always can).
pub fn cannot_express(case: &Case) -> Option<String> {
    if case.bpftrace.is_some() {
        return None;
    }
    for p in &case.probes {
        if !matches!(p.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Kprobe | ProbeKind::Kretprobe) {
            return Some(format!("probe `{}`: bpftrace has no {} (the runner derives uprobe, uretprobe, kprobe, kretprobe)", p.name, p.kind));
        }
        if p.retprobe.is_some() || p.session.is_some() {
            return Some(format!("probe `{}`: retprobe/session flags have no bpftrace form", p.name));
        }
        if p.record != Default::default() {
            return Some(format!("probe `{}`: recorder settings (`record:`) have no bpftrace form", p.name));
        }
        if p.pid != crate::case::PidScope::Target {
            return Some(format!("probe `{}`: only `pid: target` is derived", p.name));
        }
        for t in &p.targets {
            if t.cookie.is_some_and(|c| c != 0) || t.record.is_some() {
                return Some(format!("probe `{}`: bpftrace has no attach cookies (nor per-target behaviour)", p.name));
            }
            if t.symbol.is_none() || t.offset != 0 {
                return Some(format!("probe `{}`: only symbol targets are derived", p.name));
            }
        }
    }
    None
}

/// A bpftrace program equivalent to the probes of a plan (kinds that
/// [`cannot_express`] accepts), printing the runner's line format.
pub fn derive_program(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.probes {
        let (provider, ret) = match p.kind {
            ProbeKind::Uprobe => ("uprobe", false),
            ProbeKind::Uretprobe => ("uretprobe", true),
            ProbeKind::Kprobe => ("kprobe", false),
            ProbeKind::Kretprobe => ("kretprobe", true),
            _ => continue,
        };
        let points: Vec<String> = p
            .targets
            .iter()
            .filter_map(|t| t.symbol.as_deref())
            .map(|s| match &p.binary {
                Some(b) => format!("{provider}:{}:{s}", b.display()),
                None => format!("{provider}:{s}"),
            })
            .collect();
        let body = if ret {
            format!("printf(\"PC|{}|return|%d|%d|%s|%ld\\n\", pid, tid, func, retval);", p.name)
        } else {
            let args = p.args;
            let fmt: Vec<&str> = (0..args).map(|_| "%ld").collect();
            let vals: String = (0..args).map(|i| format!(", arg{i}")).collect();
            format!("printf(\"PC|{}|entry|%d|%d|%s|{}\\n\", pid, tid, func{vals});", p.name, fmt.join(","))
        };
        out.push_str(&format!("{} /pid == ${{pid}}/ {{ {body} }}\n", points.join(",")));
    }
    out
}

/// The program with the run's paths and pid in place of `${target}`,
/// `${lib}` and `${pid}`, after the BEGIN probe that says it is attached.
pub fn script(program: &str, run_dir: &Path, pid: u32) -> String {
    let body = program
        .replace("${target}", &run_dir.join("probe-target").display().to_string())
        .replace("${lib}", &run_dir.join("libprobetarget.so").display().to_string())
        .replace("${pid}", &pid.to_string());
    format!("BEGIN {{ printf(\"{READY}\\n\"); }}\n{body}")
}

/// One `PC|probe|phase|pid|tid|func|values` line. `func` may be bpftrace's
/// `probe` (`usdt:/path:provider:name`): the last two parts are kept for a
/// USDT site. Values are decimal, comma-separated.
pub fn parse_line(line: &str, probes: &[String]) -> Result<Option<ClientEvent>, String> {
    let Some(rest) = line.strip_prefix("PC|") else { return Ok(None) };
    if line == READY {
        return Ok(None);
    }
    let f: Vec<&str> = rest.splitn(6, '|').collect();
    let [probe, phase, pid, tid, func, values] = f.as_slice() else {
        return Err(format!("bpftrace line `{line}`: want PC|probe|phase|pid|tid|func|values"));
    };
    let probe_index = probes
        .iter()
        .position(|p| p == probe)
        .ok_or_else(|| format!("bpftrace line `{line}`: no probe `{probe}` in the case (probes: {})", probes.join(", ")))?;
    let phase = match *phase {
        "entry" => ClientPhase::Entry,
        "return" => ClientPhase::Return,
        "usdt" => ClientPhase::Usdt,
        other => return Err(format!("bpftrace line `{line}`: phase `{other}` (entry, return, usdt)")),
    };
    let num = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("bpftrace line `{line}`: `{s}` is not a pid/tid"));
    let func = if phase == ClientPhase::Usdt {
        let parts: Vec<&str> = func.rsplitn(3, ':').collect();
        match parts.as_slice() {
            [name, provider, _] | [name, provider] => format!("{provider}:{name}"),
            _ => func.to_string(),
        }
    } else {
        func.trim().to_string()
    };
    let values = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<i64>().or_else(|_| v.parse::<u64>().map(|u| u as i64)).map_err(|_| format!("bpftrace line `{line}`: `{v}` is not a number")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ClientEvent { tgid: num(pid)?, tid: num(tid)?, probe_index: probe_index as u32, phase, func, values }))
}

/// `Lost N events` lines of bpftrace: events it could not read.
pub fn lost_events(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter().position(|x| *x == "Lost").and_then(|i| w.get(i + 1)).and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

/// What bpftrace said when it did not attach, classified. bpftrace passes
/// the kernel's errno on as its strerror text ("…: Operation not supported"):
/// where the message quotes one, the one errno table decides
/// ([`crate::judge::classify::errno_in_text`]). Only bpftrace's own messages,
/// which carry no errno, are read here.
pub fn classify_stderr(said: &str, detail: String) -> Classified {
    if let Some(errno) = errno_in_text(said) {
        return Classified::from_errno(errno, detail);
    }
    let t = said.to_ascii_lowercase();
    let class = if t.contains("not supported") || t.contains("unsupported") {
        ErrorClass::Unsupported
    } else if ["could not resolve", "no probes to attach", "not found", "does not exist", "no matches"].iter().any(|w| t.contains(w)) {
        ErrorClass::NotFound
    } else if t.contains("error:") {
        // A script bpftrace refuses to compile or attach for its own reasons.
        ErrorClass::Invalid
    } else {
        ErrorClass::Other
    };
    Classified { class, errno: None, detail }
}

/// Whether tracefs is mounted at /sys/kernel/tracing.
fn tracefs_mounted() -> bool {
    Path::new("/sys/kernel/tracing/available_events").exists() || Path::new("/sys/kernel/tracing/events").is_dir()
}

impl Loader for BpftraceLoader {
    fn id(&self) -> LoaderId {
        LoaderId::Bpftrace
    }
    fn label(&self) -> String {
        self.cmd.label.clone()
    }
    fn library(&self) -> LibraryInfo {
        LibraryInfo { loader: LoaderId::Bpftrace, library: "bpftrace".into(), version: format!("{} ({})", self.cmd.version, self.cmd.origin) }
    }
    fn respawn(&self) -> Option<LoaderSpec> {
        Some(LoaderSpec::Bpftrace(self.cmd.clone()))
    }
    fn expresses(&self, case: &Case) -> Result<(), String> {
        match cannot_express(case) {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }
    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        let plan = req.plan;
        let program = plan.bpftrace.clone().unwrap_or_else(|| derive_program(plan));
        let text = script(&program, &plan.run_dir, req.pids.target);
        let path = plan.run_dir.join("script.bt");
        let err = |phase: FailPhase, class: ErrorClass, detail: String| LoaderError {
            phase,
            probe: None,
            error: Classified { class, errno: None, detail },
        };
        std::fs::write(&path, &text).map_err(|e| err(FailPhase::Harness, ErrorClass::Other, format!("{}: {e}", path.display())))?;
        let mut cmd = self.cmd.command();
        cmd.arg("-B").arg("line").arg(&path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // The script's own limits, not the user's environment.
        cmd.env_remove("BPFTRACE_MAX_STRLEN");
        if !tracefs_mounted() {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let none = c"none";
                    let root = c"/";
                    if libc::mount(none.as_ptr(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let t = c"tracefs";
                    let at = c"/sys/kernel/tracing";
                    // A failure here leaves bpftrace to say what it misses.
                    libc::mount(t.as_ptr(), at.as_ptr(), t.as_ptr(), 0, std::ptr::null());
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| err(FailPhase::Harness, ErrorClass::Other, format!("starting {}: {e}", self.cmd.label)))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<bool>();
        let out_lines = lines.clone();
        let reader = std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if l.trim() == READY {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(true);
                    }
                    continue;
                }
                out_lines.lock().unwrap().push(l);
            }
            if let Some(tx) = ready_tx.take() {
                let _ = tx.send(false);
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let ready = ready_rx.recv_timeout(ATTACH_TIMEOUT).unwrap_or(false);
        if !ready {
            let _ = child.kill();
            let status = child.wait().ok();
            let _ = reader.join();
            let stderr = err_reader.join().unwrap_or_default();
            let stdout = lines.lock().unwrap().join("\n");
            let said = format!("{}{}", stderr.trim(), if stdout.trim().is_empty() { String::new() } else { format!(" | stdout: {}", stdout.trim()) });
            let what = if started.elapsed() >= ATTACH_TIMEOUT {
                format!("bpftrace did not attach within {} s", ATTACH_TIMEOUT.as_secs())
            } else {
                format!("bpftrace exited ({}) before attaching", status.map(|s| s.to_string()).unwrap_or_default())
            };
            let said = said.lines().filter(|l| !l.trim().is_empty()).take(12).collect::<Vec<_>>().join(" / ");
            let detail = format!("{what}: {said}");
            return Err(LoaderError { phase: FailPhase::Attach, probe: None, error: classify_stderr(&said, detail) });
        }
        let census = crate::probing::census::client_census(child.id(), Duration::from_millis(300));
        // Attached nothing: no link, and no program but BEGIN/END (raw
        // tracepoint programs run by test-run). Perf events do not tell:
        // 0.17.0's output buffers are perf events too.
        if census.links.is_empty() && census.programs.iter().all(|p| p.ty == "rawtracepoint") && !plan.probes.is_empty() {
            // bpftrace went on with nothing attached (a wildcard that matched
            // nothing only warns): measured with 0.23.2 on a kernel without
            // kprobes. The script would observe nothing, whatever happened.
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            let stderr = err_reader.join().unwrap_or_default();
            let said = stderr.lines().filter(|l| !l.trim().is_empty()).take(12).collect::<Vec<_>>().join(" / ");
            let detail = format!("bpftrace started but attached nothing (kernel objects: {}): {said}", census.summary());
            let mut error = classify_stderr(&said, detail);
            if matches!(error.class, ErrorClass::Other | ErrorClass::Invalid) {
                error.class = ErrorClass::NotFound; // nothing matched what the script names
            }
            return Err(LoaderError { phase: FailPhase::Attach, probe: None, error });
        }
        Ok(Box::new(BpftraceAttached {
            child,
            reader: Some(reader),
            err_reader: Some(err_reader),
            lines,
            probes: plan.probes.iter().map(|p: &ProbePlan| p.name.clone()).collect(),
            census,
        }))
    }
}

/// The consumer and producer pages of another process's BPF ring buffers
/// (map type 27), mapped read-only through pidfd_getfd.
struct RingPositions {
    pages: Vec<(*const u64, *const u64)>,
}

impl RingPositions {
    fn open(pid: u32) -> RingPositions {
        let mut pages = Vec::new();
        // SAFETY: plain syscalls; the pages are mapped read-only and only read.
        unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) as libc::c_int;
            if pidfd < 0 {
                return RingPositions { pages };
            }
            let dir = format!("/proc/{pid}/fd");
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if std::fs::read_link(e.path()).map(|t| t.to_string_lossy() != "anon_inode:bpf-map").unwrap_or(true) {
                    continue;
                }
                let info = crate::probing::census::parse_fdinfo(&std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{name}")).unwrap_or_default());
                if info.get("map_type").map(String::as_str) != Some("27") {
                    continue;
                }
                let Ok(target) = name.parse::<libc::c_int>() else { continue };
                let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) as libc::c_int;
                if fd < 0 {
                    continue;
                }
                let page = 4096;
                let cons = libc::mmap(std::ptr::null_mut(), page, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
                let prod = libc::mmap(std::ptr::null_mut(), page, libc::PROT_READ, libc::MAP_SHARED, fd, page as libc::off_t);
                libc::close(fd);
                if cons != libc::MAP_FAILED && prod != libc::MAP_FAILED {
                    pages.push((cons as *const u64, prod as *const u64));
                }
            }
            libc::close(pidfd);
        }
        RingPositions { pages }
    }

    fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Every ring's consumer has caught up with its producer.
    fn drained(&self) -> bool {
        // SAFETY: the pages stay mapped while self lives; the kernel and the
        // consumer write these positions atomically.
        self.pages.iter().all(|(c, p)| unsafe { std::ptr::read_volatile(*c) >= std::ptr::read_volatile(*p) })
    }
}

impl Drop for RingPositions {
    fn drop(&mut self) {
        for (c, p) in &self.pages {
            // SAFETY: mapped in open() with this length.
            unsafe {
                libc::munmap(*c as *mut libc::c_void, 4096);
                libc::munmap(*p as *mut libc::c_void, 4096);
            }
        }
    }
}

struct BpftraceAttached {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    err_reader: Option<std::thread::JoinHandle<String>>,
    lines: Arc<Mutex<Vec<String>>>,
    probes: Vec<String>,
    census: ClientCensus,
}

impl BpftraceAttached {
    /// Waits until bpftrace has printed what is pending. The target has
    /// exited, so every event is in bpftrace's ring buffer; bpftrace prints
    /// them as it polls, but on SIGINT it exits without reading what is left
    /// (measured: 1 of 8 lines of a recursion; under TCG, where resolving a
    /// kernel `func` takes bpftrace about a second per line, every line
    /// after the first). So: until the consumer position of each of its ring
    /// buffers reaches the producer's (libbpf moves it after the callback
    /// that prints the line), then no new line for a short while.
    fn quiesce(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let rings = RingPositions::open(self.child.id());
        if rings.is_empty() {
            // No ring buffer to watch (perf buffers): a quiet window only.
            self.quiet(Duration::from_millis(1500), deadline);
            return;
        }
        while Instant::now() < deadline && !rings.drained() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.quiet(Duration::from_millis(300), deadline);
    }

    /// No new line for `quiet`.
    fn quiet(&self, quiet: Duration, deadline: Instant) {
        let mut seen = self.lines.lock().unwrap().len();
        let mut last = Instant::now();
        while Instant::now() < deadline && last.elapsed() < quiet {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.lines.lock().unwrap().len();
            if now != seen {
                seen = now;
                last = Instant::now();
            }
        }
    }

    /// SIGINT (bpftrace runs END and flushes), then SIGKILL after a while.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.quiesce();
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    return self.child.wait().ok();
                }
            }
        }
    }
}

impl Drop for BpftraceAttached {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Attached for BpftraceAttached {
    fn vias(&self) -> Vec<Via> {
        Vec::new()
    }
    fn census(&self) -> Option<ClientCensus> {
        Some(self.census.clone())
    }
    fn drain(mut self: Box<Self>) -> Result<Drained, LoaderError> {
        let status = self.stop();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self.err_reader.take().and_then(|r| r.join().ok()).unwrap_or_default();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let mut events = Vec::new();
        for l in &lines {
            match parse_line(l.trim(), &self.probes) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(e) => {
                    return Err(LoaderError {
                        phase: FailPhase::Drain,
                        probe: None,
                        error: Classified { class: ErrorClass::Other, errno: None, detail: e },
                    })
                }
            }
        }
        let killed = status.is_some_and(|s| {
            use std::os::unix::process::ExitStatusExt;
            s.signal() == Some(libc::SIGKILL)
        });
        if killed {
            return Err(LoaderError {
                phase: FailPhase::Drain,
                probe: None,
                error: Classified {
                    class: ErrorClass::Other,
                    errno: None,
                    detail: format!("bpftrace did not stop on SIGINT within 20 s (killed); stderr: {}", stderr.trim()),
                },
            });
        }
        let dropped = lost_events(&stderr) + lost_events(&lines.join("\n"));
        let note = events.is_empty().then(|| {
            let said = stderr.lines().filter(|l| !l.trim().is_empty()).take(8).collect::<Vec<_>>().join(" / ");
            format!("bpftrace printed no event ({} other stdout lines); stderr: {said}", lines.len())
        });
        Ok(Drained { records: Vec::new(), dropped, client: Some(events), note })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Vec<String> {
        vec!["e".into(), "r".into(), "u".into()]
    }

    #[test]
    fn lines_become_client_events() {
        let e = parse_line("PC|e|entry|100|101|pc_leaf|1,0", &probes()).unwrap().unwrap();
        assert_eq!(e, ClientEvent { tgid: 100, tid: 101, probe_index: 0, phase: ClientPhase::Entry, func: "pc_leaf".into(), values: vec![1, 0] });
        let r = parse_line("PC|r|return|100|100|__x64_sys_getpgid|-3", &probes()).unwrap().unwrap();
        assert_eq!((r.probe_index, r.phase, r.values.as_slice()), (1, ClientPhase::Return, &[-3][..]));
        // An unsigned 64-bit value printed with %lu wraps to the same i64.
        let r = parse_line("PC|r|return|1|1|f|18446744073709551613", &probes()).unwrap().unwrap();
        assert_eq!(r.values, [-3]);
        let u = parse_line("PC|u|usdt|7|7|usdt:/tmp/x/probe-target:probeconf:args|42,-1", &probes()).unwrap().unwrap();
        assert_eq!(u.func, "probeconf:args");
        assert_eq!(parse_line("Attaching 3 probes...", &probes()).unwrap(), None);
        assert_eq!(parse_line(READY, &probes()).unwrap(), None);
        assert!(parse_line("PC|nope|entry|1|1|f|", &probes()).unwrap_err().contains("no probe `nope`"));
        assert!(parse_line("PC|e|middle|1|1|f|", &probes()).unwrap_err().contains("phase"));
        assert!(parse_line("PC|e|entry|1|1", &probes()).is_err());
        let none = parse_line("PC|e|entry|1|1|pc_leaf|", &probes()).unwrap().unwrap();
        assert!(none.values.is_empty());
    }

    #[test]
    fn versions_and_lost_events() {
        assert_eq!(parse_version("bpftrace v0.27.1\n").as_deref(), Some("0.27.1"));
        assert_eq!(parse_version("bpftrace v0.23.2-1\n").as_deref(), Some("0.23.2"));
        assert_eq!(parse_version("nothing"), None);
        assert_eq!(lost_events("Lost 12 events\nfoo\nLost 3 events"), 15);
        let class = |said: &str| classify_stderr(said, String::new());
        assert_eq!(class("ERROR: Could not resolve symbol: /x:pc_nope").class, ErrorClass::NotFound);
        assert_eq!(class("ERROR: kprobe_multi is not supported").class, ErrorClass::Unsupported);
        // An errno's text goes through the one table.
        let e = class("ERROR: Error attaching probe: kprobe:x: Permission denied");
        assert_eq!((e.class, e.errno), (ErrorClass::Permission, Some(libc::EACCES)));
    }

    #[test]
    fn scripts_get_the_runs_paths_and_pid() {
        let s = script("uprobe:${target}:pc_leaf /pid == ${pid}/ { }\nuprobe:${lib}:pc_lib_add {}", Path::new("/tmp/run"), 42);
        assert!(s.starts_with("BEGIN { printf(\"PC|ready\\n\"); }\n"), "{s}");
        assert!(s.contains("uprobe:/tmp/run/probe-target:pc_leaf /pid == 42/"), "{s}");
        assert!(s.contains("uprobe:/tmp/run/libprobetarget.so:pc_lib_add"), "{s}");
    }

    #[test]
    fn derivable_cases_and_why_not() {
        let c = |probes: &str| {
            Case::parse(&format!("id: x\ndescription: d\nprobes: {probes}\nrun: call leaf 1\nexpect: {{trace: \"\"}}\n"), Path::new("x.yaml")).unwrap()
        };
        assert_eq!(cannot_express(&c("[{name: e, kind: uprobe, targets: [{symbol: pc_leaf}]}]")), None);
        assert!(cannot_express(&c("[{name: e, kind: uprobe, targets: [{symbol: pc_leaf, cookie: 0x11}]}]")).unwrap().contains("cookies"));
        assert!(cannot_express(&c("[{name: s, kind: uprobe.session, targets: [{symbol: pc_leaf}]}]")).unwrap().contains("bpftrace has no"));
        let dir = crate::run::artifacts::RunDir::new().unwrap();
        let case = c("[{name: e, kind: uprobe, targets: [{symbol: pc_leaf}]}, {name: r, kind: uretprobe, targets: [{symbol: pc_leaf}]}]");
        let plan = crate::plan::plan(&case, &dir, crate::run::artifacts::KfuncVariant::NoArg);
        let p = derive_program(&plan);
        assert!(p.contains(":pc_leaf /pid == ${pid}/ { printf(\"PC|e|entry|%d|%d|%s|%ld,%ld\\n\", pid, tid, func, arg0, arg1); }"), "{p}");
        assert!(p.contains("uretprobe:"), "{p}");
        assert!(p.contains("printf(\"PC|r|return|%d|%d|%s|%ld\\n\", pid, tid, func, retval);"), "{p}");
    }
}
