//! The kprobe bridges: libbpf's `bpf_program__attach_kprobe_multi_opts` with
//! `.session` (no libbpf-rs has a session flag in `KprobeMultiOpts`), and
//! `bpf_program__attach_kprobe_opts` with `retprobe`, `offset` and
//! `bpf_cookie` together (libbpf-rs's `KprobeOpts` has a cookie but no
//! retprobe flag, `attach_kprobe` a retprobe flag but no cookie).

use super::{link_from_raw, BridgeError, Op};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, Link, ProgramMut};
use std::ffi::CString;

/// Options of [`ProgramBridgeExt::attach_kprobe_multi_with_session_opts`](super::ProgramBridgeExt::attach_kprobe_multi_with_session_opts):
/// libbpf-rs's `KprobeMultiOpts` plus the `session` flag of libbpf's
/// `struct bpf_kprobe_multi_opts` (libbpf 1.5+).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KprobeMultiSessionOpts {
    /// Kernel function names, one link for all (at least one).
    pub symbols: Vec<String>,
    /// One BPF cookie per symbol (`bpf_get_attach_cookie()`), or empty for none.
    pub cookies: Vec<u64>,
    /// Return probes (`kretprobe.multi`). libbpf refuses it together with
    /// `session` (EINVAL, before any syscall).
    pub retprobe: bool,
    /// A session link (attach type `BPF_TRACE_KPROBE_SESSION`, 56; Linux 6.10+):
    /// the program runs at entry and, unless the entry returned 1, at return.
    pub session: bool,
}

/// Options of [`ProgramBridgeExt::attach_kprobe_full_opts`](super::ProgramBridgeExt::attach_kprobe_full_opts):
/// every field of libbpf's `struct bpf_kprobe_opts` that libbpf-rs does not
/// let one combine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KprobeFullOpts {
    /// Offset into the function (libbpf refuses an offset on a kretprobe: EINVAL).
    pub offset: u64,
    /// The BPF cookie (`bpf_get_attach_cookie()`; kernel 5.15+).
    pub cookie: u64,
    /// A kretprobe instead of a kprobe.
    pub retprobe: bool,
}

/// `bpf_program__attach_kprobe_multi_opts` with every field, `.session` included.
pub(super) fn attach_kprobe_multi(prog: &ProgramMut<'_>, opts: &KprobeMultiSessionOpts) -> Result<Link, BridgeError> {
    let KprobeMultiSessionOpts { symbols, cookies, retprobe, session } = opts;
    let (retprobe, session) = (*retprobe, *session);
    if symbols.is_empty() || (!cookies.is_empty() && cookies.len() != symbols.len()) {
        return Err(BridgeError::invalid(format!("{} symbols with {} cookies", symbols.len(), cookies.len())));
    }
    let csyms: Vec<CString> = symbols
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| BridgeError::invalid(format!("symbol {s:?} contains NUL"))))
        .collect::<Result<_, _>>()?;
    let mut sym_ptrs: Vec<*const libc::c_char> = csyms.iter().map(|s| s.as_ptr()).collect();
    let opts = libbpf_sys::bpf_kprobe_multi_opts {
        sz: size_of::<libbpf_sys::bpf_kprobe_multi_opts>() as _,
        syms: sym_ptrs.as_mut_ptr(),
        cookies: if cookies.is_empty() { std::ptr::null() } else { cookies.as_ptr() },
        cnt: symbols.len() as _,
        retprobe,
        session,
        ..Default::default()
    };
    // SAFETY: the program pointer comes from a live libbpf-rs Program; `opts`
    // and everything it points to (sym_ptrs → csyms, cookies) outlive the call,
    // and libbpf copies what it keeps.
    let raw = unsafe { libbpf_sys::bpf_program__attach_kprobe_multi_opts(prog.as_libbpf_object().as_ptr(), std::ptr::null(), &opts) };
    link_from_raw(raw, || format!("bpf_program__attach_kprobe_multi_opts(session={session}, retprobe={retprobe})"))
        .map_err(|e| e.with_hint(if session { Op::KprobeSession } else { Op::KprobeMulti }))
}

/// `bpf_program__attach_kprobe_opts` with retprobe, offset and cookie together.
pub(super) fn attach_kprobe(prog: &ProgramMut<'_>, sym: &str, opts: &KprobeFullOpts) -> Result<Link, BridgeError> {
    let csym = CString::new(sym).map_err(|_| BridgeError::invalid(format!("symbol {sym:?} contains NUL")))?;
    let opts = libbpf_sys::bpf_kprobe_opts {
        sz: size_of::<libbpf_sys::bpf_kprobe_opts>() as _,
        bpf_cookie: opts.cookie,
        offset: opts.offset as _,
        retprobe: opts.retprobe,
        ..Default::default()
    };
    // SAFETY: live program pointer; csym and opts outlive the call.
    let raw = unsafe { libbpf_sys::bpf_program__attach_kprobe_opts(prog.as_libbpf_object().as_ptr(), csym.as_ptr(), &opts) };
    link_from_raw(raw, || format!("attach kprobe {sym}")).map_err(|e| e.with_hint(Op::Kprobe))
}
