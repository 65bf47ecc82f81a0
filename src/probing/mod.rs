//! Probing the running kernel by trying. Every feature of src/probing/features.rs is
//! decided here by loading a program, attaching it the way the feature needs and
//! triggering it; or, for the session kfunc prototypes, by reading kernel BTF;
//! or, for syscalls, by calling them in a throw-away child. Never by version.
//!
//! The probes trigger a function in this very process ([`probeconf_probe_fn`])
//! so they need no helper binary.


pub mod census;
pub mod features;
pub mod preempt;
pub mod priv_stack;
pub mod prog_stats;

use crate::run::artifacts::KfuncVariant;
use crate::judge::classify::classify_libbpf;
use crate::probing::features::{Feature, FeatureSet, ProbeResult};
use libbpf_harness::bridge::ProgramBridgeExt;
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, UprobeMultiOpts, UprobeOpts};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The function the uprobe probes attach to. `#[no_mangle]` keeps its symbol
/// in the symbol table, where libbpf resolves it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn probeconf_probe_fn(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(3).wrapping_add(1)
}

const PROBE_FN: &str = "probeconf_probe_fn";
const PROBE_NOP5_FN: &str = "probeconf_probe_nop5";

// A function whose first instruction is a 5-byte nop, for the nop5
// optimisation probe; it returns x + 1. Written in asm because no compiler
// promises that first instruction.
std::arch::global_asm!(
    ".text",
    ".globl probeconf_probe_nop5",
    ".type probeconf_probe_nop5, @function",
    ".balign 16",
    "probeconf_probe_nop5:",
    ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
    "lea rax, [rdi + 1]",
    "ret",
    ".size probeconf_probe_nop5, . - probeconf_probe_nop5",
);

// The same with the 10-byte nop assemblers emit, nopw %cs:0x0(%rax,%rax,1):
// older uprobe decoders refuse its segment prefix, later ones accept it.
std::arch::global_asm!(
    ".text",
    ".globl probeconf_probe_nop10",
    ".type probeconf_probe_nop10, @function",
    ".balign 16",
    "probeconf_probe_nop10:",
    ".byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00",
    "lea rax, [rdi + 1]",
    "ret",
    ".size probeconf_probe_nop10, . - probeconf_probe_nop10",
);

extern "C" {
    fn probeconf_probe_nop5(x: u64) -> u64;
    fn probeconf_probe_nop10(x: u64) -> u64;
}

fn call_nop10(x: u64) -> u64 {
    // SAFETY: as call_nop5: the asm function above follows the C ABI.
    unsafe { probeconf_probe_nop10(std::hint::black_box(x)) }
}

fn call_nop5(x: u64) -> u64 {
    // SAFETY: probeconf_probe_nop5 is the asm function above: it reads rdi,
    // writes rax and returns, following the C ABI.
    unsafe { probeconf_probe_nop5(std::hint::black_box(x)) }
}

/// The first five bytes of a function of this process, as it runs now.
fn code_bytes(addr: usize) -> std::io::Result<[u8; 5]> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 5];
    std::fs::File::open("/proc/self/mem")?.read_exact_at(&mut b, addr as u64)?;
    Ok(b)
}

fn trampoline_mapped(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).map(|m| m.contains("[uprobes-trampoline]")).unwrap_or(false)
}
const PROBE_COOKIE: u64 = 0xc0ffee;
const SESSION_COOKIE_WRITTEN: u64 = 0x5e55_1011;

/// `struct fp_state` in .bss of feature_probes.bpf.c, in declaration order.
#[derive(Debug, Default)]
struct Seen {
    hits: u64,
    returns: u64,
    cookie: u64,
    func_ip: u64,
    session_cookie: u64,
    ret: u64,
}

/// One loaded feature-probe program.
struct ProbeObject {
    obj: Object,
    prog: &'static str,
}

impl ProbeObject {
    /// `variant` picks the build of the kfunc-calling probes; the others are
    /// in the kfunc-free object (no kernel BTF parse per load).
    fn load(variant: KfuncVariant, prog: &'static str) -> Result<Self, String> {
        Self::load_prepared(variant, prog, |_| Ok(()))
    }

