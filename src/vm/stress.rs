//! `probeconf tcg-stress`: does this QEMU run the kernel's cross-modifying
//! code correctly? A targeted reproducer of the `Oops: int3` crashes that
//! multi-threaded TCG gave the matrix (README "TCG and kernel crashes").
//!
//! Guest side ([`guest_run`], `probeconf.mode=stress-keys`): one thread flips
//! a static key as fast as it can, and each flip makes the kernel patch the
//! key's sites with `text_poke_bp` (an int3 first, sync IPIs, the tail bytes,
//! the first byte). Meanwhile two threads bounce a byte through a pair of
//! pipes, so both vCPUs pass through `__schedule` all the time — exactly the
//! code whose sites are patched:
//!
//! * `schedstats`: `/proc/sys/kernel/sched_schedstats` toggles the
//!   `sched_schedstats` key (statistics sites in fair.c: enqueue, dequeue,
//!   `set_next_task_fair`);
//! * `sched-features`: `/sys/kernel/debug/sched/features` toggles the
//!   scheduler's feature keys (fair.c's pick and wakeup paths);
//! * `perf-sched`: opening a task-bound perf event enables the
//!   `perf_sched_events` key, and its delayed disable (one second after the
//!   last such event closes) disables it again. Its sites are the perf hooks
//!   of the context switch, inlined into `__schedule`. Every pid-filtered
//!   perf-event uprobe or kprobe a case attaches flips this key: the crashes
//!   of the matrix were there.
//!
//! A correct machine survives any number of flips. With `oops=panic` on the
//! command line (src/vm/qemu.rs) an oops ends the VM, and the host reads the
//! oops line from the console.
//!
//! Host side ([`run`]): boots each kernel N times per TCG threading mode, one
//! VM per core, and counts the boots that crashed.

use super::cmdline::GuestOptions;
use super::qemu::{BootOptions, BootOutcome, BootStatus, TcgThreads};
use serde::Serialize;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SCHEDSTATS: &str = "/proc/sys/kernel/sched_schedstats";
const SCHED_FEATURES: &str = "/sys/kernel/debug/sched/features";
/// include/uapi/linux/perf_event.h
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// What one guest run did (the `stress` line of the results channel).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct GuestStress {
    /// Flips per key (a key that could not be flipped is absent, see `errors`).
    pub toggles: std::collections::BTreeMap<String, u64>,
    pub context_switches: u64,
    pub secs: f64,
    /// Keys that could not be flipped, and why.
    pub errors: Vec<String>,
}

/// Flips `schedstats` and the scheduler feature keys until `secs` have
/// passed, in one thread; opens and closes a task-bound perf event in
/// another (`perf_sched_events`); two more threads context-switch through a
/// pipe pair all along.
pub fn guest_run(secs: u64) -> Result<GuestStress, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = AtomicBool::new(false);
    let switches = AtomicU64::new(0);
    let start = Instant::now();
    let (mut a_rx, mut a_tx) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (mut b_rx, mut b_tx) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut toggles = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    std::thread::scope(|s| {
        // Ping: writes to a, waits on b. Pong: waits on a, writes to b. Every
        // read blocks, so every round trip is two context switches.
        s.spawn(|| {
            let mut byte = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                if a_tx.write_all(&[1]).is_err() || b_rx.read_exact(&mut byte).is_err() {
                    break;
                }
                switches.fetch_add(2, Ordering::Relaxed);
            }
            drop(a_tx);
        });
        s.spawn(|| {
            let mut byte = [0u8; 1];
            while a_rx.read_exact(&mut byte).is_ok() {
                if b_tx.write_all(&byte).is_err() {
                    break;
                }
            }
            drop(b_tx);
        });
        let perf = s.spawn(|| flip_perf_sched(deadline));
        let (n, errs) = flip_sysfs_keys(deadline);
        toggles.extend(n);
        errors.extend(errs);
        match perf.join() {
            Ok(Ok(n)) => {
                toggles.insert("perf_sched_events".to_string(), n);
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("perf_sched_events: the flipping thread panicked".into()),
        }
        stop.store(true, Ordering::Relaxed);
    });
    if toggles.values().all(|n| *n == 0) {
        return Err(format!("no static key could be flipped: {}", errors.join("; ")));
    }
    Ok(GuestStress { toggles, context_switches: switches.load(Ordering::Relaxed), secs: start.elapsed().as_secs_f64(), errors })
}

