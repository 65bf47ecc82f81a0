//! Booting one kernel + initramfs under QEMU and collecting what the guest
//! reported.
//!
//! The console (ttyS0) goes to `console.log`, the guest's results channel
//! (ttyS1, src/vm/guest.rs) to `results.jsonl`, QEMU's own messages to
//! `qemu.log`, all in one work directory. The guest ends the VM through
//! isa-debug-exit; a kernel panic reboots (`panic=-1`), which `-no-reboot`
//! turns into QEMU exiting; a hang is killed at the timeout.

use super::lines::GuestLine;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How many console lines a [`BootOutcome`] keeps.
pub const CONSOLE_TAIL_LINES: usize = 60;
/// What the kernel prints when it panics.
const PANIC_MARK: &str = "Kernel panic - not syncing";
/// What the kernel prints when it oopses. With `oops=panic` on the command
/// line every oops also panics; an oops that did not (a kernel without that
/// parameter) still makes the boot a crash: a tainted kernel's later results
/// cannot be trusted.
const OOPS_MARK: &str = "Oops: ";
/// The KVM probe of [`Accel::Auto`] gives up after this long.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How TCG runs the vCPUs.
///
/// `Single` is the default. Multi-threaded TCG (one host thread per vCPU, the
/// default of QEMU for x86 guests) mishandles the kernel's cross-modifying code:
/// while one vCPU patches a static-key site with `text_poke_bp` (int3 first,
/// sync IPIs, then the other bytes), another vCPU can still execute a stale
/// translation holding the temporary int3 after the patch is complete, and the
/// kernel reports `Oops: int3` (measured: README "TCG and kernel crashes";
/// `probeconf tcg-stress` reproduces it in seconds). Round-robin single-threaded
/// TCG runs one vCPU at a time, so every vCPU sees the patch before it runs
/// again. It costs nothing here: a column is I/O- and syscall-bound, and the
/// matrix runs one VM per host core anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcgThreads {
    #[default]
    Single,
    Multi,
}

impl TcgThreads {
    pub fn as_str(self) -> &'static str {
        match self {
            TcgThreads::Single => "single",
            TcgThreads::Multi => "multi",
        }
    }
}

impl std::str::FromStr for TcgThreads {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(TcgThreads::Single),
            "multi" => Ok(TcgThreads::Multi),
            _ => Err(format!("TCG threading `{s}`: expected single or multi")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
    /// KVM if one short KVM boot of the same image completes (probed once per
    /// process), TCG otherwise. Nested KVM is known to fail on the CI machine.
    Auto,
}

#[derive(Clone, Debug)]
pub struct BootOptions {
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    /// Appended to the kernel command line (e.g. `GuestOptions::to_kernel_args`).
    pub kernel_cmdline_extra: String,
    pub timeout: Duration,
    /// Kill the VM when the guest's results channel has not grown for this
    /// long once the guest has started writing to it (a hung kernel or
    /// case), instead of waiting for `timeout`. Booting up to the guest's
    /// first line is bounded by `timeout` alone.
    pub stall_timeout: Option<Duration>,
    /// QEMU's `-m`, e.g. `1G`.
    pub memory: String,
    pub smp: u32,
    pub accel: Accel,
    /// TCG's vCPU threading (ignored under KVM).
    pub tcg_threads: TcgThreads,
    /// Where console.log, results.jsonl and qemu.log are written and kept;
    /// `None` = a temporary directory, removed after the boot.
    pub work_dir: Option<PathBuf>,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// Boot the vmlinux inside `vmlinuz` through PVH when it has the entry
    /// note (src/vm/vmlinux.rs): ~3 s less per boot under TCG. Falls back to
    /// the bzImage when it cannot.
    pub pvh: bool,
    /// TCG only: `-icount shift=N`, the guest's clocks advance 2^N ns per
    /// guest instruction executed. Timings in the guest then count
    /// instructions, the same in every run and on every host CPU; under plain
    /// TCG they are an emulator's wall time, which jumps by 10× between
    /// samples (measured: a getpgid(0) from 59 to 895 ns).
    pub icount_shift: Option<u32>,
}

impl BootOptions {
    pub fn new(vmlinuz: impl Into<PathBuf>, initramfs: impl Into<PathBuf>) -> Self {
        BootOptions {
            vmlinuz: vmlinuz.into(),
            initramfs: initramfs.into(),
            kernel_cmdline_extra: String::new(),
            timeout: Duration::from_secs(600),
            stall_timeout: None,
            memory: "1G".into(),
            smp: 2,
            accel: Accel::Tcg,
            tcg_threads: TcgThreads::default(),
            work_dir: None,
            qemu: "qemu-system-x86_64".into(),
            pvh: true,
            icount_shift: None,
        }
    }

