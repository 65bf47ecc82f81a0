//! The one place where the libbpf-rs versions differ for this harness. The
//! rest of the crate is written against what 0.25.x, 0.26.x and 0.27.2 have in
//! common; a version build picks the module with a Cargo feature
//! (`api-0-25`, `api-0-26`, `api-0-27`, checked against the linked
//! libbpf-rs by build.rs).
//!
//! What differs, from the crates' sources (only what this harness touches):
//!
//! | API | 0.25.0 | 0.26.0–0.26.2 | 0.27.2 |
//! |---|---|---|---|
//! | `UprobeMultiOpts`, `ProgramMut::attach_uprobe_multi[_with_opts]` | **absent** | present, with `session` | same |
//! | `KprobeMultiOpts.session` | absent | absent | absent (all: `libbpf-rs-kprobe-session`) |
//! | `KprobeOpts.retprobe` | absent | absent | absent (all: `libbpf-rs-kretprobe-cookie`) |
//! | `ProgramAttachType::TraceUprobeSession` | absent | absent | absent |
//! | `Program::name()` / `section()` | `&OsStr` tied to `&self` | `&'obj OsStr` | same |
//! | `ErrorKind` | no `TooBig` | no `TooBig` | `TooBig` (matched with `_` here) |
//! | `Program::get_id_by_fd` | present | removed (`ProgramHandle` in 0.27) | — (ids come from `bpf_prog_get_info_by_fd` here) |
//!
//! Everything else this crate calls (`ObjectBuilder::open_memory`,
//! `OpenProgramMut::set_autoload`, `OpenMapMut::initial_value_mut`/`reuse_fd`,
//! `attach_uprobe_with_opts`, `attach_usdt_with_opts`, `attach_kprobe_with_opts`,
//! `attach_kprobe_multi_with_opts`, `Link::from_ptr`, `AsRawLibbpf`,
//! `RingBufferBuilder`, `MapCore::lookup[_percpu]`, `btf::Btf::from_vmlinux`,
//! `set_print`) has the same signature in all three. libbpf-rs 0.26.2 differs
//! from 0.26.1 only in its iterator link options and its libbpf-sys (1.7).

use crate::classify::Classified;
use libbpf_rs::{Link, ProgramMut};

/// A uprobe_multi (or uprobe session) attachment, in libbpf's terms.
pub struct UprobeMulti<'a> {
    /// libbpf's pid: -1 all processes, 0 the caller, N that process.
    pub pid: i32,
    pub binary: &'a str,
    /// Symbols (then `offsets` is empty) or absolute file offsets.
    pub syms: &'a [String],
    pub offsets: &'a [u64],
    pub cookies: &'a [u64],
    pub retprobe: bool,
    pub session: bool,
}

/// Whether this libbpf-rs has a uprobe_multi API (else: the
/// `libbpf-rs-uprobe-multi-sys` bridge in [`attach_uprobe_multi`]).
pub const HAS_UPROBE_MULTI_OPTS: bool = cfg!(not(feature = "api-0-25"));

/// The registry id of the bridge [`attach_uprobe_multi`] goes through in this
/// build, `None` when it is libbpf-rs's own API.
pub const UPROBE_MULTI_BRIDGE: Option<&str> =
    if HAS_UPROBE_MULTI_OPTS { None } else { Some(crate::compat::UPROBE_MULTI_SYS_BRIDGE) };

/// `ProgramMut::attach_uprobe_multi_with_opts` (0.26 on).
#[cfg(not(feature = "api-0-25"))]
pub fn attach_uprobe_multi(prog: &ProgramMut<'_>, a: &UprobeMulti<'_>) -> Result<Link, Classified> {
    let opts = libbpf_rs::UprobeMultiOpts {
        syms: a.syms.to_vec(),
        offsets: a.offsets.iter().map(|o| *o as usize).collect(),
        cookies: a.cookies.to_vec(),
        retprobe: a.retprobe,
        session: a.session,
        ..Default::default()
    };
    prog.attach_uprobe_multi_with_opts(a.pid, a.binary, "", opts).map_err(|e| crate::classify::classify_libbpf(&e))
}

/// libbpf-rs 0.25 has no uprobe_multi API: the same call libbpf-rs 0.26's
/// `attach_uprobe_multi_with_opts` makes, through the re-exported libbpf_sys
/// (libbpf 1.5's `bpf_uprobe_multi_opts`, which has no `session`: a session
/// goes through [`crate::compat::attach_uprobe_session_raw`] before this).
#[cfg(feature = "api-0-25")]
pub fn attach_uprobe_multi(prog: &ProgramMut<'_>, a: &UprobeMulti<'_>) -> Result<Link, Classified> {
    use libbpf_rs::libbpf_sys;
    use libbpf_rs::AsRawLibbpf;
    use std::ffi::CString;
    assert!(!a.session, "libbpf 1.5 has no session flag: the raw bridge handles sessions");
    let nul = |s: &str| crate::protocol::invalid(format!("{s:?} contains NUL"));
    let path = CString::new(a.binary).map_err(|_| nul(a.binary))?;
    let syms: Vec<CString> = a.syms.iter().map(|s| CString::new(s.as_str()).map_err(|_| nul(s))).collect::<Result<_, _>>()?;
    let sym_ptrs: Vec<*const libc::c_char> = syms.iter().map(|s| s.as_ptr()).collect();
    let offsets: Vec<libc::c_ulong> = a.offsets.iter().map(|o| *o as libc::c_ulong).collect();
    let ptr_or_null = |empty: bool, p: *const libc::c_void| if empty { std::ptr::null() } else { p };
    let cnt = if !a.syms.is_empty() { a.syms.len() } else { a.offsets.len() };
    let opts = libbpf_sys::bpf_uprobe_multi_opts {
        sz: size_of::<libbpf_sys::bpf_uprobe_multi_opts>() as _,
        syms: ptr_or_null(sym_ptrs.is_empty(), sym_ptrs.as_ptr().cast()).cast_mut().cast(),
        offsets: ptr_or_null(offsets.is_empty(), offsets.as_ptr().cast()).cast(),
        cookies: ptr_or_null(a.cookies.is_empty(), a.cookies.as_ptr().cast()).cast(),
        cnt: cnt as _,
        retprobe: a.retprobe,
        ..Default::default()
    };
    // SAFETY: the program pointer comes from a live libbpf-rs program; path,
    // the symbol strings and pointer array, offsets and cookies outlive the
    // call, and libbpf copies what it keeps (the kernel copies the arrays).
    let raw = unsafe {
        libbpf_sys::bpf_program__attach_uprobe_multi(
            prog.as_libbpf_object().as_ptr(),
            a.pid,
            path.as_ptr(),
            std::ptr::null(),
            &opts,
        )
    };
    crate::compat::link_from_raw(raw, || "failed to attach uprobe multi".to_string())
}
