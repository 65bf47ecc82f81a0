//! BTF-based tracing probes through libbpf: fentry, fexit, fsession (one
//! program bound to one kernel function at load) and the tracing multi link
//! (fentry.multi, fexit.multi, fsession.multi: one program, many functions,
//! BTF ids and cookies given at link time).
//!
//! What libbpf 1.7 / libbpf-rs 0.27.2 do themselves, and what is bridged
//! (registry entries in [`crate::compat`]):
//!
//! | step | libbpf | here |
//! |---|---|---|
//! | name the target before load | `bpf_program__set_attach_target` (libbpf-rs `OpenProgramMut::set_attach_target`) | native |
//! | `SEC("fsession")` | typed by libbpf 1.7 (TRACING, attach type 58); unknown to 1.5 and 1.6 | typed here for libbpf < 1.7 (`libbpf-fsession-section`) |
//! | attach without a cookie | `bpf_program__attach_trace` (libbpf-rs `attach_trace`) | native |
//! | attach with a cookie | `bpf_program__attach_trace_opts` (no libbpf-rs API) | `libbpf-rs-tracing-cookie` |
//! | `SEC("fentry.multi")` & co. | no released libbpf knows them (its development tree has `bpf_program__attach_tracing_multi`) | typed and linked here with a raw `BPF_LINK_CREATE` (`libbpf-tracing-multi-raw`) |

use crate::classify::{classify_libbpf, Classified};
use crate::compat::{self, LinkHandle};
use crate::protocol::{invalid, Kind, Probe};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, OpenProgramMut, ProgramMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// `enum bpf_attach_type` values of the tracing family (include/uapi/linux/bpf.h).
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;
/// Linux 7.0.
pub const BPF_TRACE_FSESSION: u32 = 58;
/// The tracing multi link (in the 7.3 kernel's BTF; probed, never assumed).
pub const BPF_TRACE_FENTRY_MULTI: u32 = 59;
pub const BPF_TRACE_FEXIT_MULTI: u32 = 60;
pub const BPF_TRACE_FSESSION_MULTI: u32 = 61;

/// The attach type a tracing kind loads and links with.
pub fn attach_type(kind: Kind) -> Option<u32> {
    Some(match kind {
        Kind::Fentry => BPF_TRACE_FENTRY,
        Kind::Fexit => BPF_TRACE_FEXIT,
        Kind::Fsession => BPF_TRACE_FSESSION,
        Kind::FentryMulti => BPF_TRACE_FENTRY_MULTI,
        Kind::FexitMulti => BPF_TRACE_FEXIT_MULTI,
        Kind::FsessionMulti => BPF_TRACE_FSESSION_MULTI,
        _ => return None,
    })
}

