//! The uprobe bridges: uprobe_multi links under libbpf-rs 0.25 (no
//! `UprobeMultiOpts`: libbpf's C call through `libbpf_sys`), and uprobe
//! session links under libbpf 1.5 (no `bpf_uprobe_multi_opts.session`, no
//! `uprobe.session` section: the program is typed as libbpf 1.6 types it, and
//! the link is a raw `BPF_LINK_CREATE`). With libbpf-rs 0.26+ on libbpf 1.6+
//! both are libbpf-rs's own `attach_uprobe_multi_with_opts`.

use super::{BridgeError, Op};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, ProgramMut};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// Options of [`ProgramBridgeExt::attach_uprobe_multi_bridged`](super::ProgramBridgeExt::attach_uprobe_multi_bridged):
/// libbpf-rs 0.26's `UprobeMultiOpts` (without `ref_ctr_offsets`), on every
/// libbpf-rs this crate builds with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UprobeMultiBridgeOpts {
    /// Function symbols, resolved in the binary as libbpf resolves them
    /// (`.dynsym`, then `.symtab`); or empty, and then `offsets`.
    pub syms: Vec<String>,
    /// Absolute file offsets (not addresses) of the probed instructions.
    pub offsets: Vec<u64>,
    /// One BPF cookie per target, or empty for none.
    pub cookies: Vec<u64>,
    /// Return probes (`uretprobe.multi`). libbpf 1.6+ and the raw session
    /// bridge refuse it together with `session` (EINVAL, before any syscall).
    pub retprobe: bool,
    /// A session link (attach type `BPF_TRACE_UPROBE_SESSION`, 57; Linux 6.13+).
    pub session: bool,
}

/// `enum bpf_cmd` BPF_LINK_CREATE.
pub const BPF_LINK_CREATE: libc::c_long = 28;
/// `enum bpf_attach_type` BPF_TRACE_UPROBE_SESSION (Linux 6.13).
pub const BPF_TRACE_UPROBE_SESSION: u32 = 57;
/// `link_create.uprobe_multi.flags` BPF_F_UPROBE_MULTI_RETURN.
pub const BPF_F_UPROBE_MULTI_RETURN: u32 = 1;

/// The prefix of `union bpf_attr` that BPF_LINK_CREATE reads for
/// uprobe_multi / uprobe_session links (include/uapi/linux/bpf.h):
/// `prog_fd, target_fd, attach_type, flags`, then the `uprobe_multi` member
/// of the union: `path, offsets, ref_ctr_offsets, cookies` (aligned u64
/// pointers), `cnt, flags, pid`.
#[repr(C)]
#[derive(Default)]
pub struct LinkCreateUprobeMulti {
    /// The program's fd.
    pub prog_fd: u32,
    /// Unused for uprobe links (0).
    pub target_fd: u32,
    /// [`BPF_TRACE_UPROBE_SESSION`] here (48 would be a plain uprobe_multi link).
    pub attach_type: u32,
    /// `link_create.flags` (0).
    pub flags: u32,
    /// Pointer to the binary's NUL-terminated path.
    pub path: u64,
    /// Pointer to `cnt` u64 file offsets.
    pub offsets: u64,
    /// Pointer to `cnt` u64 reference counter offsets, or 0.
    pub ref_ctr_offsets: u64,
    /// Pointer to `cnt` u64 cookies, or 0.
    pub cookies: u64,
    /// Number of targets.
    pub cnt: u32,
    /// `uprobe_multi.flags`: [`BPF_F_UPROBE_MULTI_RETURN`] or 0.
    pub uprobe_flags: u32,
    /// The pid filter (0: every process; the kernel's convention, not libbpf's).
    pub pid: u32,
    /// Padding to the union's alignment.
    pub _pad: u32,
}

