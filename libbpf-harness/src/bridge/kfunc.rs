//! The session-kfunc prototype of the running kernel, from its BTF, and the
//! object build to load for it.
//!
//! `bpf_session_is_return()` and `bpf_session_cookie()` take no argument on
//! Linux 6.10–6.19 and `void *ctx` from 7.0. libbpf treats a `__weak` kfunc
//! declared with the other prototype as missing, so one object cannot use
//! both: a tool builds its BPF C twice and loads the build the kernel's BTF
//! asks for. FUNC `bpf_session_cookie` with 0 parameters is [`Variant::NoArg`],
//! with 1 [`Variant::Ctx`]; absent, no BTF or another count is none.
//!
//! probeconf's runner asks this same function (`probing::session_kfunc_prototype`),
//! the harness uses it for a request's `objects` (registry entry
//! `libbpf-session-kfunc-variant`), and the Go bridge's
//! `SessionKfuncPrototype` makes the same decision. The kernel does not change
//! under a process, so its BTF is read once per process (parsing vmlinux BTF
//! takes ~100 ms under QEMU TCG, and the runner asks for every case).

use libbpf_rs::btf::types::{Func, FuncProto};
use libbpf_rs::btf::Btf;

/// The session-kfunc prototype an object was built for, or a kernel has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `bpf_session_cookie(void)`: kernels 6.10–6.19 (probeconf's `sessions.bpf.o`).
    NoArg,
    /// `bpf_session_cookie(void *ctx)`: kernels from 7.0 (probeconf's `sessions.ctx.bpf.o`).
    Ctx,
}

impl Variant {
    /// `noarg` or `ctx`, as probeconf's protocol and results name the builds.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::NoArg => "noarg",
            Variant::Ctx => "ctx",
        }
    }
}

/// The running kernel's session-kfunc prototype and what its BTF said; `None`
/// when the kernel has no session kfuncs (or no BTF). Read once per process.
///
/// Minimum kernel: the kfuncs exist from 6.10 (kprobe sessions) and serve
/// uprobe sessions from 6.13; the prototype changed in 7.0. Needs kernel BTF
/// (`/sys/kernel/btf/vmlinux`), not root. Any libbpf-rs this crate builds with.
///
/// ```no_run
/// use libbpf_harness::bridge::{session_kfunc_prototype, object_variant, Variant};
///
/// let (variant, why) = object_variant(session_kfunc_prototype());
/// let object = match variant {
///     Variant::Ctx => "sessions.ctx.bpf.o",
///     Variant::NoArg => "sessions.bpf.o",
/// };
/// eprintln!("loading {object} ({why})");
/// ```
pub fn session_kfunc_prototype() -> (Option<Variant>, String) {
    static ONCE: std::sync::OnceLock<(Option<Variant>, String)> = std::sync::OnceLock::new();
    ONCE.get_or_init(read_prototype).clone()
}

fn read_prototype() -> (Option<Variant>, String) {
    let btf = match Btf::from_vmlinux() {
        Ok(b) => b,
        Err(e) => return (None, format!("no kernel BTF: {e:#}")),
    };
    let Some(func) = btf.type_by_name::<Func>("bpf_session_cookie") else {
        return (None, "kernel BTF has no bpf_session_cookie kfunc".into());
    };
    let Some(Ok(proto)) = func.next_type().map(FuncProto::try_from) else {
        return (None, "bpf_session_cookie has no FUNC_PROTO".into());
    };
    match proto.len() {
        0 => (Some(Variant::NoArg), "kernel BTF: bpf_session_cookie(void)".into()),
        1 => (Some(Variant::Ctx), "kernel BTF: bpf_session_cookie(void *ctx)".into()),
        n => (None, format!("kernel BTF: bpf_session_cookie has {n} parameters, unknown prototype")),
    }
}

/// The build to load for `kernel` (what [`session_kfunc_prototype`] returned)
/// and why: the `ctx` build on a `ctx` kernel, the `noarg` build otherwise (a
/// kernel without session kfuncs included: its programs without sessions
/// still load, the session ones fail as they would with either build).
///
/// ```
/// use libbpf_harness::bridge::{object_variant, Variant};
///
/// assert_eq!(object_variant((Some(Variant::Ctx), "7.0".into())).0, Variant::Ctx);
/// assert_eq!(object_variant((None, "no BTF".into())).0, Variant::NoArg);
/// ```
pub fn object_variant(kernel: (Option<Variant>, String)) -> (Variant, String) {
    match kernel {
        (Some(v), why) => (v, why),
        (None, why) => (Variant::NoArg, format!("{why}; no session kfuncs: the noarg build")),
    }
}
