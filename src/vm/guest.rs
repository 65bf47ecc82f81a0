//! Init mode: probeconf as `/init` (PID 1) of a VM image. It mounts the API
//! filesystems, runs the suite in-process through the library, streams JSON
//! Lines to the results channel (the second serial port) as each case
//! completes, and ends the VM.
//!
//! The results channel, one JSON object per line, in this order:
//!
//! ```text
//! {"type":"hello","kernel":R,"uptime_s":F,"probeconf":V,"setup_errors":[..],"options":{..}}
//! {"type":"features","features":FeatureSet,"kfunc_variant":V,"config":{CONFIG_X:V}|null,"config_error":S?,"uptime_s":F}
//! {"type":"loaders","loaders":[LibraryInfo+label]}          (a loader that cannot start: {"type":"loader-error",...})
//! {"type":"case-error","message":S}                         (a case file that cannot be read, an unknown id)
//! {"type":"case-start","case":ID,"index":N,"uptime_s":F}   (before each case: the host knows which case a crash hit)
//! {"type":"result","result":CaseResult}                     (one per case and loader, after the cross-loader check)
//! {"type":"done","counts":{"runs","pass","fail","flaky","known","unsupported","error","case_errors"},"uptime_s":F}
//! {"type":"fatal","message":S}                              (instead of done: bad options, a panic)
//! ```
//!
//! `hello` mode stops after hello (+ done), `features` mode after features
//! (+ done), `panic` mode panics after hello; options are in src/vm/cmdline.rs. The VM then exits through
//! isa-debug-exit with 0 (done) or 1 (fatal).

use super::cmdline::{CrashPoint, GuestMode, GuestOptions, DEFAULT_RESULTS};
use super::lines::{EchoedOptions, GuestLine, StartedLoader};
use super::{kconfig, sys};
use crate::case::{discover, Case};
use crate::loaders::registry::LoaderSpec;
use crate::loaders::Loader;
use crate::run::{run_all, RunOptions};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub const CASES: &str = "/cases";

/// True when this process is the init of a probeconf VM image: PID 1 started
/// as `/init`. Both, so that probeconf as PID 1 of a container (started by
/// another name) stays an ordinary command line.
pub fn is_guest_init() -> bool {
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    pid1 && std::env::args_os().next().is_some_and(|a| a == "/init")
}

/// The results channel, shared with the panic path.
static CHANNEL: OnceLock<Mutex<File>> = OnceLock::new();

/// Writes one line. Before the channel is open (or if it cannot be), the
/// line goes to the console, where the host sees it in the console tail.
fn emit(l: &GuestLine) {
    let line = format!("{}\n", l.render());
    match CHANNEL.get() {
        Some(m) => {
            // A panic while writing poisons the lock; the file is still usable.
            let mut f = m.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.write_all(line.as_bytes());
        }
        None => eprint!("{line}"),
    }
}

fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(-1.0)
}

/// Mounts and environment. Returns what failed (the optional mounts may
/// fail on kernels without them; the run goes on and the hello line says so).
fn setup_system() -> Vec<String> {
    let mut errors = Vec::new();
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
        // Optional: bpffs for pinning, tracefs/debugfs for legacy kprobe/uprobe events.
        ("bpf", "/sys/fs/bpf", "bpf"),
        ("tracefs", "/sys/kernel/tracing", "tracefs"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
    ] {
        if let Err(e) = sys::mount(source, target, fstype) {
            errors.push(format!("mount {fstype} on {target}: {e}"));
        }
    }
    // /dev/fd and the std streams, as udev would make them: bpftrace's clang
    // writes its output to /dev/fd/N.
    for (link, to) in [("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"), ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2")] {
        if !Path::new(link).exists() {
            if let Err(e) = std::os::unix::fs::symlink(to, link) {
                errors.push(format!("symlink {link} -> {to}: {e}"));
            }
        }
    }
    if let Err(e) = sys::unlimited_memlock() {
        errors.push(format!("RLIMIT_MEMLOCK: {e}"));
    }
    if let Err(e) = sys::many_files() {
        errors.push(format!("RLIMIT_NOFILE: {e}"));
    }
    // Still single-threaded here, so changing the environment is sound.
    for (k, v) in [
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        ("HOME", "/root"),
        ("TMPDIR", "/tmp"),
        ("PROBECONF_CACHE", "/tmp/probeconf-cache"),
        // A panic's backtrace lands in the console tail the host keeps.
        ("RUST_BACKTRACE", "1"),
    ] {
        std::env::set_var(k, v);
    }
    errors
}

