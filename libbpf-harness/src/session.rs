//! One `run` session of the protocol (go-harness/PROTOCOL.md): hello,
//! request, load + attach ([`crate::loader::attach`]), wait for `drain`,
//! drain, release, done. Every link and object is owned by the session and
//! released on every exit path (Drop) before the final line is written.
//!
//! stdin is read with poll(2) together with a self-pipe that SIGINT/SIGTERM
//! write to, so a signal while waiting for a line ends the session at once;
//! a signal during load or attach takes effect when the current bpf syscall
//! returns (the handlers are SA_RESTART, and the loader asks after every step).

use crate::classify::{Classified, ErrorClass};
use crate::protocol::{self, Attached as AttachedLine, Events, Failure, Hello, Phase};
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNAL_PIPE_W: AtomicI32 = AtomicI32::new(-1);
static SIGNAL_PIPE_R: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    let fd = SIGNAL_PIPE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = [1u8];
        // SAFETY: write(2) is async-signal-safe; fd is our pipe's write end
        // (non-blocking, so a full pipe never blocks the handler).
        unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    }
}

/// Installs the SIGINT/SIGTERM handlers (once per process).
pub fn install_signal_handlers() -> std::io::Result<()> {
    if SIGNAL_PIPE_R.load(Ordering::SeqCst) >= 0 {
        return Ok(());
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    SIGNAL_PIPE_R.store(fds[0], Ordering::SeqCst);
    SIGNAL_PIPE_W.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only touches atomics
        // and calls write(2); sa_mask empty; SA_RESTART so libbpf's syscalls
        // are restarted rather than failing with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "interrupt",
        libc::SIGTERM => "terminated",
        _ => "signal",
    }
}

/// `Some("received interrupt")` once SIGINT/SIGTERM arrived.
pub fn interrupted() -> Option<String> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(format!("received {}", signal_name(s))),
    }
}

/// Lines from a file descriptor, interruptible by the signal pipe.
pub struct LineReader {
    fd: RawFd,
    buf: Vec<u8>,
    eof: bool,
}

enum Next {
    Line(String),
    Eof,
    Signal(String),
    Error(std::io::Error),
}

impl LineReader {
    pub fn new(fd: RawFd) -> Self {
        LineReader { fd, buf: Vec::new(), eof: false }
    }

    fn next(&mut self) -> Next {
        loop {
            if let Some(why) = interrupted() {
                return Next::Signal(why);
            }
            while let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                let text = String::from_utf8_lossy(&line).into_owned();
                if !text.trim().is_empty() {
                    return Next::Line(text);
                }
            }
            if self.eof {
                let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                return if rest.trim().is_empty() { Next::Eof } else { Next::Line(rest) };
            }
            let sig = SIGNAL_PIPE_R.load(Ordering::SeqCst);
            let mut fds = [libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: sig, events: libc::POLLIN, revents: 0 }];
            let n = if sig >= 0 { 2 } else { 1 };
            // SAFETY: fds is an array of `n` valid pollfd entries.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), n, -1) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Next::Error(e);
            }
            if fds[0].revents == 0 {
                continue;
            }
            let mut chunk = [0u8; 65536];
            // SAFETY: read(2) into a buffer of chunk.len() bytes.
            let got = unsafe { libc::read(self.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            match got {
                0 => self.eof = true,
                n if n > 0 => self.buf.extend_from_slice(&chunk[..n as usize]),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Next::Error(e);
                    }
                }
            }
        }
    }

    /// The next non-blank line, or the protocol failure that replaces it.
    fn line(&mut self, what: &str) -> Result<String, Failure> {
        let other = |detail: String| Failure::new(Phase::Protocol, None, Classified { class: ErrorClass::Other, errno: None, detail });
        match self.next() {
            Next::Line(l) => Ok(l),
            Next::Eof => Err(other(format!("waiting for the {what}: stdin closed"))),
            Next::Signal(why) => Err(other(format!("waiting for the {what}: {why}"))),
            Next::Error(e) => Err(Failure::new(
                Phase::Protocol,
                None,
                Classified { class: ErrorClass::Other, errno: e.raw_os_error(), detail: format!("read the {what}: {e}") },
            )),
        }
    }
}

fn send(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<(), Failure> {
    let mut line = serde_json::to_vec(v).expect("protocol lines serialise");
    line.push(b'\n');
    out.write_all(&line).and_then(|_| out.flush()).map_err(|e| {
        eprintln!("write to runner: {e}");
        Failure::new(Phase::Protocol, None, Classified { class: ErrorClass::Other, errno: e.raw_os_error(), detail: format!("write to runner: {e}") })
    })
}

/// The hello line of this build.
pub fn hello() -> Hello {
    Hello { kind: "hello".into(), protocol: protocol::PROTOCOL, library: protocol::LIBRARY.into(), version: crate::version::libbpf_version() }
}

/// Runs one session on `input` (a readable fd) and `out`; returns the exit
/// status: 0 after `done`, 1 after an error line.
pub fn run(input: RawFd, out: &mut dyn Write) -> i32 {
    match run_inner(input, out) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.error.detail);
            let _ = send(out, &f.line());
            1
        }
    }
}

fn run_inner(input: RawFd, out: &mut dyn Write) -> Result<(), Failure> {
    send(out, &hello())?;
    let mut lines = LineReader::new(input);
    let line = lines.line("request")?;
    let req = protocol::decode_request(&line)?;
    let check = || interrupted();
    let opts = crate::loader::Options { session_kfuncs: None, interrupted: Some(&check) };
    // On every error below, `attached` is dropped (links, then objects)
    // before the error line is written by `run`.
    let attached = crate::loader::attach(&req, &opts)?;
    if !attached.choice.object_variant.is_empty() {
        eprintln!(
            "objects: picked the {} build ({}) [{}]",
            attached.choice.object_variant,
            attached.choice.object_reason,
            crate::compat::SESSION_KFUNC_VARIANT
        );
    }
    let choice = attached.choice.clone();
    let with_choice = |mut f: Failure| {
        f.choice = choice.clone();
        f
    };
    send(out, &AttachedLine { kind: "attached".into(), probes: attached.probes.clone(), choice: choice.clone() }).map_err(with_choice)?;
    // The runner runs its workload now; the harness only waits.
    let line = lines.line("drain command").map_err(with_choice)?;
    protocol::decode_command(&line).map_err(with_choice)?;
    let drained = attached.drain().map_err(with_choice)?;
    send(out, &Events { kind: "events".into(), events: drained.records.into_iter().map(protocol::Base64).collect(), dropped: drained.dropped })
        .map_err(with_choice)?;
    send(out, &serde_json::json!({"type": "done"}))
}
