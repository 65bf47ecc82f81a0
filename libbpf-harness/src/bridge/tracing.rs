//! BTF-based tracing through libbpf: fentry, fexit, fsession (one program
//! bound to one kernel function at load) and the tracing multi link
//! (fentry.multi, fexit.multi, fsession.multi: one program, many functions,
//! BTF ids and cookies given at link time).
//!
//! | step | libbpf 1.7 / libbpf-rs 0.27.2 | here |
//! |---|---|---|
//! | name the target before load | `bpf_program__set_attach_target` (libbpf-rs `OpenProgramMut::set_attach_target`) | [`OpenProgramBridgeExt::set_tracing_target`](super::OpenProgramBridgeExt::set_tracing_target): the same call, with a hint on ESRCH |
//! | `SEC("fsession")` | typed by libbpf 1.7 (TRACING, attach type 58); unknown to 1.5 and 1.6 | [`OpenProgramBridgeExt::type_tracing_section`](super::OpenProgramBridgeExt::type_tracing_section) types it for libbpf < 1.7 |
//! | attach with a cookie | `bpf_program__attach_trace_opts`; libbpf-rs has `attach_trace()` only | [`ProgramBridgeExt::attach_trace_with_cookie`](super::ProgramBridgeExt::attach_trace_with_cookie) |
//! | `SEC("fentry.multi")` & co. | no released libbpf knows them (the development tree has `bpf_program__attach_tracing_multi`) | typed by `type_tracing_section`, linked by [`ProgramBridgeExt::attach_tracing_multi`](super::ProgramBridgeExt::attach_tracing_multi) with a raw `BPF_LINK_CREATE` |

use super::{BridgeError, BridgeLink, Op};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, Link, OpenProgramMut, ProgramMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// `enum bpf_attach_type` values of the tracing family (include/uapi/linux/bpf.h).
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;
/// Linux 7.0.
pub const BPF_TRACE_FSESSION: u32 = 58;
/// The tracing multi link (present in the 7.3 kernel's BTF; probe for it).
pub const BPF_TRACE_FENTRY_MULTI: u32 = 59;
pub const BPF_TRACE_FEXIT_MULTI: u32 = 60;
pub const BPF_TRACE_FSESSION_MULTI: u32 = 61;

/// The BTF-based tracing attach types, by their ELF section names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TracingKind {
    /// `SEC("fentry")`, Linux 5.5.
    Fentry,
    /// `SEC("fexit")`, Linux 5.5.
    Fexit,
    /// `SEC("fsession")`: one program at entry and return, Linux 7.0.
    Fsession,
    /// `SEC("fentry.multi")`: the tracing multi link.
    FentryMulti,
    /// `SEC("fexit.multi")`.
    FexitMulti,
    /// `SEC("fsession.multi")`.
    FsessionMulti,
}

impl TracingKind {
    /// The kind of an ELF section name (`fentry`, `fentry/func`, `fentry.multi`, …).
    pub fn from_section(section: &str) -> Option<TracingKind> {
        let base = section.split('/').next().unwrap_or(section);
        Some(match base {
            "fentry" => TracingKind::Fentry,
            "fexit" => TracingKind::Fexit,
            "fsession" => TracingKind::Fsession,
            "fentry.multi" => TracingKind::FentryMulti,
            "fexit.multi" => TracingKind::FexitMulti,
            "fsession.multi" => TracingKind::FsessionMulti,
            _ => return None,
        })
    }

    /// The `expected_attach_type` the program loads with and its link carries.
    pub fn attach_type(self) -> u32 {
        match self {
            TracingKind::Fentry => BPF_TRACE_FENTRY,
            TracingKind::Fexit => BPF_TRACE_FEXIT,
            TracingKind::Fsession => BPF_TRACE_FSESSION,
            TracingKind::FentryMulti => BPF_TRACE_FENTRY_MULTI,
            TracingKind::FexitMulti => BPF_TRACE_FEXIT_MULTI,
            TracingKind::FsessionMulti => BPF_TRACE_FSESSION_MULTI,
        }
    }

    /// A tracing multi link kind: no target at load (the kernel uses its
    /// `bpf_multi_func` stub), BTF ids at link time.
    pub fn is_multi(self) -> bool {
        matches!(self, TracingKind::FentryMulti | TracingKind::FexitMulti | TracingKind::FsessionMulti)
    }
}