    /// [`ProbeObject::load`] with `prepare` run on the kept program before
    /// load (a tracing program's target, its type).
    fn load_prepared(
        variant: KfuncVariant,
        prog: &'static str,
        prepare: impl Fn(&mut libbpf_rs::OpenProgramMut<'_>) -> Result<(), String>,
    ) -> Result<Self, String> {
        let bytes = if prog.ends_with("_kfuncs") { variant.feature_probes_session() } else { crate::run::artifacts::FEATURE_PROBES };
        let mut builder = ObjectBuilder::default();
        let mut open = builder.open_memory(bytes).map_err(|e| format!("open: {e:#}"))?;
        for mut p in open.progs_mut() {
            let keep = p.name() == prog;
            p.set_autoload(keep);
            if keep {
                prepare(&mut p)?;
            }
        }
        for mut m in open.maps_mut() {
            if m.name().to_string_lossy().ends_with(".rodata.fp_cfg") {
                let v = m.initial_value_mut().ok_or("fp_cfg has no initial value")?;
                v[..4].copy_from_slice(&std::process::id().to_ne_bytes());
            }
        }
        let obj = open.load().map_err(|e| {
            let c = classify_libbpf(&e);
            format!("load {prog}: {} ({})", c.detail, c.class)
        })?;
        Ok(ProbeObject { obj, prog })
    }

    fn prog(&self) -> libbpf_rs::ProgramMut<'_> {
        self.obj.progs_mut().find(|p| p.name() == self.prog).expect("program kept at load")
    }

    fn seen(&self) -> Seen {
        let m = self.obj.maps().find(|m| m.name().to_string_lossy().ends_with(".bss")).expect("feature probes have .bss");
        let v = m.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok().flatten().unwrap_or_default();
        let at = |i: usize| v.get(i * 8..i * 8 + 8).map(|b| u64::from_ne_bytes(b.try_into().unwrap())).unwrap_or(0);
        Seen { hits: at(0), returns: at(1), cookie: at(2), func_ip: at(3), session_cookie: at(4), ret: at(5) }
    }
}

fn yes(detail: impl Into<String>) -> ProbeResult {
    ProbeResult { supported: true, detail: detail.into() }
}
fn no(detail: impl Into<String>) -> ProbeResult {
    ProbeResult { supported: false, detail: detail.into() }
}

fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().expect("current_exe")
}

fn trigger_self() {
    std::hint::black_box(probeconf_probe_fn(std::hint::black_box(41)));
}

/// The session-kfunc prototype of the running kernel, from its BTF.
pub fn session_kfunc_prototype() -> (Option<KfuncVariant>, String) {
    // The libbpf harness's reading of the kernel BTF (cached per process):
    // one decision for the runner and the in-process loader.
    let (v, how) = libbpf_harness::bridge::session_kfunc_prototype();
    let v = v.map(|v| match v {
        libbpf_harness::protocol::Variant::NoArg => KfuncVariant::NoArg,
        libbpf_harness::protocol::Variant::Ctx => KfuncVariant::Ctx,
    });
    (v, how)
}

/// The object variant to load session programs from on this kernel. Kernels
/// without session kfuncs get the no-argument variant; its non-session programs
/// are identical in both variants.
pub fn kfunc_variant() -> KfuncVariant {
    session_kfunc_prototype().0.unwrap_or(KfuncVariant::NoArg)
}