    /// The whole kernel command line.
    pub fn kernel_cmdline(&self) -> String {
        // 8250.nr_uarts=4: some configs register fewer ports than QEMU has,
        // and ttyS1 is the results channel. oops=panic: an oops ends the VM
        // at once, so the host sees the crash and the case that caused it,
        // instead of results from a tainted kernel.
        let base = "console=ttyS0 panic=-1 oops=panic 8250.nr_uarts=4";
        if self.kernel_cmdline_extra.trim().is_empty() {
            base.to_string()
        } else {
            format!("{base} {}", self.kernel_cmdline_extra.trim())
        }
    }

    /// QEMU's arguments: `kernel` is `vmlinuz` or its PVH vmlinux, the
    /// output files go to `dir`.
    pub fn qemu_args(&self, accel: Accel, kernel: &Path, dir: &Path) -> Vec<String> {
        let (accel_arg, cpu) = match accel {
            Accel::Kvm => ("kvm".to_string(), "host"),
            Accel::Tcg | Accel::Auto => (format!("tcg,thread={}", self.tcg_threads.as_str()), "max"),
        };
        let file = |name: &str| format!("file:{}", dir.join(name).display());
        let icount: Vec<String> = match (accel, self.icount_shift) {
            (Accel::Tcg | Accel::Auto, Some(shift)) => vec!["-icount".into(), format!("shift={shift}")],
            _ => Vec::new(),
        };
        icount.into_iter().chain([
            "-accel",
            &accel_arg,
            "-cpu",
            cpu,
            "-m",
            &self.memory,
            "-smp",
            &self.smp.to_string(),
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            // No network: nothing uses it, and no iPXE ROM to run.
            "-nic",
            "none",
            "-kernel",
            &kernel.to_string_lossy(),
            "-initrd",
            &self.initramfs.to_string_lossy(),
            "-append",
            &self.kernel_cmdline(),
            // First -serial is ttyS0 (console), second ttyS1 (results).
            "-serial",
            &file("console.log"),
            "-serial",
            &file("results.jsonl"),
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        .into_iter()
        .map(String::from))
        .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootStatus {
    /// The guest wrote its `done` line and ended the VM with this code.
    Completed { exit_code: i32 },
    /// The kernel crashed: the console shows a panic (init dying included) or
    /// an oops. The text is the kernel's own first crash line
    /// (`Oops: int3: 0000 [#1] SMP NOPTI`, `Kernel panic - not syncing: …`).
    Crashed(String),
    /// Still running at the timeout; killed.
    TimedOut,
    /// QEMU could not run the VM (bad kernel image, bad option…): its message.
    QemuFailed(String),
    /// The guest started but ended without a `done` line: why (its `fatal`
    /// message when it sent one).
    Incomplete(String),
}

#[derive(Clone, Debug)]
pub struct BootOutcome {
    pub status: BootStatus,
    /// The results channel, one line each (a line that cannot be read is
    /// [`GuestLine::Garbled`]).
    pub lines: Vec<GuestLine>,
    /// The last [`CONSOLE_TAIL_LINES`] lines of the console.
    pub console_tail: String,
    /// Host time from starting QEMU to its end.
    pub wall: Duration,
    /// Host time from starting QEMU to the guest's first results byte
    /// (≈ boot to userspace), measured by polling every 20 ms.
    pub to_userspace: Option<Duration>,
    /// The accelerator used (Auto resolved).
    pub accel: Accel,
    /// What QEMU booted: the PVH vmlinux, or the vmlinuz.
    pub kernel: PathBuf,
    /// Why the vmlinuz was booted although PVH was asked for.
    pub pvh_fallback: Option<String>,
}

impl BootOutcome {
    pub fn hello(&self) -> Option<&GuestLine> {
        self.lines.iter().find(|l| matches!(l, GuestLine::Hello { .. }))
    }

    /// The kernel release the guest's hello named.
    pub fn hello_kernel(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            GuestLine::Hello { kernel, .. } => Some(kernel.as_str()),
            _ => None,
        })
    }

    pub fn done(&self) -> Option<&GuestLine> {
        self.lines.iter().find(|l| matches!(l, GuestLine::Done { .. }))
    }

    /// Every case result the guest sent.
    pub fn results(&self) -> Vec<&crate::run::CaseResult> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                GuestLine::Result { result } => Some(result.as_ref()),
                _ => None,
            })
            .collect()
    }

    pub fn is_completed(&self) -> bool {
        matches!(self.status, BootStatus::Completed { .. })
    }
}