impl TracingKind {
    /// The enumerator of `enum bpf_attach_type` that a kernel knowing this
    /// kind names in its BTF.
    pub fn enumerator(self) -> &'static str {
        match self {
            TracingKind::Fentry => "BPF_TRACE_FENTRY",
            TracingKind::Fexit => "BPF_TRACE_FEXIT",
            TracingKind::Fsession => "BPF_TRACE_FSESSION",
            TracingKind::FentryMulti => "BPF_TRACE_FENTRY_MULTI",
            TracingKind::FexitMulti => "BPF_TRACE_FEXIT_MULTI",
            TracingKind::FsessionMulti => "BPF_TRACE_FSESSION_MULTI",
        }
    }
}

/// Whether the running kernel knows this attach type: its BTF's `enum
/// bpf_attach_type` names it (fsession from 7.0, the multi kinds from 7.2 on
/// Debian's kernels). `None` without kernel BTF. The kernel answers an
/// unknown attach type with EINVAL, the same errno as a bad program; this
/// tells the two apart (as the Go bridge's HaveFsession/HaveTracingMulti do).
pub fn kernel_knows(kind: TracingKind) -> Option<bool> {
    use libbpf_rs::btf::types::Enum;
    let btf = libbpf_rs::btf::Btf::from_vmlinux().ok()?;
    let e = btf.type_by_name::<Enum>("bpf_attach_type")?;
    let known = e.iter().any(|m| m.name.is_some_and(|n| n == kind.enumerator()));
    Some(known)
}

/// Types a program whose section the linked libbpf does not know
/// (`fsession` before libbpf 1.7, the `.multi` forms in every release): see
/// [`super::OpenProgramBridgeExt::type_tracing_section`].
pub(crate) fn type_unknown_section(prog: &mut OpenProgramMut<'_>, kind: TracingKind) -> bool {
    let raw = prog.as_libbpf_object().as_ptr();
    // SAFETY: a live open program of a live open object; these getters and
    // setters only read or write its type fields, before load.
    unsafe {
        if libbpf_sys::bpf_program__type(raw) != libbpf_sys::BPF_PROG_TYPE_UNSPEC {
            return false;
        }
        libbpf_sys::bpf_program__set_type(raw, libbpf_sys::BPF_PROG_TYPE_TRACING);
        libbpf_sys::bpf_program__set_expected_attach_type(raw, kind.attach_type());
    }
    true
}

/// `bpf_program__set_attach_target(prog, 0, function)`.
pub(crate) fn set_target(prog: &mut OpenProgramMut<'_>, function: &str) -> Result<(), BridgeError> {
    prog.set_attach_target(0, Some(function.to_string())).map_err(|e| {
        let e = BridgeError::from(e).with_hint(Op::TracingTarget);
        e.reworded(format!("set attach target {function}"))
    })
}

/// `bpf_program__attach_trace_opts` with a cookie (libbpf 1.0+; the kernel's
/// `link_create.tracing.cookie`, 6.0).
pub(crate) fn attach_trace_cookie(prog: &ProgramMut<'_>, cookie: u64) -> Result<Link, BridgeError> {
    let opts = libbpf_sys::bpf_trace_opts { sz: size_of::<libbpf_sys::bpf_trace_opts>() as _, cookie, ..Default::default() };
    // SAFETY: the program pointer comes from a live libbpf-rs program and
    // `opts` outlives the call; libbpf copies what it keeps.
    let raw = unsafe { libbpf_sys::bpf_program__attach_trace_opts(prog.as_libbpf_object().as_ptr(), &opts) };
    super::link_from_raw(raw, || format!("bpf_program__attach_trace_opts(cookie={cookie:#x})")).map_err(|e| e.with_hint(Op::Tracing))
}

/// BTF type ids of kernel functions (FUNC in vmlinux BTF), in order. A
/// missing one is ENOENT (`not-found`), as libbpf's own pattern resolution
/// answers.
///
/// ```no_run
/// let ids = libbpf_harness::bridge::kernel_func_ids(&["__x64_sys_close", "__x64_sys_dup"])?;
/// # Ok::<(), libbpf_harness::bridge::BridgeError>(())
/// ```
pub fn kernel_func_ids(functions: &[&str]) -> Result<Vec<u32>, BridgeError> {
    use libbpf_rs::btf::types::Func;
    let btf = libbpf_rs::btf::Btf::from_vmlinux().map_err(BridgeError::from)?;
    functions
        .iter()
        .map(|f| {
            btf.type_by_name::<Func>(f)
                .map(|t| t.type_id().into())
                .ok_or_else(|| BridgeError::from_errno(libc::ENOENT, format!("kernel BTF has no function {f}")).with_hint(Op::TracingTarget))
        })
        .collect()
}