/// The scheduler's boolean features as listed (`NO_X` = off, `X` = on).
fn sched_features() -> Result<Vec<(String, bool)>, String> {
    let text = std::fs::read_to_string(SCHED_FEATURES).map_err(|e| format!("{SCHED_FEATURES}: {e}"))?;
    Ok(text.split_whitespace().map(|w| match w.strip_prefix("NO_") {
        Some(name) => (name.to_string(), false),
        None => (w.to_string(), true),
    }).collect())
}

/// Flips `sched_schedstats` and each scheduler feature key in turn until
/// the deadline, and leaves them as they were.
fn flip_sysfs_keys(deadline: Instant) -> (Vec<(String, u64)>, Vec<String>) {
    let mut errors = Vec::new();
    let mut schedstats = std::fs::OpenOptions::new().write(true).open(SCHEDSTATS).map_err(|e| errors.push(format!("{SCHEDSTATS}: {e}"))).ok();
    let features = sched_features().map_err(|e| errors.push(e)).unwrap_or_default();
    let mut feature_file = if features.is_empty() { None } else { std::fs::OpenOptions::new().write(true).open(SCHED_FEATURES).map_err(|e| errors.push(format!("{SCHED_FEATURES}: {e}"))).ok() };
    let (mut n_stats, mut n_feat) = (0u64, 0u64);
    let mut i = 0usize;
    while Instant::now() < deadline && (schedstats.is_some() || feature_file.is_some()) {
        if let Some(f) = schedstats.as_mut() {
            if f.write_all(if n_stats % 2 == 0 { b"1" } else { b"0" }).is_ok() {
                n_stats += 1;
            } else {
                errors.push(format!("writing {SCHEDSTATS} failed"));
                schedstats = None;
            }
        }
        if let (Some(f), false) = (feature_file.as_mut(), features.is_empty()) {
            let (name, on) = &features[i % features.len()];
            // Flip, then restore: two patches of that feature's sites.
            let flip = if *on { format!("NO_{name}") } else { name.clone() };
            let back = if *on { name.clone() } else { format!("NO_{name}") };
            // A feature that refuses the write is skipped; the others count.
            if f.write_all(flip.as_bytes()).is_ok() && f.write_all(back.as_bytes()).is_ok() {
                n_feat += 2;
            }
            i += 1;
        }
    }
    if let Some(mut f) = schedstats {
        let _ = f.write_all(b"0");
    }
    (vec![("sched_schedstats".into(), n_stats), ("sched_features".into(), n_feat)], errors)
}

/// Opens a task-bound software perf event (enables `perf_sched_events` when
/// no other holds it), closes it, and waits for the kernel's delayed disable
/// (`perf_sched_delayed`, one second): two patches of the context-switch
/// hooks per round.
fn flip_perf_sched(deadline: Instant) -> Result<u64, String> {
    let mut n = 0u64;
    while Instant::now() + Duration::from_millis(1200) < deadline {
        let fd = perf_event_open_dummy().map_err(|e| format!("perf_event_open(software dummy, this task): {e}"))?;
        // SAFETY: fd was just returned by perf_event_open and is closed once.
        unsafe { libc::close(fd) };
        n += 2;
        std::thread::sleep(Duration::from_millis(1200));
    }
    Ok(n)
}