fn probe_uprobe(retprobe: bool, with_cookie: bool) -> ProbeResult {
    let prog = if retprobe { "fp_uretprobe" } else { "fp_uprobe" };
    let p = match ProbeObject::load(KfuncVariant::NoArg, prog) {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let opts = UprobeOpts {
        func_name: Some(PROBE_FN.into()),
        retprobe,
        cookie: if with_cookie { PROBE_COOKIE } else { 0 },
        ..Default::default()
    };
    let link = match p.prog().attach_uprobe_with_opts(0, self_exe(), 0, opts) {
        Ok(l) => l,
        Err(e) => return no(format!("attach: {:#}", e)),
    };
    trigger_self();
    drop(link);
    let s = p.seen();
    if s.hits == 0 {
        return no("attached, but the probe never fired");
    }
    if with_cookie && s.cookie != PROBE_COOKIE {
        return no(format!("fired, but bpf_get_attach_cookie() gave {:#x}, not {PROBE_COOKIE:#x}", s.cookie));
    }
    yes(format!("{prog} attached to {PROBE_FN} and fired {} time(s)", s.hits))
}

fn probe_func_ip() -> ProbeResult {
    let p = match ProbeObject::load(KfuncVariant::NoArg, "fp_uprobe") {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let opts = UprobeOpts { func_name: Some(PROBE_FN.into()), ..Default::default() };
    let link = match p.prog().attach_uprobe_with_opts(0, self_exe(), 0, opts) {
        Ok(l) => l,
        Err(e) => return no(format!("attach: {e:#}")),
    };
    trigger_self();
    drop(link);
    let want = probeconf_probe_fn as *const () as usize as u64;
    let s = p.seen();
    if s.func_ip == want {
        yes(format!("bpf_get_func_ip() = {want:#x}, the probed function"))
    } else {
        no(format!("bpf_get_func_ip() = {:#x}, the probed function is at {want:#x}", s.func_ip))
    }
}

fn probe_uprobe_multi(session: bool, prog: &'static str, variant: KfuncVariant) -> ProbeResult {
    let p = match ProbeObject::load(variant, prog) {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let opts = UprobeMultiOpts { session, syms: vec![PROBE_FN.into()], cookies: vec![PROBE_COOKIE], ..Default::default() };
    let link = match p.prog().attach_uprobe_multi_with_opts(0, self_exe(), "", opts) {
        Ok(l) => l,
        Err(e) => {
            let c = classify_libbpf(&e);
            return no(format!("attach {prog}: {} ({})", c.detail, c.class));
        }
    };
    trigger_self();
    drop(link);
    let s = p.seen();
    let runs_per_call = if session { 2 } else { 1 };
    if s.hits < runs_per_call {
        return no(format!("attached, but ran {} time(s) for one call (want {runs_per_call})", s.hits));
    }
    yes(format!("{prog} linked and ran {} time(s) for one call", s.hits))
}

/// The session kfuncs work in at least one kind of session: a uprobe session
/// (6.13+) or a kprobe session (6.10+, needs kprobes). Entry writes the
/// cookie, return reads it back.
fn probe_session_kfuncs() -> ProbeResult {
    let (variant, how) = session_kfunc_prototype();
    let Some(variant) = variant else { return no(how) };
    let uprobe = probe_session_kfuncs_uprobe(variant, &how);
    if uprobe.supported {
        return uprobe;
    }
    let kprobe = probe_session_kfuncs_kprobe(variant, &how);
    if kprobe.supported {
        kprobe
    } else {
        no(format!("uprobe session: {}; kprobe session: {}", uprobe.detail, kprobe.detail))
    }
}

fn probe_session_kfuncs_kprobe(variant: KfuncVariant, how: &str) -> ProbeResult {
    let Some(sym) = getppid_kernel_symbol() else { return no("no getppid syscall symbol in /proc/kallsyms") };
    let p = match ProbeObject::load(variant, "fp_kprobe_session_kfuncs") {
        Ok(p) => p,
        Err(e) => return no(format!("{how}; {e}")),
    };
    let link = match p.prog().attach_kprobe_session(&[sym.as_str()], &[0]) {
        Ok(l) => l,
        Err(e) => return no(format!("{how}; attach kprobe session to {sym}: {}", e.detail())),
    };
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
    drop(link);
    let s = p.seen();
    if s.returns >= 1 && s.session_cookie == SESSION_COOKIE_WRITTEN {
        yes(format!("{how}; is_return and the cookie round trip work in a kprobe session"))
    } else {
        no(format!("{how}; kprobe session ran {} time(s), {} return(s), cookie {:#x}", s.hits, s.returns, s.session_cookie))
    }
}

fn probe_session_kfuncs_uprobe(variant: KfuncVariant, how: &str) -> ProbeResult {
    let p = match ProbeObject::load(variant, "fp_uprobe_session_kfuncs") {
        Ok(p) => p,
        Err(e) => return no(format!("{how}; {e}")),
    };
    let opts = UprobeMultiOpts { session: true, ..Default::default() };
    let link = match p.prog().attach_uprobe_multi_with_opts(0, self_exe(), PROBE_FN, opts) {
        Ok(l) => l,
        Err(e) => return no(format!("{how}; attach: {e:#}")),
    };
    trigger_self();
    drop(link);
    let s = p.seen();
    if s.returns == 1 && s.session_cookie == SESSION_COOKIE_WRITTEN {
        yes(format!("{how}; is_return and the cookie round trip work in a uprobe session"))
    } else {
        no(format!("{how}; ran {} time(s), {} return(s), cookie at return {:#x}", s.hits, s.returns, s.session_cookie))
    }
}

/// A syscall wrapper that this process can trigger with getppid().
pub fn getppid_kernel_symbol() -> Option<String> {
    first_in_kallsyms(&["__x64_sys_getppid", "__se_sys_getppid", "sys_getppid"])
}

/// The first of `names` that /proc/kallsyms lists. The file is read once per
/// process: it has ~200k lines and feature probing asks for a syscall wrapper
/// seven times, and under QEMU TCG each read cost about 0.5 s of a column's
/// feature probing. Kernel text does not change during a run.
fn first_in_kallsyms(names: &[&str]) -> Option<String> {
    static LISTED: OnceLock<Option<std::collections::HashSet<String>>> = OnceLock::new();
    let listed = LISTED.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
        Some(text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(str::to_string).collect())
    });
    let listed = listed.as_ref()?;
    names.iter().find(|n| listed.contains(**n)).map(|n| n.to_string())
}

fn probe_kprobe(kind: Feature) -> ProbeResult {
    let prog = match kind {
        Feature::Kprobe => "fp_kprobe",
        Feature::KprobeMulti => "fp_kprobe_multi",
        _ => "fp_kprobe_session_link",
    };
    let Some(sym) = getppid_kernel_symbol() else {
        return no("no getppid syscall symbol in /proc/kallsyms");
    };
    let p = match ProbeObject::load(KfuncVariant::NoArg, prog) {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let link = match kind {
        Feature::Kprobe => p.prog().attach_kprobe(false, &sym).map_err(|e| format!("{:#}", e)),
        Feature::KprobeMulti => p
            .prog()
            .attach_kprobe_multi_with_opts(libbpf_rs::KprobeMultiOpts { symbols: vec![sym.clone()], ..Default::default() })
            .map_err(|e| format!("{:#}", e)),
        _ => p.prog().attach_kprobe_session(&[sym.as_str()], &[0]).map_err(|e| format!("{} ({})", e.detail(), e.class())),
    };
    let link = match link {
        Ok(l) => l,
        Err(e) => {
            // The attempt decides; the PMU and kallsyms only explain a failure.
            let why = if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                " (no kprobe PMU in /sys/bus/event_source/devices: kernel without CONFIG_KPROBES?)"
            } else {
                ""
            };
            return no(format!("attach {prog} to {sym}: {e}{why}"));
        }
    };
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
    drop(link);
    let s = p.seen();
    let want = if kind == Feature::KprobeSession { 2 } else { 1 };
    if s.hits >= want {
        yes(format!("{prog} on {sym} ran {} time(s) for one getppid()", s.hits))
    } else {
        no(format!("{prog} attached to {sym} but ran {} time(s)", s.hits))
    }
}

/// The getpgid syscall's function, which BTF-based tracing probes attach to:
/// getppid's has no BTF FUNC on Debian's kernels or this host (SYSCALL_DEFINE0
/// wrappers are missing from pahole's output), getpgid's has on every one.
pub fn getpgid_kernel_symbol() -> Option<String> {
    first_in_kallsyms(&["__x64_sys_getpgid", "__se_sys_getpgid", "sys_getpgid"])
}

/// The BTF-based tracing features: a program attached the way the feature
/// needs to the getpgid syscall's function, triggered by one getpgid(0).
/// Where a kernel lacks ftrace direct calls (this project's host: no
/// CONFIG_FUNCTION_TRACER) the trampoline cannot be attached: unsupported.
fn probe_tracing(f: Feature) -> ProbeResult {
    use libbpf_harness::bridge::{OpenProgramBridgeExt, ProgramBridgeExt, TracingKind};
    let Some(sym) = getpgid_kernel_symbol() else { return no("no getpgid syscall symbol in /proc/kallsyms") };
    let (variant, how) = session_kfunc_prototype();
    let (prog, kind) = match f {
        Feature::Fentry => ("fp_fentry", TracingKind::Fentry),
        Feature::Fexit => ("fp_fexit", TracingKind::Fexit),
        Feature::Fsession => ("fp_fsession_kfuncs", TracingKind::Fsession),
        _ => ("fp_fentry_multi", TracingKind::FentryMulti),
    };
    if f == Feature::Fsession && variant.is_none() {
        return no(format!("{how} (fsession programs call the session kfuncs)"));
    }
    let loaded = ProbeObject::load_prepared(variant.unwrap_or(KfuncVariant::NoArg), prog, |p| {
        p.type_tracing_section();
        if kind.is_multi() {
            Ok(())
        } else {
            p.set_tracing_target(&sym).map_err(|e| format!("{e} ({})", e.class()))
        }
    });
    // The attempt decides; the kernel's config only explains a failure.
    let why = || match crate::vm::kconfig::running_kernel() {
        Some(Ok(c)) if !c.contains_key("CONFIG_FUNCTION_TRACER") => {
            " (kernel config: CONFIG_FUNCTION_TRACER is not set: no ftrace, so no BPF trampolines)"
        }
        _ => "",
    };
    let p = match loaded {
        Ok(p) => p,
        Err(e) => return no(format!("{e}{}", why())),
    };
    let link = if kind.is_multi() {
        p.prog().attach_tracing_multi(kind, &[sym.as_str()], &[PROBE_COOKIE])
    } else {
        p.prog().attach_trace_with_cookie(PROBE_COOKIE).map(libbpf_harness::bridge::BridgeLink::Libbpf)
    };
    let link = match link {
        Ok(l) => l,
        Err(e) => return no(format!("attach {prog} to {sym}: {e} ({}){}", e.class(), why())),
    };
    // SAFETY: getpgid has no preconditions.
    let pgid = unsafe { libc::getpgid(0) } as u64;
    drop(link);
    let s = p.seen();
    if s.hits == 0 {
        return no(format!("{prog} attached to {sym} but never ran for one getpgid(0)"));
    }
    if s.cookie != PROBE_COOKIE {
        return no(format!("{prog} ran, but bpf_get_attach_cookie() gave {:#x}, not {PROBE_COOKIE:#x}", s.cookie));
    }
    match f {
        Feature::Fexit if s.ret != pgid => no(format!("fexit ran, but bpf_get_func_ret() gave {}, getpgid(0) returned {pgid}", s.ret)),
        Feature::Fexit => yes(format!("{prog} on {sym} ran {} time(s) for one getpgid(0), cookie {PROBE_COOKIE:#x}, return value {pgid}", s.hits)),
        Feature::Fsession if s.returns != 1 || s.session_cookie != SESSION_COOKIE_WRITTEN => no(format!(
            "{how}; fsession ran {} time(s), {} return(s), cookie at return {:#x}",
            s.hits, s.returns, s.session_cookie
        )),
        Feature::Fsession => yes(format!("{how}; {prog} on {sym}: is_return and the session cookie round trip work")),
        _ => yes(format!("{prog} on {sym} ran {} time(s) for one getpgid(0), cookie {PROBE_COOKIE:#x}", s.hits)),
    }
}

/// Calls syscall `nr` in a forked child and reports how the child ended.
fn syscall_in_child(nr: libc::c_long) -> Result<ChildEnd, String> {
    // SAFETY: the child only makes async-signal-safe calls (syscall, _exit)
    // before exiting, as required after fork() in a multi-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: raw syscall without pointer arguments; _exit never returns.
        unsafe {
            let r = libc::syscall(nr, 0, 0, 0);
            let errno = if r < 0 { *libc::__errno_location() } else { 0 };
            libc::_exit(if r < 0 { errno.min(250) } else { 251 });
        }
    }
    let mut status = 0;
    // SAFETY: pid is our child; status is a valid out-pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    if libc::WIFSIGNALED(status) {
        Ok(ChildEnd::Signal(libc::WTERMSIG(status)))
    } else if libc::WEXITSTATUS(status) == 251 {
        Ok(ChildEnd::Returned)
    } else {
        Ok(ChildEnd::Errno(libc::WEXITSTATUS(status)))
    }
}