/// Types a program whose section the linked libbpf does not know
/// (`fsession` before libbpf 1.7, the `.multi` forms in every release) as a
/// libbpf that knows it would: BPF_PROG_TYPE_TRACING with the kind's expected
/// attach type. Acts only on a program libbpf left untyped; returns the
/// bridge that typed it.
pub fn type_unknown_section(prog: &mut OpenProgramMut<'_>, kind: Kind) -> Option<&'static str> {
    let want = attach_type(kind)?;
    let raw = prog.as_libbpf_object().as_ptr();
    // SAFETY: a live open program of a live open object; these getters and
    // setters only read or write its type fields, before load.
    unsafe {
        if libbpf_sys::bpf_program__type(raw) != libbpf_sys::BPF_PROG_TYPE_UNSPEC {
            return None;
        }
        libbpf_sys::bpf_program__set_type(raw, libbpf_sys::BPF_PROG_TYPE_TRACING);
        libbpf_sys::bpf_program__set_expected_attach_type(raw, want);
    }
    let bridge = if kind.is_tracing_multi() { compat::TRACING_MULTI_RAW_BRIDGE } else { compat::FSESSION_SECTION_BRIDGE };
    let (ma, mi) = crate::version::linked();
    eprintln!(
        "program {}: libbpf {ma}.{mi} does not know section {}: typed tracing, expected attach type {want} [{bridge}]",
        prog.name().to_string_lossy(),
        prog.section().to_string_lossy()
    );
    Some(bridge)
}

/// Names the kernel function a single-link tracing program is bound to
/// (libbpf resolves it in vmlinux BTF: a missing one is ESRCH, not-found).
pub fn set_target(prog: &mut OpenProgramMut<'_>, function: &str) -> Result<(), Classified> {
    prog.set_attach_target(0, Some(function.to_string())).map_err(|e| {
        let mut c = classify_libbpf(&e);
        c.detail = format!("set attach target {function}: {}", c.detail);
        c
    })
}

/// Before load: [`type_unknown_section`], then the target of a single-link
/// kind, or what a multi program needs. Returns the bridge that typed the
/// section, if one did.
pub fn prepare(prog: &mut OpenProgramMut<'_>, p: &Probe) -> Result<Option<&'static str>, Classified> {
    let kind = p.kind();
    if !kind.is_tracing() {
        return Ok(None);
    }
    let bridge = type_unknown_section(prog, kind);
    if kind.is_tracing_multi() {
        prepare_multi(prog)?;
    } else {
        set_target(prog, &p.targets[0].symbol)?;
    }
    Ok(bridge)
}

/// Attaches a prepared tracing program; the bridge's registry id when harness
/// code made the link.
pub fn attach(prog: &ProgramMut<'_>, p: &Probe, typed_by: Option<&'static str>) -> Result<(Vec<LinkHandle>, Option<&'static str>), Classified> {
    let kind = p.kind();
    if kind.is_tracing_multi() {
        let ids = kernel_func_ids(&p.targets.iter().map(|t| t.symbol.as_str()).collect::<Vec<_>>())?;
        let cookies: Vec<u64> = p.targets.iter().map(|t| t.cookie).collect();
        let fd = attach_tracing_multi(prog, attach_type(kind).expect("tracing kind"), &ids, &cookies)?;
        return Ok((vec![LinkHandle::Fd(fd)], Some(compat::TRACING_MULTI_RAW_BRIDGE)));
    }
    let cookie = p.targets[0].cookie;
    if cookie == 0 {
        let link = prog.attach_trace().map_err(|e| classify_libbpf(&e))?;
        return Ok((vec![LinkHandle::Libbpf(link)], typed_by));
    }
    let link = attach_trace_cookie(prog, cookie)?;
    Ok((vec![LinkHandle::Libbpf(link)], Some(typed_by.unwrap_or(compat::TRACING_COOKIE_BRIDGE))))
}

/// `bpf_program__attach_trace_opts` with a cookie (libbpf 1.0+; the kernel's
/// `link_create.tracing.cookie`, 6.0): libbpf-rs has `attach_trace` only.
pub fn attach_trace_cookie(prog: &ProgramMut<'_>, cookie: u64) -> Result<libbpf_rs::Link, Classified> {
    let opts = libbpf_sys::bpf_trace_opts { sz: size_of::<libbpf_sys::bpf_trace_opts>() as _, cookie, ..Default::default() };
    // SAFETY: the program pointer comes from a live libbpf-rs program and
    // `opts` outlives the call; libbpf copies what it keeps.
    let raw = unsafe { libbpf_sys::bpf_program__attach_trace_opts(prog.as_libbpf_object().as_ptr(), &opts) };
    compat::link_from_raw(raw, || format!("bpf_program__attach_trace_opts(cookie={cookie:#x})"))
}

/// BTF type ids of kernel functions (FUNC in vmlinux BTF), in order. A
/// missing one is ENOENT (`not-found`), as libbpf's own pattern resolution
/// answers.
pub fn kernel_func_ids(symbols: &[&str]) -> Result<Vec<u32>, Classified> {
    use libbpf_rs::btf::types::Func;
    let btf = libbpf_rs::btf::Btf::from_vmlinux().map_err(|e| classify_libbpf(&e))?;
    symbols
        .iter()
        .map(|s| {
            btf.type_by_name::<Func>(s)
                .map(|f| f.type_id().into())
                .ok_or_else(|| Classified::from_errno(libc::ENOENT, format!("kernel BTF has no function {s}")))
        })
        .collect()
}

/// The prefix of `union bpf_attr` that BPF_LINK_CREATE reads for a tracing
/// multi link (the 7.3 kernel's BTF): `prog_fd, target_fd, attach_type,
/// flags`, then the `tracing_multi` member of the union: `ids` (u32 BTF ids),
/// `cookies` (u64 each, or 0), `cnt`.
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

/// A tracing multi link made with a raw `BPF_LINK_CREATE`: no released libbpf
/// has `bpf_program__attach_tracing_multi`. The fd is the link: closing it
/// detaches.
pub fn attach_tracing_multi(prog: &ProgramMut<'_>, attach_type: u32, ids: &[u32], cookies: &[u64]) -> Result<OwnedFd, Classified> {
    if ids.is_empty() || (!cookies.is_empty() && cookies.len() != ids.len()) {
        return Err(invalid(format!("tracing multi: {} ids with {} cookies", ids.len(), cookies.len())));
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
    let fd = unsafe { libc::syscall(libc::SYS_bpf, compat::BPF_LINK_CREATE, &attr as *const _, size_of_val(&attr) as libc::c_uint) };
    if fd < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Err(Classified::from_errno(
            errno,
            format!(
                "tracing multi link_create (attach type {attach_type}, {} functions): {}",
                ids.len(),
                std::io::Error::from_raw_os_error(errno)
            ),
        ));
    }
    // SAFETY: a fresh link fd the kernel just returned; owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What a multi program needs at load besides its type (filled in from the
/// kernel's rules: see prepare()).
pub fn prepare_multi(_prog: &mut OpenProgramMut<'_>) -> Result<(), Classified> {
    Ok(())
}