/// Opens the results device: raw, so the host gets the bytes as written.
fn open_channel(path: &str) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        // Never become init's controlling terminal.
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("results channel {path}: {e}"))?;
    sys::make_raw(&f);
    let _ = CHANNEL.set(Mutex::new(f));
    Ok(())
}

/// Flushes the channel to the wire, syncs, and leaves the VM.
fn finish(code: u8) -> ! {
    if let Some(m) = CHANNEL.get() {
        let mut f = m.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.flush();
        sys::drain(&f);
    }
    sys::sync();
    sys::exit_vm(code)
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// The guest's whole life. Never returns: the VM ends.
pub fn guest_main() -> ! {
    let setup_errors = setup_system();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let opts = GuestOptions::parse(&cmdline);
    let results = opts.as_ref().map(|o| o.results.clone()).unwrap_or_else(|_| DEFAULT_RESULTS.into());
    if let Err(e) = open_channel(&results) {
        eprintln!("probeconf guest: {e}; writing results to the console");
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // Hello first, whatever follows: the host then knows the guest ran.
        hello(opts.as_ref().ok(), setup_errors);
        run(opts.as_ref().map_err(|e| e.clone())?)
    }));
    let message = match outcome {
        Ok(Ok(())) => finish(0),
        Ok(Err(msg)) => msg,
        Err(p) => format!("panic in the guest: {}", panic_text(p.as_ref())),
    };
    eprintln!("probeconf guest: fatal: {message}");
    // A panic may have cut a line short: start a fresh one.
    if let Some(m) = CHANNEL.get() {
        let _ = m.lock().unwrap_or_else(|e| e.into_inner()).write_all(b"\n");
    }
    emit(&GuestLine::Fatal { message });
    finish(1)
}

/// Crashes the kernel on purpose (`probeconf.crash=`): sysrq-c, which
/// panics it the way a real crash would. Never returns.
fn crash_here(what: &str) -> ! {
    eprintln!("probeconf guest: crashing the kernel on purpose ({what})");
    sys::sync();
    let _ = std::fs::write("/proc/sysrq-trigger", "c");
    // Not reached on a kernel with CONFIG_MAGIC_SYSRQ; make the failure loud.
    panic!("probeconf.crash: writing /proc/sysrq-trigger did not crash the kernel");
}

fn hello(o: Option<&GuestOptions>, setup_errors: Vec<String>) {
    emit(&GuestLine::Hello {
        kernel: crate::probing::kernel_release(),
        uptime_s: uptime_s(),
        probeconf: env!("CARGO_PKG_VERSION").into(),
        setup_errors,
        options: o.map(|o| EchoedOptions {
            mode: o.mode.as_str().into(),
            cases: o.cases.clone(),
            loaders: image_loaders().iter().map(|l| format!("{l:?}")).collect(),
            target_timeout_s: o.target_timeout_s,
            boot: o.boot,
            attempts: o.attempts,
        }),
    });
}