enum ChildEnd {
    Signal(i32),
    Errno(i32),
    Returned,
}

const NR_URETPROBE: libc::c_long = 335;
const NR_UPROBE: libc::c_long = 336;

fn probe_uretprobe_syscall() -> ProbeResult {
    // Called outside the uretprobe trampoline the kernel kills the caller with
    // SIGILL; a kernel without it answers ENOSYS.
    match syscall_in_child(NR_URETPROBE) {
        Ok(ChildEnd::Signal(libc::SIGILL)) => yes("syscall 335 outside the trampoline: SIGILL (the syscall exists)"),
        Ok(ChildEnd::Errno(libc::ENOSYS)) => no("syscall 335: ENOSYS"),
        Ok(ChildEnd::Signal(s)) => no(format!("syscall 335: child killed by signal {s}")),
        Ok(ChildEnd::Errno(e)) => no(format!("syscall 335: errno {e}")),
        Ok(ChildEnd::Returned) => no("syscall 335 returned success outside the trampoline"),
        Err(e) => no(e),
    }
}

/// Whether the uprobe syscall exists (`enxio` false) or answers ENXIO, the
/// answer libbpf 1.7 looks for (`enxio` true). 6.18 answers ENXIO; later
/// kernels exist but answer otherwise (7.3: EPROTO).
fn probe_uprobe_syscall(enxio: bool) -> ProbeResult {
    let end = syscall_in_child(NR_UPROBE);
    let text = match &end {
        Ok(ChildEnd::Errno(e)) => format!("syscall 336 outside the trampoline: {}", std::io::Error::from_raw_os_error(*e)),
        Ok(ChildEnd::Signal(s)) => format!("syscall 336: child killed by signal {s}"),
        Ok(ChildEnd::Returned) => "syscall 336 returned success outside the trampoline".into(),
        Err(e) => e.clone(),
    };
    match end {
        Ok(ChildEnd::Errno(libc::ENOSYS)) => no(text),
        Ok(ChildEnd::Errno(libc::ENXIO)) => yes(text),
        Ok(_) if !enxio => yes(format!("{text} (the syscall exists)")),
        _ => no(text),
    }
}