/// The uprobe_multi link through libbpf-rs (0.26 on): `attach_uprobe_multi_with_opts`.
#[cfg(not(feature = "api-0-25"))]
pub(super) fn attach_uprobe_multi(prog: &ProgramMut<'_>, pid: i32, binary: &str, a: &UprobeMultiBridgeOpts) -> Result<libbpf_rs::Link, BridgeError> {
    let opts = libbpf_rs::UprobeMultiOpts {
        syms: a.syms.to_vec(),
        offsets: a.offsets.iter().map(|o| *o as usize).collect(),
        cookies: a.cookies.to_vec(),
        retprobe: a.retprobe,
        session: a.session,
        ..Default::default()
    };
    prog.attach_uprobe_multi_with_opts(pid, binary, "", opts)
        .map_err(|e| BridgeError::from(e).with_hint(if a.session { Op::UprobeSession } else { Op::UprobeMulti }))
}

/// libbpf-rs 0.25 has no uprobe_multi API: the same call libbpf-rs 0.26's
/// `attach_uprobe_multi_with_opts` makes, through the re-exported libbpf_sys
/// (libbpf 1.5's `bpf_uprobe_multi_opts`, which has no `session`: sessions go
/// through [`attach_uprobe_session_raw`]).
#[cfg(feature = "api-0-25")]
pub(super) fn attach_uprobe_multi(prog: &ProgramMut<'_>, pid: i32, binary: &str, a: &UprobeMultiBridgeOpts) -> Result<libbpf_rs::Link, BridgeError> {
    if a.session {
        return Err(BridgeError::from_errno(
            libc::EOPNOTSUPP,
            "libbpf 1.5 has no session flag in bpf_uprobe_multi_opts: the raw session bridge handles sessions".into(),
        ));
    }
    let nul = |s: &str| BridgeError::invalid(format!("{s:?} contains NUL"));
    let path = CString::new(binary).map_err(|_| nul(binary))?;
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
    let raw = unsafe { libbpf_sys::bpf_program__attach_uprobe_multi(prog.as_libbpf_object().as_ptr(), pid, path.as_ptr(), std::ptr::null(), &opts) };
    super::link_from_raw(raw, || "failed to attach uprobe multi".to_string()).map_err(|e| e.with_hint(Op::UprobeMulti))
}

