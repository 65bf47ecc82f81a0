//! Spawning probe-target. Each process starts with `--wait`, prints `ready PID`
//! and blocks on stdin, so the runner can read its maps and attach with its pid
//! before any step runs. Both loaders get exactly the same steps.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How a target process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed by the runner after the timeout.
    TimedOut,
}

impl Exit {
    pub fn is_clean(&self) -> bool {
        *self == Exit::Code(0)
    }

    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exited {c}"),
            Exit::Signal(s) => format!("killed by {}", signal_name(*s)),
            Exit::TimedOut => "timed out".into(),
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGILL => "SIGILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGSYS => "SIGSYS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    name.into()
}

/// A started, waiting probe-target. Killed on drop if still running.
pub struct TargetProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    pub pid: u32,
    /// /proc/PID/maps as read while the process waited.
    pub maps: String,
}

impl TargetProcess {
    pub fn spawn(binary: &Path, steps: &str) -> std::io::Result<TargetProcess> {
        let mut child = Command::new(binary)
            .arg("--wait")
            .arg(steps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if !line.starts_with("ready") {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "probe-target did not start: {}",
                if err.is_empty() { line.trim().to_string() } else { err.trim().to_string() }
            )));
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        let stdin = child.stdin.take();
        Ok(TargetProcess { child, stdin, stdout: Some(stdout), pid, maps })
    }

    /// Lets the steps run and waits for the process to end. Returns how it
    /// ended, its `observe …` lines (from `inspect` steps), and its stderr.
    pub fn run_to_end(&mut self, timeout: Duration) -> std::io::Result<(Exit, Vec<String>, String)> {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"go\n")?;
        }
        let deadline = Instant::now() + timeout;
        let exit = loop {
            if let Some(status) = self.child.try_wait()? {
                use std::os::unix::process::ExitStatusExt;
                break match (status.code(), status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(s)) => Exit::Signal(s),
                    _ => Exit::Code(-1),
                };
            }
            if Instant::now() > deadline || crate::interrupt::requested() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break Exit::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let mut out = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let observations = out.lines().filter_map(|l| l.strip_prefix("observe ")).map(str::to_string).collect();
        Ok((exit, observations, err))
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