fn probe_nop5_optimize() -> ProbeResult {
    let p = match ProbeObject::load(KfuncVariant::NoArg, "fp_uprobe") {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let opts = UprobeOpts { func_name: Some(PROBE_NOP5_FN.into()), ..Default::default() };
    let link = match p.prog().attach_uprobe_with_opts(0, self_exe(), 0, opts) {
        Ok(l) => l,
        Err(e) => return no(format!("attach: {e:#}")),
    };
    let addr = probeconf_probe_nop5 as *const () as usize;
    let before = code_bytes(addr);
    for i in 0..3 {
        call_nop5(i);
    }
    let after = code_bytes(addr);
    let trampoline = trampoline_mapped("self");
    drop(link);
    let hits = p.seen().hits;
    match (before, after) {
        (Ok(b), Ok(a)) if a[0] == 0xe8 && trampoline && hits == 3 => {
            yes(format!("first bytes {b:02x?} → {a:02x?} (call) after the first hit, [uprobes-trampoline] mapped, 3 hits counted"))
        }
        (Ok(b), Ok(a)) => no(format!("first bytes {b:02x?} → {a:02x?}, trampoline mapped: {trampoline}, {hits} of 3 hits")),
        (Err(e), _) | (_, Err(e)) => no(format!("reading /proc/self/mem: {e}")),
    }
}

/// `optimize` false: only whether the kernel accepts the uprobe at all.
fn probe_nop10(optimize: bool) -> ProbeResult {
    let p = match ProbeObject::load(KfuncVariant::NoArg, "fp_uprobe") {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let opts = UprobeOpts { func_name: Some("probeconf_probe_nop10".into()), ..Default::default() };
    let link = match p.prog().attach_uprobe_with_opts(0, self_exe(), 0, opts) {
        Ok(l) => l,
        Err(e) => return no(format!("attach to nopw %cs:..: {e:#}")),
    };
    if !optimize {
        call_nop10(1);
        drop(link);
        let hits = p.seen().hits;
        return if hits == 1 { yes("a uprobe on nopw %cs:.. attached and fired once") } else { no(format!("attached, {hits} hits for one call")) };
    }
    let addr = probeconf_probe_nop10 as *const () as usize;
    let before = code_bytes(addr);
    for i in 0..3 {
        call_nop10(i);
    }
    let after = code_bytes(addr);
    let trampoline = trampoline_mapped("self");
    drop(link);
    let hits = p.seen().hits;
    let nop10 = [0x66, 0x2e, 0x0f, 0x1f, 0x84];
    match (before, after) {
        (Ok(b), Ok(a)) if a != nop10 && a[0] != 0xcc && hits == 3 => {
            yes(format!("first bytes {b:02x?} → {a:02x?} after the first hit, [uprobes-trampoline] mapped: {trampoline}, 3 hits counted"))
        }
        (Ok(b), Ok(a)) => no(format!("first bytes {b:02x?} → {a:02x?}, trampoline mapped: {trampoline}, {hits} of 3 hits")),
        (Err(e), _) | (_, Err(e)) => no(format!("reading /proc/self/mem: {e}")),
    }
}

/// A seccomp allow-list for the child of [`survives_under_seccomp`]: what the
/// child needs (read, write, exit), default KILL_PROCESS; the uprobe (336) and
/// uretprobe (335) syscalls are not on it.
fn strict_filter() -> Vec<libc::sock_filter> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut f = vec![stmt(ld, 4), jeq(AUDIT_ARCH_X86_64, 1, 0), stmt(ret, libc::SECCOMP_RET_KILL_PROCESS), stmt(ld, 0)];
    for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_exit, libc::SYS_exit_group, libc::SYS_rt_sigreturn] {
        f.push(jeq(nr as u32, 0, 1));
        f.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    }
    f.push(stmt(ret, libc::SECCOMP_RET_KILL_PROCESS));
    f
}