/// `perf_event_open` of PERF_TYPE_SOFTWARE / PERF_COUNT_SW_DUMMY on the
/// calling task (pid 0, any CPU): an event with PERF_ATTACH_TASK.
fn perf_event_open_dummy() -> std::io::Result<i32> {
    // struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): type @0, size @4, config @8.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&9u64.to_ne_bytes()); // PERF_COUNT_SW_DUMMY
    // SAFETY: attr is a valid, fully initialised perf_event_attr of the size
    // it declares; the kernel only reads it during the call.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}

/// One boot of the host side.
#[derive(Clone, Debug, Serialize)]
pub struct StressBoot {
    pub kernel: String,
    pub threads: TcgThreads,
    pub smp: u32,
    /// `ok`, `crash`, or what else went wrong (a timeout, QEMU failing).
    pub outcome: String,
    /// The kernel's crash line, for a crash.
    pub crash: Option<String>,
    /// What the guest managed before the end (a crash cuts it off).
    pub guest: Option<GuestStress>,
    pub wall_secs: f64,
    /// Seconds into the boot at which the guest started flipping.
    pub to_userspace_secs: Option<f64>,
}

pub struct StressOptions {
    /// (request, vmlinuz) per kernel.
    pub kernels: Vec<(String, std::path::PathBuf)>,
    pub threads: Vec<TcgThreads>,
    pub boots: usize,
    /// Seconds of flipping per boot.
    pub secs: u64,
    pub smp: u32,
    pub parallel: usize,
    pub timeout: Duration,
    pub work_dir: std::path::PathBuf,
    /// The QEMU binary (another version than the system's, say).
    pub qemu: std::path::PathBuf,
}

fn describe(o: &BootOutcome) -> (String, Option<String>) {
    match &o.status {
        BootStatus::Completed { .. } => ("ok".into(), None),
        BootStatus::Crashed(line) => ("crash".into(), Some(line.clone())),
        BootStatus::TimedOut => ("timeout".into(), None),
        BootStatus::QemuFailed(e) => (format!("qemu failed: {e}"), None),
        BootStatus::Incomplete(e) => (format!("incomplete: {e}"), None),
    }
}

/// Boots every kernel `boots` times per threading mode, interleaved so that
/// both modes see the same machine load, and reports each boot.
pub fn run(opts: &StressOptions, mut progress: impl FnMut(&StressBoot)) -> Result<Vec<StressBoot>, String> {
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| format!("{}: {e}", opts.work_dir.display()))?;
    let initramfs = opts.work_dir.join("initramfs.cpio");
    super::image::write(&super::ImageSpec { init: None, loaders: vec![], cases: vec![] }, &initramfs)?;
    let guest = GuestOptions { mode: super::GuestMode::StressKeys, stress_secs: opts.secs, ..GuestOptions::default() };
    let mut jobs = Vec::new();
    let mut labels = Vec::new();
    for round in 0..opts.boots {
        for (request, vmlinuz) in &opts.kernels {
            for t in &opts.threads {
                let mut b = BootOptions::new(vmlinuz, &initramfs);
                b.kernel_cmdline_extra = guest.to_kernel_args();
                b.tcg_threads = *t;
                b.qemu = opts.qemu.clone();
                b.smp = opts.smp;
                b.timeout = opts.timeout;
                b.work_dir = Some(opts.work_dir.join(format!("{request}-{}-{round}", t.as_str())));
                jobs.push(b);
                labels.push((request.clone(), *t));
            }
        }
    }
    let mut out: Vec<Option<StressBoot>> = vec![None; jobs.len()];
    super::boot_many(jobs, opts.parallel, |i, o| {
        let (outcome, crash) = describe(o);
        let guest = o.lines.iter().find_map(|l| match l {
            super::lines::GuestLine::Stress { stress } => Some(stress.clone()),
            _ => None,
        });
        let b = StressBoot {
            kernel: labels[i].0.clone(),
            threads: labels[i].1,
            smp: opts.smp,
            outcome,
            crash,
            guest,
            wall_secs: o.wall.as_secs_f64(),
            to_userspace_secs: o.to_userspace.map(|d| d.as_secs_f64()),
        };
        progress(&b);
        out[i] = Some(b);
    });
    Ok(out.into_iter().flatten().collect())
}

/// Boots and crashes per kernel and threading mode.
pub fn table(boots: &[StressBoot]) -> String {
    use std::fmt::Write as _;
    let mut keys: Vec<(String, TcgThreads)> = Vec::new();
    for b in boots {
        if !keys.contains(&(b.kernel.clone(), b.threads)) {
            keys.push((b.kernel.clone(), b.threads));
        }
    }
    let mut s = String::new();
    writeln!(s, "{:<8} {:<7} {:>5} {:>7} {:>6} {:>10} {:>9}  crash lines", "kernel", "tcg", "boots", "crashed", "other", "flips", "wall (s)").unwrap();
    for (k, t) in keys {
        let of: Vec<&StressBoot> = boots.iter().filter(|b| b.kernel == k && b.threads == t).collect();
        let crashed: Vec<&StressBoot> = of.iter().copied().filter(|b| b.outcome == "crash").collect();
        let other = of.iter().filter(|b| b.outcome != "crash" && b.outcome != "ok").count();
        let toggles: u64 = of.iter().filter_map(|b| b.guest.as_ref().map(|g| g.toggles.values().sum::<u64>())).sum();
        let mut walls: Vec<f64> = of.iter().map(|b| b.wall_secs).collect();
        walls.sort_by(|a, b| a.total_cmp(b));
        let median = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
        let mut lines: Vec<String> = crashed.iter().filter_map(|b| b.crash.clone()).collect();
        lines.sort();
        lines.dedup();
        writeln!(s, "{k:<8} {:<7} {:>5} {:>7} {:>6} {:>10} {:>9.1}  {}", t.as_str(), of.len(), crashed.len(), other, toggles, median, lines.join(" | ")).unwrap();
    }
    s
}
