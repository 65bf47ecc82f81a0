//! `session-tracer`: a minimal tool on libbpf-rs and probeconf's bridges
//! (`libbpf_harness::bridge`). It starts a program, attaches a
//! `uprobe.session` program to one of its functions (and, if asked, a
//! `kprobe.session` program to a kernel function, counting only that
//! program's calls), lets it run, and returns every event the programs
//! recorded.
//!
//! The BPF programs are probeconf's session recorders (`probeconf artifacts
//! DIR` writes them, and probe-target, the program they trace):
//! `sessions.bpf.o`, or `sessions.ctx.bpf.o` on kernels whose session kfuncs
//! take `void *ctx` (7.0+); the kernel's BTF picks the build
//! ([`bridge::session_kfunc_prototype`]). The program is started first and
//! must wait for a line on stdin before it does its work (`probe-target
//! --wait` does): the probes are attached to its pid in between.
//!
//! What comes from the bridges: the object pick, the `uprobe.session` type fix
//! for libbpf 1.5 (a no-op on the libbpf 1.7 this builds with), the uprobe
//! session link (libbpf-rs's own call here; a raw `BPF_LINK_CREATE` on libbpf
//! 1.5) and the kprobe session link (no libbpf-rs has it).

use libbpf_harness::bridge::{self, BridgeError, OpenProgramBridgeExt, ProgramBridgeExt, Variant};
use libbpf_rs::{MapCore, Object, ObjectBuilder, RingBufferBuilder};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;

/// What to trace.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directory with `sessions.bpf.o` and `sessions.ctx.bpf.o`.
    pub objects: PathBuf,
    /// The function of the program for the `uprobe.session` program.
    pub session: String,
    /// The uprobe session entry writes this + arg0 into its session cookie.
    pub session_cookie_base: u64,
    /// A kernel function for the `kprobe.session` program, if any.
    pub kprobe_session: Option<String>,
    /// The kprobe session link's BPF cookie (`bpf_get_attach_cookie()`).
    pub kprobe_cookie: u64,
    /// The kprobe session entry writes this + arg0 into its session cookie.
    pub kprobe_cookie_base: u64,
    /// When the kprobe session entry returns 1, so that the kernel skips the return.
    pub kprobe_skip: SkipReturn,
    /// The program to start, and its arguments.
    pub command: Vec<String>,
}

/// When a session entry returns 1 (the recorders' `pc_config.return_filter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SkipReturn {
    #[default]
    Never,
    Always,
    OddArg0,
    EvenArg0,
}

impl SkipReturn {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "never" => SkipReturn::Never,
            "always" => SkipReturn::Always,
            "odd-arg0" => SkipReturn::OddArg0,
            "even-arg0" => SkipReturn::EvenArg0,
            _ => return None,
        })
    }

    fn code(self) -> u32 {
        self as u32 // PC_RF_NEVER 0, ALWAYS 1, ODD_ARG0 2, EVEN_ARG0 3
    }
}

/// One line of output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `uprobe.session` or `kprobe.session`.
    pub probe: String,
    /// `entry` or `return`.
    pub phase: String,
    /// The probed function.
    pub func: String,
    /// Entry: arg0 and arg1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<i64>,
    /// Return: the return value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// `bpf_get_attach_cookie()`.
    pub cookie: u64,
    /// `bpf_session_is_return()`.
    pub is_return: bool,
    /// The session cookie as the run read it (entry: before its write).
    pub session_cookie: u64,
    /// Entry: what it wrote into the session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrote: Option<u64>,
    /// Entry: what the program returned (1: skip the return).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_ret: Option<u32>,
}

/// The recorders' `struct pc_config` (bpf/probeconf_abi.h), the contents of
/// their `.rodata.pc_cfg` section.
struct Config {
    probe_index: u32,
    filter_tgid: u32,
    return_filter: u32,
    cookie_mode: u32,
    filter_arg: u64,
    cookie_value: u64,
}