/// A uprobe session link without libbpf: what libbpf 1.6's
/// `bpf_program__attach_uprobe_multi(.session = true)` does, for a libbpf
/// (1.5) whose options have no `session`. The same steps as libbpf:
/// retprobe + session is refused with EINVAL before any syscall (libbpf 1.6
/// and 1.7 do), symbols are resolved to file offsets as libbpf's
/// `elf_resolve_syms_offsets` does ([`super::elf`]), pid 0 means the caller and
/// -1 every process, and `BPF_LINK_CREATE` gets attach type 57 with the
/// uprobe_multi part of `bpf_attr`. The link is an fd: closing it detaches.
///
/// [`ProgramBridgeExt::attach_uprobe_multi_bridged`](super::ProgramBridgeExt::attach_uprobe_multi_bridged)
/// calls this when the linked libbpf is older than 1.6; it works with any
/// libbpf, so a tool can also call it directly. Minimum kernel 6.13; the
/// program must have been loaded with expected attach type 57 (libbpf 1.6+
/// does that for `SEC("uprobe.session")`, and so does
/// [`OpenProgramBridgeExt::type_uprobe_session_section`](super::OpenProgramBridgeExt::type_uprobe_session_section) under 1.5).
///
/// ```no_run
/// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
/// use libbpf_harness::bridge::{attach_uprobe_session_raw, UprobeMultiBridgeOpts};
///
/// let opts = UprobeMultiBridgeOpts { syms: vec!["pc_leaf".into()], session: true, ..Default::default() };
/// let link = attach_uprobe_session_raw(prog, -1, "/tmp/pcart/probe-target", &opts)?;
/// drop(link); // detaches
/// # Ok(()) }
/// ```
pub fn attach_uprobe_session_raw(prog: &ProgramMut<'_>, pid: i32, binary: &str, a: &UprobeMultiBridgeOpts) -> Result<OwnedFd, BridgeError> {
    let einval = |detail: String| BridgeError::from_errno(libc::EINVAL, detail);
    if a.retprobe && a.session {
        return Err(einval("uprobe session: retprobe together with session (libbpf >= 1.6 refuses the pair: EINVAL)".into()));
    }
    if a.syms.is_empty() == a.offsets.is_empty() {
        return Err(einval("uprobe session: either symbols or offsets".into()));
    }
    let offsets: Vec<u64> = if a.syms.is_empty() {
        a.offsets.to_vec()
    } else {
        let syms: Vec<&str> = a.syms.iter().map(String::as_str).collect();
        super::elf::resolve_syms_offsets(binary, &syms)?
    };
    let cnt = offsets.len();
    if !a.cookies.is_empty() && a.cookies.len() != cnt {
        return Err(einval(format!("uprobe session: {} cookies for {cnt} targets", a.cookies.len())));
    }
    let path = CString::new(binary).map_err(|_| BridgeError::invalid(format!("binary {binary:?} contains NUL")))?;
    let pid = match pid {
        // SAFETY: getpid has no preconditions.
        0 => (unsafe { libc::getpid() }) as u32,
        p if p > 0 => p as u32,
        _ => 0,
    };
    let attr = LinkCreateUprobeMulti {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        attach_type: BPF_TRACE_UPROBE_SESSION,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        cookies: if a.cookies.is_empty() { 0 } else { a.cookies.as_ptr() as u64 },
        cnt: cnt as u32,
        uprobe_flags: if a.retprobe { BPF_F_UPROBE_MULTI_RETURN } else { 0 },
        pid,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_LINK_CREATE) reads `size_of_val(&attr)` bytes of attr
    // and, through it, path (NUL-terminated), offsets and cookies (cnt u64
    // each), which all outlive the call; the kernel copies them before it
    // returns. It returns a new fd or -1 with errno.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_CREATE, &attr as *const _, size_of_val(&attr) as libc::c_uint) };
    if fd < 0 {
        return Err(BridgeError::last_os_error(|| {
            format!("uprobe session link_create (attach type {BPF_TRACE_UPROBE_SESSION}, flags {:#x})", attr.uprobe_flags)
        })
        .with_hint(Op::UprobeSession));
    }
    // SAFETY: a fresh link fd the kernel just returned; owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The type fix: see [`OpenProgramBridgeExt::type_uprobe_session_section`](super::OpenProgramBridgeExt::type_uprobe_session_section).
pub(super) fn type_unknown_session_section(prog: &mut libbpf_rs::OpenProgramMut<'_>) -> bool {
    let section = prog.section().to_string_lossy();
    let sleepable = section == "uprobe.session.s";
    if section != "uprobe.session" && !sleepable {
        return false;
    }
    let raw = prog.as_libbpf_object().as_ptr();
    // SAFETY: a live open program of a live open object; the getters and
    // setters only read or write its type fields before load.
    unsafe {
        if libbpf_sys::bpf_program__type(raw) != libbpf_sys::BPF_PROG_TYPE_UNSPEC {
            return false;
        }
        libbpf_sys::bpf_program__set_type(raw, libbpf_sys::BPF_PROG_TYPE_KPROBE);
        libbpf_sys::bpf_program__set_expected_attach_type(raw, BPF_TRACE_UPROBE_SESSION);
        if sleepable {
            // libbpf 1.6's SEC_DEF("uprobe.session.s+") is SEC_SLEEPABLE.
            libbpf_sys::bpf_program__set_flags(raw, libbpf_sys::bpf_program__flags(raw) | libbpf_sys::BPF_F_SLEEPABLE);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layout_is_uapi() {
        assert_eq!(size_of::<LinkCreateUprobeMulti>(), 64);
        assert_eq!(std::mem::offset_of!(LinkCreateUprobeMulti, attach_type), 8);
        assert_eq!(std::mem::offset_of!(LinkCreateUprobeMulti, path), 16);
        assert_eq!(std::mem::offset_of!(LinkCreateUprobeMulti, cookies), 40);
        assert_eq!(std::mem::offset_of!(LinkCreateUprobeMulti, cnt), 48);
        assert_eq!(std::mem::offset_of!(LinkCreateUprobeMulti, pid), 56);
    }
}