fn run(o: &GuestOptions) -> Result<(), String> {
    if o.mode == GuestMode::Panic {
        panic!("probeconf.mode=panic: a deliberate panic");
    }
    if o.mode == GuestMode::Hang {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let mut counts: BTreeMap<String, u64> = ["runs", "case_errors"]
        .into_iter()
        .chain(crate::judge::check::Verdict::ALL.iter().map(|v| v.as_str()))
        .map(|k| (k.to_string(), 0))
        .collect();
    let done = |counts: &BTreeMap<String, u64>| emit(&GuestLine::Done { counts: counts.clone(), uptime_s: uptime_s() });
    if o.mode == GuestMode::Hello {
        done(&counts);
        return Ok(());
    }

    if o.mode == GuestMode::StressKeys {
        let stress = super::stress::guest_run(o.stress_secs)?;
        emit(&GuestLine::Stress { stress });
        done(&counts);
        return Ok(());
    }

    if o.crashes_at(CrashPoint::Hello) {
        crash_here("after hello");
    }
    let features = crate::probing::host_features();
    if o.crashes_at(CrashPoint::Features) {
        crash_here("while probing features");
    }
    // The running kernel's own config (CONFIG_IKCONFIG_PROC), which the host
    // shows when the archive has no config package for the release.
    let (config, config_error) = match kconfig::running_kernel() {
        None => (None, None),
        Some(Ok(m)) => (Some(m), None),
        Some(Err(e)) => (None, Some(format!("/proc/config.gz: {e}"))),
    };
    emit(&GuestLine::Features {
        features: features.clone(),
        kfunc_variant: crate::probing::kfunc_variant(),
        config,
        config_error,
        uptime_s: uptime_s(),
    });
    if o.mode == GuestMode::Features {
        done(&counts);
        return Ok(());
    }
    if o.mode == GuestMode::BenchAttach {
        let loaders = start_loaders(&image_loaders());
        let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
        for timing in crate::bench::kernel_attach_scaling(&refs, &[1, 10, 100, 1000], 1) {
            emit(&GuestLine::AttachTiming { timing });
        }
        done(&counts);
        return Ok(());
    }

    if o.mode == GuestMode::BenchTracing {
        let loaders = start_loaders(&image_loaders());
        let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
        crate::bench::run_scenarios(crate::bench::kernel_scenarios(), &refs, &crate::bench::BenchOptions::full(), |m| {
            emit(&GuestLine::Hit { measurement: m.clone() })
        });
        for timing in crate::bench::tracing_attach_scaling(&refs, &[1, 10, 100], 1) {
            emit(&GuestLine::AttachTiming { timing });
        }
        done(&counts);
        return Ok(());
    }

    let loaders = start_loaders(&image_loaders());
    let loader_refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let (cases, errors) = select_cases(Path::new(CASES), &o.cases);
    for e in errors {
        *counts.get_mut("case_errors").unwrap() += 1;
        emit(&GuestLine::CaseError { message: e });
    }
    let opts = RunOptions { target_timeout: Duration::from_secs(o.target_timeout_s), attempts: o.attempts, self_exe: None };
    for (index, case) in cases.iter().enumerate().skip(o.skip) {
        // One case at a time, so that each result is sent after the
        // cross-loader check, and the host has everything up to a crash.
        emit(&GuestLine::CaseStart { case: case.id.clone(), index, uptime_s: uptime_s() });
        if o.crashes_at(CrashPoint::Case(index)) {
            crash_here(&format!("as case {index} starts"));
        }
        for r in run_all(std::slice::from_ref(case), &loader_refs, features, &opts, |_| {}) {
            eprintln!("probeconf: {} [{}] {}", r.case, r.loader, r.verdict);
            *counts.get_mut("runs").unwrap() += 1;
            // Keys are Verdict::as_str values.
            *counts.get_mut(r.verdict.as_str()).unwrap() += 1;
            emit(&GuestLine::Result { result: Box::new(r) });
        }
        if o.crashes_at(CrashPoint::After(index)) {
            crash_here(&format!("after case {index}"));
        }
    }
    done(&counts);
    Ok(())
}

/// The loaders the image names (/loaders.json, written by the host from the
/// loaders it opened); one that cannot start is reported and left out.
fn image_loaders() -> Vec<LoaderSpec> {
    match std::fs::read(super::image::LOADERS_FILE) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            emit(&GuestLine::LoaderError { loader: "(all)".into(), message: format!("{}: {e}", super::image::LOADERS_FILE) });
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

fn start_loaders(specs: &[LoaderSpec]) -> Vec<Box<dyn Loader>> {
    let mut out: Vec<Box<dyn Loader>> = Vec::new();
    for spec in specs {
        match spec.open() {
            Ok(l) => out.push(l),
            Err(message) => emit(&GuestLine::LoaderError { loader: format!("{spec:?}"), message }),
        }
    }
    let loaders = out.iter().map(|l| StartedLoader { library: l.library(), label: l.label() }).collect();
    emit(&GuestLine::Loaders { loaders });
    out
}

/// The cases to run: every case under `root`, or the selected items (a path
/// relative to `root`, or a case id), in the order given, each once.
/// Returns the cases and the messages of what could not be read or found.
pub fn select_cases(root: &Path, items: &[String]) -> (Vec<Case>, Vec<String>) {
    let mut errors = Vec::new();
    let load = |files: Vec<PathBuf>, errors: &mut Vec<String>| -> Vec<Case> {
        let (cases, errs) = crate::case::load_set(&files);
        errors.extend(errs.iter().map(|e| e.to_string()));
        cases
    };
    let discover_or_note = |paths: &[PathBuf], errors: &mut Vec<String>| match discover(paths) {
        Ok(f) => f,
        Err(e) => {
            errors.push(format!("{}: {e}", root.display()));
            Vec::new()
        }
    };
    if items.is_empty() {
        let files = discover_or_note(&[root.to_path_buf()], &mut errors);
        let cases = load(files, &mut errors);
        return (cases, errors);
    }
    // Ids need every case file read; read them once, and only if asked.
    let mut all: Option<Vec<Case>> = None;
    let mut out: Vec<Case> = Vec::new();
    for item in items {
        let p = root.join(item);
        let found = if !item.contains("..") && p.exists() {
            let files = discover_or_note(&[p], &mut errors);
            load(files, &mut errors)
        } else {
            let all = all.get_or_insert_with(|| {
                let files = discover_or_note(&[root.to_path_buf()], &mut errors);
                load(files, &mut errors)
            });
            let m: Vec<Case> = all.iter().filter(|c| &c.id == item).cloned().collect();
            if m.is_empty() {
                errors.push(format!("no case with id or path `{item}` under {}", root.display()));
            }
            m
        };
        for c in found {
            if !out.iter().any(|o| o.path == c.path) {
                out.push(c);
            }
        }
    }
    errors.dedup();
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_selected_by_path_or_id_once_each() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
        let items: Vec<String> = ["uprobe/uprobe-entry-leaf.yaml", "uprobe-session-skip-odd", "uprobe-entry-leaf", "no-such-case"]
            .into_iter()
            .map(String::from)
            .collect();
        let (cases, errors) = select_cases(&root, &items);
        let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["uprobe-entry-leaf", "uprobe-session-skip-odd"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("no-such-case"));
        let (all, errors) = select_cases(&root, &[]);
        assert!(all.len() > 20 && errors.is_empty(), "{} {errors:?}", all.len());
        let (dir, _) = select_cases(&root, &["uretprobe".to_string()]);
        assert!(dir.iter().all(|c| c.path.starts_with(root.join("uretprobe"))) && !dir.is_empty());
    }

    #[test]
    fn a_bad_case_file_is_an_error_and_the_others_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/uprobe/uprobe-entry-leaf.yaml")).unwrap();
        std::fs::write(dir.path().join("good.yaml"), good).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "id: bad\nprobes: nope\n").unwrap();
        let (cases, errors) = select_cases(dir.path(), &[]);
        assert_eq!(cases.len(), 1);
        assert!(errors.len() == 1 && errors[0].contains("bad.yaml"), "{errors:?}");
    }

    #[test]
    fn a_plain_process_is_not_the_guest_init() {
        assert!(!is_guest_init());
    }
}