/// `pc_config.cookie_mode`: the session entry writes cookie_value + arg0.
const PC_CM_CONST_PLUS_ARG0: u32 = 3;
/// `pc_event.flags`.
const PC_F_COOKIE_WRITTEN: u32 = 1 << 1;
const PC_F_SKIP_RETURN: u32 = 1 << 2;
/// sizeof(struct pc_event), ABI version 2.
const EVENT_SIZE: usize = 144;

impl Config {
    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        for v in [self.probe_index, self.filter_tgid, self.return_filter, self.cookie_mode] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.filter_arg.to_le_bytes());
        b.extend_from_slice(&self.cookie_value.to_le_bytes());
        b
    }
}

/// The tracer's errors: a bridge's (with its errno and hint), libbpf-rs's,
/// or the tracer's own.
#[derive(Debug)]
pub enum Error {
    Bridge(BridgeError),
    Libbpf(libbpf_rs::Error),
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bridge(e) => write!(f, "{e}"),
            Error::Libbpf(e) => write!(f, "{e:#}"),
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Whether the kernel lacks what was asked for (a bridge's class
    /// `unsupported`: EOPNOTSUPP, ENOTSUPP, ENOSYS).
    pub fn is_not_supported(&self) -> bool {
        matches!(self, Error::Bridge(e) if e.is_not_supported())
    }
}

impl From<BridgeError> for Error {
    fn from(e: BridgeError) -> Self {
        Error::Bridge(e)
    }
}

impl From<libbpf_rs::Error> for Error {
    fn from(e: libbpf_rs::Error) -> Self {
        Error::Libbpf(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Other(e.to_string())
    }
}

/// Opens `path` with only `program` kept, its `.rodata.pc_cfg` set to `cfg`,
/// and the ring buffer of `share` (the first instance) reused, then loads it.
fn load(path: &std::path::Path, program: &str, cfg: &Config, share: Option<&Object>) -> Result<Object, Error> {
    let mut open = ObjectBuilder::default().open_file(path)?;
    let mut found = false;
    for mut p in open.progs_mut() {
        let keep = p.name() == program;
        p.set_autoload(keep);
        if keep {
            found = true;
            // libbpf 1.5 does not know SEC("uprobe.session"); a no-op from 1.6 on.
            p.type_uprobe_session_section();
        }
    }
    if !found {
        return Err(Error::Other(format!("{}: no program {program}", path.display())));
    }
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if name.ends_with(".rodata.pc_cfg") {
            let v = m.initial_value_mut().ok_or_else(|| Error::Other(format!("{name} has no initial value")))?;
            let b = cfg.bytes();
            if v.len() != b.len() {
                return Err(Error::Other(format!("{name} is {} bytes, struct pc_config {}", v.len(), b.len())));
            }
            v.copy_from_slice(&b);
        } else if let Some(first) = share {
            if name == "events" || name == "seq_by_cpu" || name == "dropped" {
                let m0 = first.maps().find(|m| m.name().to_string_lossy() == name).ok_or_else(|| Error::Other(format!("no map {name}")))?;
                m.reuse_fd(m0.as_fd())?;
            }
        }
    }
    Ok(open.load()?)
}

/// Runs `opts.command` with the probes attached and returns the events, in
/// the order the ring buffer holds them. Needs root (or CAP_BPF + CAP_PERFMON).
pub fn trace(opts: &Options) -> Result<Vec<Event>, Error> {
    let Some((program, args)) = opts.command.split_first() else {
        return Err(Error::Other("no program to run".into()));
    };
    // The session kfuncs changed prototype in Linux 7.0: load the build made
    // for this kernel.
    let (variant, why) = bridge::object_variant(bridge::session_kfunc_prototype());
    let object = opts.objects.join(match variant {
        Variant::Ctx => "sessions.ctx.bpf.o",
        Variant::NoArg => "sessions.bpf.o",
    });
    eprintln!("session-tracer: {} ({why})", object.display());

    // Start the program; it waits on stdin until the probes are attached.
    let mut child = Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let result = trace_child(opts, &object, program, &mut child);
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn trace_child(opts: &Options, object: &std::path::Path, program: &str, child: &mut std::process::Child) -> Result<Vec<Event>, Error> {
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line)?;
    if !line.starts_with("ready") {
        return Err(Error::Other(format!("{program}: {line:?} (want a ready line)")));
    }
    let pid = child.id();

    let uprobe_cfg = Config {
        probe_index: 0,
        filter_tgid: 0, // the link itself is for this pid only
        return_filter: 0,
        cookie_mode: PC_CM_CONST_PLUS_ARG0,
        filter_arg: 0,
        cookie_value: opts.session_cookie_base,
    };
    let sessions = load(object, "pc_uprobe_session", &uprobe_cfg, None)?;
    let prog = sessions.progs_mut().find(|p| p.name() == "pc_uprobe_session").expect("loaded");
    let mut links = Vec::new();
    links.push(prog.attach_uprobe_session(pid as i32, program, &[opts.session.as_str()], &[])?);

    // A kprobe sees every process: the recorder counts only the program's.
    let mut kprobe_obj = None;
    if let Some(sym) = &opts.kprobe_session {
        let cfg = Config {
            probe_index: 1,
            filter_tgid: pid,
            return_filter: opts.kprobe_skip.code(),
            cookie_mode: PC_CM_CONST_PLUS_ARG0,
            filter_arg: 0,
            cookie_value: opts.kprobe_cookie_base,
        };
        let obj = load(object, "pc_kprobe_session", &cfg, Some(&sessions))?;
        let prog = obj.progs_mut().find(|p| p.name() == "pc_kprobe_session").expect("loaded");
        links.push(prog.attach_kprobe_session(&[sym.as_str()], &[opts.kprobe_cookie])?.into());
        kprobe_obj = Some(obj);
    }

    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"go\n")?;
    drop(stdin);
    let mut rest = Vec::new();
    out.read_to_end(&mut rest)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(Error::Other(format!("{program}: {status}")));
    }
    drop(links); // detach: nothing more can arrive

    let records = Rc::new(RefCell::new(Vec::new()));
    {
        let events = sessions.maps().find(|m| m.name() == "events").ok_or_else(|| Error::Other("no events map".into()))?;
        let sink = records.clone();
        let mut rb = RingBufferBuilder::new();
        rb.add(&events, move |data: &[u8]| {
            sink.borrow_mut().push(data.to_vec());
            0
        })?;
        rb.build()?.consume()?;
    }
    drop(kprobe_obj);
    let kprobe = opts.kprobe_session.as_deref().unwrap_or_default();
    records.take().iter().map(|r| decode(r, &opts.session, kprobe)).collect()
}