/// Forks a child that installs [`strict_filter`] and then runs `work`, after
/// the parent has attached `attach(child_pid)`. Ok(true) if the child exited
/// normally, Ok(false) if seccomp killed it (SIGSYS).
fn survives_under_seccomp(attach: impl FnOnce(i32) -> Result<libbpf_rs::Link, String>, work: fn()) -> Result<bool, String> {
    let filter = strict_filter();
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    let mut go = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(go.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: after fork the child only makes raw syscalls (read, prctl,
    // seccomp, _exit) and calls the probed leaf functions, which allocate
    // nothing: safe in a child of a multi-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; `prog` and its filter outlive these calls.
        unsafe {
            let mut b = 0u8;
            libc::read(go[0], &mut b as *mut u8 as *mut _, 1);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) != 0
            {
                libc::_exit(3);
            }
            work();
            libc::_exit(0);
        }
    }
    let link = attach(pid);
    // SAFETY: writing one byte to our pipe, then closing both ends.
    unsafe {
        libc::write(go[1], b"g".as_ptr() as *const _, 1);
        libc::close(go[0]);
        libc::close(go[1]);
    }
    let mut status = 0;
    // SAFETY: pid is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // An attach failure means the child ran unprobed: its survival says nothing.
    link.map(drop)?;
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS {
        Ok(false)
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(true)
    } else {
        Err(format!("child ended with status {status:#x}"))
    }
}