/// How the QEMU process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// The last `n` lines, without carriage returns and terminal escapes
/// (SeaBIOS clears the screen; the kernel does not).
fn tail(text: &str, n: usize) -> String {
    let text = strip_escapes(text);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes `ESC [ ... final-byte` and two-byte `ESC x` sequences.
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte in @..~.
            for p in chars.by_ref() {
                if ('@'..='~').contains(&p) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

fn parse_lines(bytes: &[u8]) -> Vec<GuestLine> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '\r' || c.is_whitespace() || c == '\0'))
        .filter(|l| !l.is_empty())
        .map(GuestLine::parse)
        .collect()
}

/// The kernel's first crash line (an oops, or else the panic), without the
/// timestamp; `None` when the console shows neither.
pub fn crash_line(console: &str) -> Option<String> {
    let text = strip_escapes(console);
    let find = |mark: &str| {
        text.lines().find_map(|l| l.find(mark).map(|at| l[at..].trim_end_matches('\r').trim().to_string()))
    };
    find(OOPS_MARK).or_else(|| find(PANIC_MARK))
}

/// The status from how QEMU ended and what the guest said. Pure, for tests.
fn classify(ended: Ended, console: &str, lines: &[GuestLine], qemu_log: &str) -> BootStatus {
    // First: a panic (or an oops) explains a timeout or an odd exit better than either.
    if let Some(line) = crash_line(console) {
        return BootStatus::Crashed(line);
    }
    // Any line at all: QEMU itself never writes to the results port.
    let guest_ran = !lines.is_empty();
    let done = lines.iter().any(|l| matches!(l, GuestLine::Done { .. }));
    let fatal = lines.iter().find_map(|l| match l {
        GuestLine::Fatal { message } => Some(message.clone()),
        _ => None,
    });
    let qemu_msg = || {
        let t = tail(qemu_log.trim(), 10);
        if t.is_empty() {
            "no message from qemu".to_string()
        } else {
            t
        }
    };
    match ended {
        Ended::TimedOut => BootStatus::TimedOut,
        Ended::Signal(s) => BootStatus::QemuFailed(format!("qemu killed by signal {s}: {}", qemu_msg())),
        // isa-debug-exit: QEMU exits with (code << 1) | 1. Status 1 is also
        // QEMU's own failure, told apart by the guest having written a line.
        Ended::Code(c) if c & 1 == 1 && guest_ran => {
            let code = c >> 1;
            match (done, fatal) {
                (true, _) => BootStatus::Completed { exit_code: code },
                (false, Some(f)) => BootStatus::Incomplete(format!("guest fatal (exit code {code}): {f}")),
                (false, None) => BootStatus::Incomplete(format!("guest exited with code {code} without a done line")),
            }
        }
        // 0: the guest powered off (no isa-debug-exit), or the machine reset.
        Ended::Code(0) if guest_ran => match (done, fatal) {
            (true, _) => BootStatus::Completed { exit_code: 0 },
            (false, Some(f)) => BootStatus::Incomplete(format!("guest fatal: {f}")),
            (false, None) => BootStatus::Incomplete("the VM powered off or reset without a done line".into()),
        },
        Ended::Code(0) => BootStatus::Incomplete("the VM reset or powered off before the guest said hello".into()),
        Ended::Code(c) => BootStatus::QemuFailed(format!("qemu exited with status {c}: {}", qemu_msg())),
    }
}

/// Whether KVM can run this image: one short boot in `hello` mode.
fn kvm_works(opts: &BootOptions) -> bool {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return false;
    }
    let probe = BootOptions {
        accel: Accel::Kvm,
        timeout: KVM_PROBE_TIMEOUT.min(opts.timeout),
        kernel_cmdline_extra: format!("{} probeconf.mode=hello", opts.kernel_cmdline_extra),
        work_dir: None,
        ..opts.clone()
    };
    boot(&probe).is_completed()
}