fn decode(r: &[u8], uprobe_func: &str, kprobe_func: &str) -> Result<Event, Error> {
    if r.len() != EVENT_SIZE {
        return Err(Error::Other(format!("record of {} bytes, struct pc_event has {EVENT_SIZE}", r.len())));
    }
    let u64_at = |o: usize| u64::from_le_bytes(r[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
    // struct pc_event: probe_index @20, phase @38, is_return @39, flags @40,
    // attach_cookie @48, arg0 @64, arg1 @72, ret @80, cookie_in @88, cookie_out @96.
    let (kprobe, phase, flags) = (u32_at(20) == 1, r[38], u32_at(40));
    let mut e = Event {
        probe: if kprobe { "kprobe.session" } else { "uprobe.session" }.into(),
        phase: String::new(),
        func: if kprobe { kprobe_func } else { uprobe_func }.into(),
        args: Vec::new(),
        ret: None,
        cookie: u64_at(48),
        is_return: r[39] as i8 == 1,
        session_cookie: u64_at(88),
        wrote: None,
        prog_ret: None,
    };
    if phase == 0 {
        e.phase = "entry".into();
        e.args = vec![u64_at(64) as i64, u64_at(72) as i64];
        e.wrote = (flags & PC_F_COOKIE_WRITTEN != 0).then(|| u64_at(96));
        e.prog_ret = Some(u32::from(flags & PC_F_SKIP_RETURN != 0));
    } else {
        e.phase = "return".into();
        e.ret = Some(u64_at(80) as i64);
    }
    Ok(e)
}