fn probe_seccomp(uretprobe: bool) -> ProbeResult {
    let prog = if uretprobe { "fp_uretprobe" } else { "fp_uprobe" };
    let p = match ProbeObject::load(KfuncVariant::NoArg, prog) {
        Ok(p) => p,
        Err(e) => return no(e),
    };
    let (func, work): (&str, fn()) = if uretprobe {
        (PROBE_FN, || {
            trigger_self();
            trigger_self();
        })
    } else {
        (PROBE_NOP5_FN, || {
            for i in 0..3 {
                call_nop5(i);
            }
        })
    };
    let attach = |pid: i32| {
        let opts = UprobeOpts { func_name: Some(func.into()), retprobe: uretprobe, ..Default::default() };
        p.prog().attach_uprobe_with_opts(pid, self_exe(), 0, opts).map_err(|e| format!("attach: {e:#}"))
    };
    let what = if uretprobe { "uretprobe hits" } else { "hits of a nop5 uprobe" };
    match survives_under_seccomp(attach, work) {
        Ok(true) => yes(format!("a child under a strict seccomp allow-list survived {what}")),
        Ok(false) => no(format!("a child under a strict seccomp allow-list was killed (SIGSYS) by {what}")),
        Err(e) => no(e),
    }
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// Probes every feature of the vocabulary. Needs root (CAP_BPF + CAP_PERFMON).
pub fn probe_all() -> FeatureSet {
    libbpf_harness::log::install(false);
    let mut results = BTreeMap::new();
    let (proto, how) = session_kfunc_prototype();
    for &f in Feature::ALL {
        let r = match f {
            Feature::Uprobe => probe_uprobe(false, false),
            Feature::Uretprobe => probe_uprobe(true, false),
            Feature::AttachCookie => probe_uprobe(false, true),
            Feature::UprobeFuncIp => probe_func_ip(),
            Feature::UprobeMulti => probe_uprobe_multi(false, "fp_uprobe_multi", KfuncVariant::NoArg),
            Feature::UprobeSession => probe_uprobe_multi(true, "fp_uprobe_session_link", KfuncVariant::NoArg),
            Feature::SessionKfuncs => probe_session_kfuncs(),
            Feature::SessionKfuncNoArg => ProbeResult { supported: proto == Some(KfuncVariant::NoArg), detail: how.clone() },
            Feature::SessionKfuncCtx => ProbeResult { supported: proto == Some(KfuncVariant::Ctx), detail: how.clone() },
            Feature::Kprobe | Feature::KprobeMulti | Feature::KprobeSession => probe_kprobe(f),
            Feature::Fentry | Feature::Fexit | Feature::Fsession | Feature::TracingMulti => probe_tracing(f),
            Feature::UretprobeSyscall => probe_uretprobe_syscall(),
            Feature::UprobeSyscall => probe_uprobe_syscall(false),
            Feature::UprobeSyscallEnxio => probe_uprobe_syscall(true),
            Feature::UprobeNop10Attach => probe_nop10(false),
            Feature::UprobeNop10Optimize => probe_nop10(true),
            Feature::UprobeNop5Optimize => probe_nop5_optimize(),
            Feature::UretprobeSeccompPassthrough => probe_seccomp(true),
            Feature::UprobeSeccompPassthrough => probe_seccomp(false),
            Feature::UprobePrivateStack => probe_uprobe_private_stack(),
            Feature::PreemptDynamic => crate::probing::preempt::probe(),
        };
        results.insert(f, r);
    }
    FeatureSet { kernel: kernel_release(), results }
}

/// Whether a loaded program's JIT image runs it on a private stack: x86-64's
/// `emit_priv_frame_ptr()` (arch/x86/net/bpf_jit_comp.c, 6.13+) loads the
/// per-CPU stack's address into r9 and adds `gs:[this_cpu_off]`, the bytes
/// 65 4c 03 0c 25. `None` when the image cannot be read, or off x86-64.
pub fn jit_private_frame(fd: std::os::fd::BorrowedFd<'_>) -> Option<bool> {
    use libbpf_rs::libbpf_sys::{bpf_prog_get_info_by_fd, bpf_prog_info};
    use std::os::fd::AsRawFd;
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let mut info = bpf_prog_info::default();
    let mut len = size_of::<bpf_prog_info>() as u32;
    // SAFETY: info and len are valid for the call.
    if unsafe { bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) } != 0 || info.jited_prog_len == 0 {
        return None;
    }
    let mut image = vec![0u8; info.jited_prog_len as usize];
    let mut info = bpf_prog_info { jited_prog_len: image.len() as u32, jited_prog_insns: image.as_mut_ptr() as u64, ..Default::default() };
    let mut len = size_of::<bpf_prog_info>() as u32;
    // SAFETY: the kernel writes at most jited_prog_len bytes into `image`.
    if unsafe { bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) } != 0 {
        return None;
    }
    Some(image.windows(5).any(|w| w == [0x65, 0x4c, 0x03, 0x0c, 0x25]))
}

