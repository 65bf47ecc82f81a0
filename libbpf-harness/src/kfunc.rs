//! The session-kfunc prototype of the running kernel, from its BTF, to pick a
//! build from a request's `objects` (registry entry
//! `libbpf-session-kfunc-variant`). probeconf's runner asks this same
//! function (`probing::session_kfunc_prototype`); the Go harness's
//! `bridge.SessionKfuncPrototype` makes the same decision, and the runner
//! checks the two agree: FUNC `bpf_session_cookie` with 0 parameters is
//! `noarg`, with 1 `ctx`; absent, no BTF or another count is none. The kernel
//! does not change under a process, so its BTF is read once per process
//! (parsing vmlinux BTF takes ~100 ms under QEMU TCG, and the runner asks for
//! every case).

use crate::protocol::Variant;
use libbpf_rs::btf::types::{Func, FuncProto};
use libbpf_rs::btf::Btf;

/// The prototype and what the BTF said (read once per process).
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

/// The build to load and why: the `ctx` build on a `ctx` kernel, the `noarg`
/// build otherwise (a kernel without session kfuncs included).
pub fn pick(kernel: (Option<Variant>, String)) -> (Variant, String) {
    match kernel {
        (Some(v), why) => (v, why),
        (None, why) => (Variant::NoArg, format!("{why}; no session kfuncs: the noarg build")),
    }
}