/// Resolves [`Accel::Auto`], probing KVM at most once per process.
pub fn resolve_accel(opts: &BootOptions) -> Accel {
    static DECIDED: OnceLock<Accel> = OnceLock::new();
    match opts.accel {
        Accel::Auto => *DECIDED.get_or_init(|| if kvm_works(opts) { Accel::Kvm } else { Accel::Tcg }),
        a => a,
    }
}

/// Boots once and collects the results. Never panics on VM trouble: every
/// failure is a status.
/// Boots, and boots again (up to `max_boots` in all) while the kernel
/// panics before the guest says hello: kernels occasionally crash while
/// booting under TCG, with nothing of ours running yet (seen on 6.18 and 7.3).
/// Returns the last outcome and those of the boots that crashed, for the log.
pub fn boot_retrying(opts: &BootOptions, max_boots: usize) -> (BootOutcome, Vec<BootOutcome>) {
    let mut crashed = Vec::new();
    loop {
        let out = boot(opts);
        let boot_crash = matches!(out.status, BootStatus::Crashed(_)) && out.hello().is_none();
        if !boot_crash || crashed.len() + 1 >= max_boots.max(1) {
            return (out, crashed);
        }
        crashed.push(out);
    }
}

pub fn boot(opts: &BootOptions) -> BootOutcome {
    let accel = resolve_accel(opts);
    let start = Instant::now();
    let failed = |msg: String| BootOutcome {
        status: BootStatus::QemuFailed(msg),
        lines: Vec::new(),
        console_tail: String::new(),
        wall: start.elapsed(),
        to_userspace: None,
        accel,
        kernel: opts.vmlinuz.clone(),
        pvh_fallback: None,
    };
    let _tmp;
    let dir = match &opts.work_dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                return failed(format!("{}: {e}", d.display()));
            }
            d.clone()
        }
        None => match tempfile::Builder::new().prefix("probeconf-vm-").tempdir() {
            Ok(t) => {
                let p = t.path().to_path_buf();
                _tmp = t;
                p
            }
            Err(e) => return failed(format!("temp dir: {e}")),
        },
    };
    for name in ["console.log", "results.jsonl", "qemu.log"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for (what, p) in [("kernel", &opts.vmlinuz), ("initramfs", &opts.initramfs)] {
        if !p.is_file() {
            return failed(format!("{what} {} is not a file", p.display()));
        }
    }
    let (kernel, pvh_fallback) = match opts.pvh {
        false => (opts.vmlinuz.clone(), None),
        true => match super::vmlinux::pvh_kernel(&opts.vmlinuz) {
            Ok(k) => (k, None),
            Err(why) => (opts.vmlinuz.clone(), Some(why)),
        },
    };
    let log = match std::fs::File::create(dir.join("qemu.log")) {
        Ok(f) => f,
        Err(e) => return failed(format!("qemu.log: {e}")),
    };
    let log2 = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return failed(format!("qemu.log: {e}")),
    };
    let mut child =
        match Command::new(&opts.qemu).args(opts.qemu_args(accel, &kernel, &dir)).stdin(Stdio::null()).stdout(log).stderr(log2).spawn() {
            Ok(c) => c,
            Err(e) => return failed(format!("starting {}: {e}", opts.qemu.display())),
        };

    let results_path = dir.join("results.jsonl");
    let mut to_userspace = None;
    // The results channel's size and when it last changed (stall detection).
    let (mut seen_len, mut last_growth) = (0u64, Instant::now());
    let ended = loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                use std::os::unix::process::ExitStatusExt;
                break match (st.code(), st.signal()) {
                    (Some(c), _) => Ended::Code(c),
                    (None, Some(s)) => Ended::Signal(s),
                    _ => Ended::Code(-1),
                };
            }
            Ok(None) => {}
            Err(_) => break Ended::Code(-1),
        }
        let len = std::fs::metadata(&results_path).map(|m| m.len()).unwrap_or(0);
        if len != seen_len {
            (seen_len, last_growth) = (len, Instant::now());
        }
        if to_userspace.is_none() && len > 0 {
            to_userspace = Some(start.elapsed());
        }
        let stalled = seen_len > 0 && opts.stall_timeout.is_some_and(|t| last_growth.elapsed() > t);
        if start.elapsed() > opts.timeout || stalled {
            let _ = child.kill();
            let _ = child.wait();
            break Ended::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let console = String::from_utf8_lossy(&std::fs::read(dir.join("console.log")).unwrap_or_default()).into_owned();
    let lines = parse_lines(&std::fs::read(&results_path).unwrap_or_default());
    if to_userspace.is_none() && !lines.is_empty() {
        // The guest got there within the last poll interval.
        to_userspace = Some(wall);
    }
    let qemu_log = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
    let status = classify(ended, &console, &lines, &qemu_log);
    let mut console_tail = tail(&console, CONSOLE_TAIL_LINES);
    if matches!(status, BootStatus::QemuFailed(_)) && console_tail.is_empty() {
        console_tail = tail(&qemu_log, CONSOLE_TAIL_LINES);
    }
    BootOutcome { status, lines, console_tail, wall, to_userspace, accel, kernel, pvh_fallback }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn hello() -> GuestLine {
        GuestLine::Hello { kernel: "6.1.0".into(), uptime_s: 1.0, probeconf: "0".into(), setup_errors: vec![], options: None }
    }

    #[test]
    fn exit_codes_and_lines_make_the_status() {
        let done = GuestLine::Done { counts: Default::default(), uptime_s: 2.0 };
        let fatal = GuestLine::Fatal { message: "boom".into() };
        assert_eq!(classify(Ended::Code(1), "", &[hello(), done.clone()], ""), BootStatus::Completed { exit_code: 0 });
        assert_eq!(classify(Ended::Code(3), "", &[hello(), done.clone()], ""), BootStatus::Completed { exit_code: 1 });
        assert_eq!(classify(Ended::Code(0), "", &[hello(), done.clone()], ""), BootStatus::Completed { exit_code: 0 });
        assert!(matches!(classify(Ended::Code(3), "", &[hello(), fatal], ""), BootStatus::Incomplete(m) if m.contains("boom")));
        assert!(matches!(classify(Ended::Code(1), "", &[hello()], ""), BootStatus::Incomplete(m) if m.contains("done")));
        // QEMU's own failure: status 1, and the guest never said hello.
        assert!(
            matches!(classify(Ended::Code(1), "", &[], "qemu: could not load kernel"), BootStatus::QemuFailed(m) if m.contains("could not load"))
        );
        assert_eq!(classify(Ended::TimedOut, "booting", &[], ""), BootStatus::TimedOut);
        let panic = "[ 1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000006\n";
        let crashed = BootStatus::Crashed("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000006".into());
        assert_eq!(classify(Ended::Code(0), panic, &[hello()], ""), crashed);
        assert_eq!(classify(Ended::TimedOut, panic, &[], ""), crashed);
        // An oops is the crash, and its line is the reason even when a panic follows.
        let oops = "[   10.1] Oops: int3: 0000 [#1] SMP NOPTI\r\n[   10.2] RIP: 0010:__schedule+0x3d5/0x1590\n[  10.3] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(classify(Ended::Code(0), oops, &[hello()], ""), BootStatus::Crashed("Oops: int3: 0000 [#1] SMP NOPTI".into()));
    }

    #[test]
    fn results_lines_survive_crlf_and_garbage() {
        let lines = parse_lines(b"{\"type\":\"fatal\",\"message\":\"m\"}\r\n\r\nnot json\n{\"type\":\"done\",\"counts\":{},\"uptime_s\":1.0}");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], GuestLine::Garbled("not json".into()));
        assert!(matches!(lines[2], GuestLine::Done { .. }));
        assert_eq!(tail("a\r\nb\r\nc\r\n", 2), "b\nc");
        assert_eq!(tail("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\n", 5), "SeaBIOS");
    }

    #[test]
    fn the_command_line_has_both_serial_ports_and_debug_exit() {
        let mut o = BootOptions::new("/k", "/i");
        o.kernel_cmdline_extra = "probeconf.mode=hello".into();
        let args = o.qemu_args(Accel::Tcg, Path::new("/k"), Path::new("/w"));
        let s = args.join(" ");
        assert!(s.starts_with("-accel tcg,thread=single -cpu max -m 1G -smp 2"), "{s}");
        o.tcg_threads = TcgThreads::Multi;
        assert!(o.qemu_args(Accel::Tcg, Path::new("/k"), Path::new("/w")).join(" ").starts_with("-accel tcg,thread=multi "));
        assert!(o.qemu_args(Accel::Kvm, Path::new("/k"), Path::new("/w")).join(" ").starts_with("-accel kvm -cpu host "));
        assert!(s.contains("-serial file:/w/console.log -serial file:/w/results.jsonl"), "{s}");
        assert!(s.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(append, "console=ttyS0 panic=-1 oops=panic 8250.nr_uarts=4 probeconf.mode=hello");
    }
}