/// `uprobe-private-stack`: loads the deliberate large-frame uprobe recorder
/// (pc_uprobe_large, a 152-byte frame) and reads its JIT image back. Loading
/// is enough: the JIT decides at load time.
fn probe_uprobe_private_stack() -> ProbeResult {
    const PROG: &str = "pc_uprobe_large";
    let mut builder = ObjectBuilder::default();
    let mut open = match builder.open_memory(crate::run::artifacts::RECORDERS) {
        Ok(o) => o,
        Err(e) => return no(format!("open recorders: {e:#}")),
    };
    for mut p in open.progs_mut() {
        let keep = p.name() == PROG;
        p.set_autoload(keep);
    }
    let obj = match open.load() {
        Ok(o) => o,
        Err(e) => return no(format!("load {PROG}: {}", classify_libbpf(&e).detail)),
    };
    let Some(prog) = obj.progs().find(|p| p.name() == PROG) else { return no(format!("{PROG} not in the object")) };
    match jit_private_frame(std::os::fd::AsFd::as_fd(&prog)) {
        Some(true) => ProbeResult {
            supported: true,
            detail: format!("{PROG}'s JIT prologue points r9 at a per-CPU stack (add r9, gs:[this_cpu_off])"),
        },
        Some(false) => ProbeResult { supported: false, detail: format!("{PROG}'s JIT image uses the task's stack (no private frame)") },
        None if cfg!(target_arch = "x86_64") => no(format!("{PROG}'s JIT image could not be read")),
        None => no("detected on x86-64 only (the JIT prologue is read back)"),
    }
}

/// The features of this kernel, probed once per process.
pub fn host_features() -> &'static FeatureSet {
    static CELL: OnceLock<FeatureSet> = OnceLock::new();
    CELL.get_or_init(probe_all)
}