/// The prefix of `union bpf_attr` that BPF_LINK_CREATE reads for a tracing
/// multi link (the 7.3 kernel's BTF): `prog_fd, target_fd, attach_type,
/// flags`, then the `tracing_multi` member of the union: `ids` (pointer to
/// u32 BTF ids), `cookies` (pointer to one u64 per id, or 0), `cnt`.
#[repr(C)]
#[derive(Default)]
pub struct LinkCreateTracingMulti {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub ids: u64,
    pub cookies: u64,
    pub cnt: u32,
    pub _pad: u32,
}

/// A tracing multi link of `prog` (loaded with the multi attach type
/// `attach_type`: 59, 60 or 61) on the functions with these BTF ids, one
/// cookie per id or none, by a raw `BPF_LINK_CREATE`: no released libbpf has
/// `bpf_program__attach_tracing_multi`. The fd is the link: closing it
/// detaches.
///
/// The kernel sorts ids and cookies together and refuses duplicate ids
/// (EINVAL); one function it cannot trace fails the whole link.
pub fn attach_tracing_multi_raw(prog: &ProgramMut<'_>, attach_type: u32, ids: &[u32], cookies: &[u64]) -> Result<OwnedFd, BridgeError> {
    if ids.is_empty() || (!cookies.is_empty() && cookies.len() != ids.len()) {
        return Err(BridgeError::invalid(format!("tracing multi: {} ids with {} cookies", ids.len(), cookies.len())));
    }
    let attr = LinkCreateTracingMulti {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        attach_type,
        ids: ids.as_ptr() as u64,
        cookies: if cookies.is_empty() { 0 } else { cookies.as_ptr() as u64 },
        cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_LINK_CREATE) reads size_of_val(&attr) bytes of attr and,
    // through it, `cnt` u32 ids and u64 cookies, which outlive the call; the
    // kernel copies them before it returns a new fd (or -1 with errno).
    let fd = unsafe { libc::syscall(libc::SYS_bpf, super::BPF_LINK_CREATE, &attr as *const _, size_of_val(&attr) as libc::c_uint) };
    if fd < 0 {
        let what = || format!("tracing multi link_create (attach type {attach_type}, {} functions)", ids.len());
        return Err(BridgeError::last_os_error(what).with_hint(Op::TracingMulti));
    }
    // SAFETY: a fresh link fd the kernel just returned; owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// [`kernel_func_ids`] then [`attach_tracing_multi_raw`] with the program's
/// own multi attach type.
pub(crate) fn attach_tracing_multi(prog: &ProgramMut<'_>, kind: TracingKind, functions: &[&str], cookies: &[u64]) -> Result<BridgeLink, BridgeError> {
    if !kind.is_multi() {
        return Err(BridgeError::invalid(format!("{kind:?} is not a tracing multi kind (fentry.multi, fexit.multi, fsession.multi)")));
    }
    let ids = kernel_func_ids(functions)?;
    attach_tracing_multi_raw(prog, kind.attach_type(), &ids, cookies).map(BridgeLink::Fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layout_is_uapi() {
        // The 7.3 kernel's BTF: ids @16, cookies @24, cnt @32 of link_create.
        assert_eq!(std::mem::offset_of!(LinkCreateTracingMulti, attach_type), 8);
        assert_eq!(std::mem::offset_of!(LinkCreateTracingMulti, ids), 16);
        assert_eq!(std::mem::offset_of!(LinkCreateTracingMulti, cookies), 24);
        assert_eq!(std::mem::offset_of!(LinkCreateTracingMulti, cnt), 32);
    }

    #[test]
    fn kinds_from_sections() {
        assert_eq!(TracingKind::from_section("fentry/do_sys_openat2"), Some(TracingKind::Fentry));
        assert_eq!(TracingKind::from_section("fsession.multi"), Some(TracingKind::FsessionMulti));
        assert_eq!(TracingKind::from_section("kprobe.session"), None);
        assert!(TracingKind::FexitMulti.is_multi() && !TracingKind::Fsession.is_multi());
        assert_eq!(TracingKind::FsessionMulti.attach_type(), 61);
    }
}
