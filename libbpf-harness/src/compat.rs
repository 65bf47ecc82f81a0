//! The libbpf side of the compatibility layer: what the linked libbpf-rs (or
//! libbpf) does not expose, reached through the re-exported `libbpf_sys` or a
//! raw `bpf(2)` call. Every bridge has a registry entry ([`registry`]) that says
//! which versions it applies to; a probe that went through one is reported
//! `via: compat` with the entry's id.

use crate::classify::{Classified, ErrorClass};
use crate::protocol::invalid;
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, Link, ProgramMut};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// kprobe.session (and `session: true` on kprobe.multi kinds): every libbpf-rs.
pub const KPROBE_SESSION_BRIDGE: &str = "libbpf-rs-kprobe-session";
/// kretprobe with a cookie: every libbpf-rs.
pub const KRETPROBE_COOKIE_BRIDGE: &str = "libbpf-rs-kretprobe-cookie";
/// uprobe_multi links under libbpf-rs 0.25 (no UprobeMultiOpts).
pub const UPROBE_MULTI_SYS_BRIDGE: &str = "libbpf-rs-uprobe-multi-sys";
/// uprobe session links under libbpf < 1.6 (no bpf_uprobe_multi_opts.session).
pub const UPROBE_SESSION_RAW_BRIDGE: &str = "libbpf-uprobe-session-raw";
/// fentry/fexit/fsession with a cookie: libbpf-rs has attach_trace only.
pub const TRACING_COOKIE_BRIDGE: &str = "libbpf-rs-tracing-cookie";
/// SEC("fsession") under libbpf < 1.7, which does not know the section.
pub const FSESSION_SECTION_BRIDGE: &str = "libbpf-fsession-section";
/// The tracing multi link: no released libbpf has it.
pub const TRACING_MULTI_RAW_BRIDGE: &str = "libbpf-tracing-multi-raw";
/// The build picked from `objects` by kernel BTF.
pub const SESSION_KFUNC_VARIANT: &str = "libbpf-session-kfunc-variant";

/// A link this harness holds: libbpf's, or a raw link fd the harness created.
/// Dropping it detaches.
pub enum LinkHandle {
    Libbpf(Link),
    Fd(OwnedFd),
}

/// A libbpf `struct bpf_link *` (NULL + errno on failure, libbpf 1.0 mode,
/// which libbpf-rs enables) as a libbpf-rs Link.
pub fn link_from_raw(raw: *mut libbpf_sys::bpf_link, what: impl FnOnce() -> String) -> Result<Link, Classified> {
    match NonNull::new(raw) {
        // SAFETY: a non-NULL bpf_link from libbpf, owned by nobody else; Link
        // destroys it exactly once on drop.
        Some(p) => Ok(unsafe { Link::from_ptr(p) }),
        None => {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
            Err(Classified::from_errno(errno, format!("{}: {}", what(), std::io::Error::from_raw_os_error(errno))))
        }
    }
}

/// `bpf_program__attach_kprobe_multi_opts` with every field, including
/// `.session`, which `libbpf_rs::KprobeMultiOpts` lacks in every version.
pub fn attach_kprobe_multi(
    prog: &ProgramMut<'_>,
    symbols: &[String],
    cookies: &[u64],
    retprobe: bool,
    session: bool,
) -> Result<Link, Classified> {
    if symbols.is_empty() || cookies.len() != symbols.len() {
        return Err(invalid(format!("{} symbols with {} cookies", symbols.len(), cookies.len())));
    }
    let csyms: Vec<CString> = symbols
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| invalid(format!("symbol {s:?} contains NUL"))))
        .collect::<Result<_, _>>()?;
    let mut sym_ptrs: Vec<*const libc::c_char> = csyms.iter().map(|s| s.as_ptr()).collect();
    let opts = libbpf_sys::bpf_kprobe_multi_opts {
        sz: size_of::<libbpf_sys::bpf_kprobe_multi_opts>() as _,
        syms: sym_ptrs.as_mut_ptr(),
        cookies: cookies.as_ptr(),
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
}

/// `bpf_program__attach_kprobe_opts` with retprobe, offset and cookie
/// together (KprobeOpts has a cookie but no retprobe flag; attach_kprobe a
/// retprobe flag but no cookie).
pub fn attach_kprobe_opts(prog: &ProgramMut<'_>, sym: &str, offset: u64, cookie: u64, retprobe: bool) -> Result<Link, Classified> {
    let csym = CString::new(sym).map_err(|_| invalid(format!("symbol {sym:?} contains NUL")))?;
    let opts = libbpf_sys::bpf_kprobe_opts {
        sz: size_of::<libbpf_sys::bpf_kprobe_opts>() as _,
        bpf_cookie: cookie,
        offset: offset as _,
        retprobe,
        ..Default::default()
    };
    // SAFETY: live program pointer; csym and opts outlive the call.
    let raw = unsafe { libbpf_sys::bpf_program__attach_kprobe_opts(prog.as_libbpf_object().as_ptr(), csym.as_ptr(), &opts) };
    link_from_raw(raw, || format!("attach kprobe {sym}"))
}

// ---- the raw uprobe session link (libbpf < 1.6) ----

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
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub path: u64,
    pub offsets: u64,
    pub ref_ctr_offsets: u64,
    pub cookies: u64,
    pub cnt: u32,
    pub uprobe_flags: u32,
    pub pid: u32,
    pub _pad: u32,
}

/// A uprobe session link made by the harness: what libbpf 1.6's
/// `bpf_program__attach_uprobe_multi(.session = true)` does, for a libbpf
/// (1.5) whose options have no `session`. The same steps as libbpf:
/// retprobe + session is refused with EINVAL before any syscall (libbpf 1.6
/// and 1.7 do), symbols are resolved to file offsets as libbpf's
/// `elf_resolve_syms_offsets` does (src/elf.rs), pid 0 means the caller and
/// -1 every process, and `BPF_LINK_CREATE` gets attach type 57 with the
/// uprobe_multi part of `bpf_attr`. The link is an fd: closing it detaches.
pub fn attach_uprobe_session_raw(prog: &ProgramMut<'_>, a: &crate::api::UprobeMulti<'_>) -> Result<OwnedFd, Classified> {
    let einval = |detail: String| Classified::from_errno(libc::EINVAL, detail);
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
        crate::elf::resolve_syms_offsets(a.binary, &syms)?
    };
    let cnt = offsets.len();
    if !a.cookies.is_empty() && a.cookies.len() != cnt {
        return Err(einval(format!("uprobe session: {} cookies for {cnt} targets", a.cookies.len())));
    }
    let path = CString::new(a.binary).map_err(|_| invalid(format!("binary {:?} contains NUL", a.binary)))?;
    let pid = match a.pid {
        // SAFETY: getpid has no preconditions.
        0 => (unsafe { libc::getpid() }) as u32,
        p if p > 0 => p as u32,
        _ => 0,
    };
    use std::os::fd::AsFd;
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
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Err(Classified::from_errno(
            errno,
            format!(
                "uprobe session link_create (attach type {BPF_TRACE_UPROBE_SESSION}, flags {:#x}): {}",
                attr.uprobe_flags,
                std::io::Error::from_raw_os_error(errno)
            ),
        ));
    }
    // SAFETY: a fresh link fd the kernel just returned; owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// libbpf 1.5 does not know the section `uprobe.session` (1.6 added it): it
/// leaves such a program untyped and its load fails ("missing BPF prog type").
/// The raw session bridge then types it as libbpf 1.6 does: program type
/// KPROBE, expected attach type BPF_TRACE_UPROBE_SESSION (57), which the
/// kernel needs at load (the session kfuncs check it). Acts only on a program
/// libbpf left untyped; returns whether it did.
pub fn type_unknown_session_section(prog: &mut libbpf_rs::OpenProgramMut<'_>) -> bool {
    let section = prog.section().to_string_lossy().into_owned();
    if section != "uprobe.session" && section != "uprobe.session.s" {
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
    }
    eprintln!("program {}: libbpf {}.{} does not know section {section}: typed kprobe, expected attach type {BPF_TRACE_UPROBE_SESSION} [{UPROBE_SESSION_RAW_BRIDGE}]",
        prog.name().to_string_lossy(), crate::version::linked().0, crate::version::linked().1);
    true
}

/// `sizeof(struct usdt_spec)` that the linked libbpf's usdt.c writes into
/// `__bpf_usdt_specs`: 12 argument specs and the cookie and count. libbpf 1.7
/// added the SIB argument kind with bitfields that make an argument spec 24
/// bytes instead of 16 (`reg_off` moves from offset 12 to 14, whatever
/// usdt.bpf.h's comment says), so the struct is 304 bytes from 1.7 on and 208
/// before (measured with gcc and clang, x86_64).
pub fn usdt_spec_size() -> u32 {
    if crate::version::linked() >= (1, 7) {
        304
    } else {
        208
    }
}

/// A USDT object must have been built with a usdt.bpf.h whose spec layout the
/// linked libbpf writes: else libbpf's map update copies a struct of another
/// size and the program reads garbage arguments and cookies without any error.
/// Refused instead (attach/invalid); registry `libbpf-usdt-spec-layout`.
pub fn check_usdt_spec_layout(obj: &libbpf_rs::Object) -> Result<(), Classified> {
    use libbpf_rs::MapCore;
    let Some(m) = obj.maps().find(|m| m.name() == "__bpf_usdt_specs") else { return Ok(()) };
    let (have, want) = (m.value_size(), usdt_spec_size());
    if have == want {
        return Ok(());
    }
    let (ma, mi) = crate::version::linked();
    Err(invalid(format!(
        "usdt: the object's struct __bpf_usdt_spec is {have} bytes ({} usdt.bpf.h) but libbpf {ma}.{mi}'s usdt.c writes {want}-byte specs: \
         arguments and cookies would be garbage; build the object with this libbpf's usdt.bpf.h [libbpf-usdt-spec-layout]",
        if have == 304 { "libbpf 1.7's" } else if have == 208 { "libbpf <= 1.6's" } else { "an unknown" }
    )))
}

/// libbpf's pid convention for the protocol's scope: -1 means all processes
/// (0 would mean the calling process, i.e. the harness itself).
pub fn libbpf_pid(filter: Option<u32>) -> i32 {
    match filter {
        Some(pid) => pid as i32,
        None => -1,
    }
}

// ---- the registry ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapStatus {
    /// The library does it; the entry documents a difference a comparison must normalise.
    Native,
    /// Bridged by the compatibility layer.
    Compat,
    /// Not available; reported rather than bridged.
    Missing,
}

/// One registry entry: the JSON shape of `probeconf-harness gaps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub id: String,
    pub library: String,
    pub versions: String,
    pub feature: String,
    pub status: GapStatus,
    pub workaround: String,
}

/// Which builds an entry applies to.
#[derive(Clone, Copy)]
enum Applies {
    Always,
    /// libbpf-rs 0.25.x (api-0-25).
    Api025,
    /// A linked libbpf older than this (major, minor).
    LibbpfBelow(u32, u32),
    /// A linked libbpf of at least this version.
    LibbpfFrom(u32, u32),
}

impl Applies {
    fn here(self) -> bool {
        let linked = crate::version::linked();
        match self {
            Applies::Always => true,
            Applies::Api025 => cfg!(feature = "api-0-25"),
            Applies::LibbpfBelow(ma, mi) => linked < (ma, mi),
            Applies::LibbpfFrom(ma, mi) => linked >= (ma, mi),
        }
    }
}

fn entries() -> Vec<(Applies, Gap)> {
    use GapStatus::*;
    let g = |id: &str, library: &str, versions: &str, feature: &str, status: GapStatus, workaround: &str| Gap {
        id: id.into(),
        library: library.into(),
        versions: versions.into(),
        feature: feature.into(),
        status,
        workaround: workaround.into(),
    };
    vec![
        (
            Applies::Always,
            g(
                KPROBE_SESSION_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2 (libbpf >= 1.5)",
                "kprobe.session attach (BPF_TRACE_KPROBE_SESSION = 56, kernel >= 6.10), and session: true on kprobe.multi kinds",
                Compat,
                "KprobeMultiOpts has no `session` flag in any of these versions. The harness calls libbpf's \
                 bpf_program__attach_kprobe_multi_opts through the re-exported libbpf_sys with .session, .retprobe, \
                 symbols and cookies (libbpf-harness/src/compat.rs attach_kprobe_multi).",
            ),
        ),
        (
            Applies::Always,
            g(
                KRETPROBE_COOKIE_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2",
                "kretprobe (kind kretprobe, or retprobe: true on kprobe) with a cookie, and a kprobe at an offset",
                Compat,
                "KprobeOpts carries a cookie but no retprobe flag, and attach_kprobe(retprobe) no cookie. The harness \
                 calls bpf_program__attach_kprobe_opts with retprobe, offset and bpf_cookie together (compat.rs \
                 attach_kprobe_opts); such probes are reported via compat. A kretprobe without cookie or offset \
                 goes through attach_kprobe(true, …), natively.",
            ),
        ),
        (
            Applies::Api025,
            g(
                UPROBE_MULTI_SYS_BRIDGE,
                "libbpf-rs",
                "0.25.x (libbpf 1.5); 0.26.0 and later have UprobeMultiOpts",
                "uprobe.multi / uretprobe.multi links (BPF_TRACE_UPROBE_MULTI = 48)",
                Compat,
                "libbpf-rs 0.25 has no UprobeMultiOpts and no attach_uprobe_multi. The harness makes the call \
                 libbpf-rs 0.26's attach_uprobe_multi_with_opts makes: bpf_program__attach_uprobe_multi through \
                 libbpf_sys, with syms or offsets, cookies and retprobe (libbpf-harness/src/api.rs).",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 6),
            g(
                UPROBE_SESSION_RAW_BRIDGE,
                "libbpf",
                "1.5 (libbpf-rs 0.25.x); libbpf 1.6 added bpf_uprobe_multi_opts.session",
                "uprobe session links (BPF_TRACE_UPROBE_SESSION = 57, kernel >= 6.13): kind uprobe.session, and \
                 session: true on uprobe.multi kinds",
                Compat,
                "libbpf 1.5 knows neither the section uprobe.session nor a `session` in bpf_uprobe_multi_opts. \
                 At load, a uprobe.session program libbpf left untyped gets program type KPROBE and expected attach \
                 type 57, as libbpf 1.6 types it (compat.rs type_unknown_session_section). At attach the harness does \
                 what libbpf 1.6's bpf_program__attach_uprobe_multi does with .session: refuses retprobe + session with EINVAL, \
                 resolves symbols to file offsets like libbpf's elf_resolve_syms_offsets (.dynsym then .symtab \
                 STT_FUNC, st_value - sh_addr + sh_offset; src/elf.rs), maps pid 0 to the caller and -1 to every \
                 process, and issues BPF_LINK_CREATE (cmd 28) itself with attach type 57 and the uprobe_multi part of \
                 bpf_attr (path, offsets, cookies, cnt, flags, pid). The link is a plain fd the harness closes.",
            ),
        ),
        (
            Applies::Always,
            g(
                TRACING_COOKIE_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2 (libbpf >= 1.0)",
                "fentry / fexit / fsession with a BPF cookie (link_create.tracing.cookie, kernel >= 6.0)",
                Compat,
                "ProgramMut::attach_trace takes no options. A tracing probe with a non-zero cookie goes through \
                 libbpf's bpf_program__attach_trace_opts with .cookie (libbpf-harness/src/tracing.rs \
                 attach_trace_cookie); without a cookie, attach_trace, natively. The target function is named before \
                 load with OpenProgramMut::set_attach_target (native).",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 7),
            g(
                FSESSION_SECTION_BRIDGE,
                "libbpf",
                "1.5, 1.6 (libbpf 1.7 added SEC(\"fsession+\"))",
                "fsession programs (BPF_TRACE_FSESSION = 58, kernel >= 7.0)",
                Compat,
                "libbpf before 1.7 does not know the section fsession and leaves the program untyped (its load would \
                 fail: missing BPF prog type). The harness types it as 1.7 does, BPF_PROG_TYPE_TRACING with expected \
                 attach type 58, before load (tracing.rs prepare); set_attach_target and attach_trace then work as for \
                 fentry.",
            ),
        ),
        (
            Applies::Always,
            g(
                TRACING_MULTI_RAW_BRIDGE,
                "libbpf",
                "all releases (<= 1.7); libbpf's development tree has bpf_program__attach_tracing_multi",
                "the tracing multi link: fentry.multi / fexit.multi / fsession.multi (attach types 59, 60, 61), one \
                 program on many kernel functions with a cookie per function",
                Compat,
                "No released libbpf knows the sections or the link. Before load the harness types the program \
                 BPF_PROG_TYPE_TRACING with the multi attach type; at attach it resolves every target to its BTF FUNC \
                 id in vmlinux BTF (libbpf-rs Btf::from_vmlinux; a missing function is ENOENT, not-found) and issues \
                 BPF_LINK_CREATE (cmd 28) itself with the tracing_multi part of bpf_attr: ids, cookies, cnt \
                 (tracing.rs attach_tracing_multi). The link is a plain fd the harness closes.",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-pid-semantics",
                "libbpf",
                "all",
                "pid filter of uprobe / uprobe_multi attachments",
                Native,
                "libbpf: 0 = the calling process, -1 = all processes (cilium: 0 = all). The protocol says \
                 {\"scope\":\"all\"} or {\"scope\":\"pid\",\"pid\":N}; the harness maps all to -1 and never passes 0 \
                 (compat.rs libbpf_pid).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-session-retprobe",
                "libbpf",
                ">= 1.5 (kprobe sessions), >= 1.6 (uprobe sessions; the 1.5 raw bridge refuses the pair the same way)",
                "session link together with the retprobe flag",
                Native,
                "libbpf refuses retprobe + session with EINVAL before the kernel sees it; the kernel has no such check. \
                 Reported as a documented library difference (case uprobe-session-retprobe-flag).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-rs-uprobe-session-attach-type",
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2",
                "ProgramAttachType for uprobe.session programs",
                Missing,
                "There is no ProgramAttachType::TraceUprobeSession; attach_type() of such a program is Unknown. The \
                 harness does not need it (the link's attach type comes from libbpf or the raw bridge).",
            ),
        ),
        (
            Applies::Always,
            g(
                SESSION_KFUNC_VARIANT,
                "libbpf + libbpf-rs",
                "all (kernels 6.10-6.19 vs >= 7.0)",
                "a request's objects: {noarg, ctx}, the two builds of the session recorders",
                Compat,
                "The harness reads the running kernel's BTF (libbpf-rs Btf::from_vmlinux, FUNC bpf_session_cookie: \
                 0 parameters = noarg, 1 = ctx) and loads the matching build, the noarg one when the kernel has no \
                 session kfuncs; the attached and error lines say object_variant and object_reason. The same decision \
                 as probeconf's probing::session_kfunc_prototype (src/kfunc.rs).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-usdt-spec-layout",
                "libbpf",
                "1.5, 1.6 (208-byte specs) vs >= 1.7 (304-byte specs)",
                "USDT objects built on another libbpf's usdt.bpf.h",
                Missing,
                "libbpf 1.7's struct __bpf_usdt_arg_spec gained bitfields (SIB arguments) that make it 24 bytes instead \
                 of 16 (reg_off moves from offset 12 to 14; usdt.bpf.h's comment says the layout is stable, it is not \
                 on x86_64 with gcc or clang), so struct __bpf_usdt_spec is 304 bytes instead of 208. A libbpf <= 1.6 \
                 attaching an object built with 1.7's usdt.bpf.h (probeconf's usdt_recorder.bpf.o is) writes 208-byte \
                 specs into 304-byte map values: no error, and the program reads garbage arguments and cookies \
                 (measured: cookie 0 or a stack address, no arguments). The harness compares the object's \
                 __bpf_usdt_specs value size with the linked libbpf's and refuses a mismatch (attach/invalid) \
                 rather than report garbage. The fix is an object built per libbpf version.",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 7),
            g(
                "libbpf-usdt-no-nop5-move",
                "libbpf",
                "1.5, 1.6 (libbpf 1.7 moves the probe)",
                "USDT probes on a `nop; nop5` site",
                Native,
                "libbpf 1.7 attaches a `nop; nop5` USDT site at the nop5 when the kernel has the uprobe syscall (so the \
                 kernel can optimise it); 1.5 and 1.6 attach at the nop. Traces name the site either way; func_ip and \
                 the cost differ.",
            ),
        ),
        (
            Applies::LibbpfFrom(1, 7),
            g(
                "libbpf-usdt-nop5-move",
                "libbpf",
                ">= 1.7",
                "USDT probes on a `nop; nop5` site",
                Native,
                "libbpf 1.7 probes the uprobe syscall (336, ENXIO outside the trampoline) and then attaches a `nop; nop5` \
                 site at the nop5, which 6.18+ kernels optimise; a `nop; nop10` site stays on the nop.",
            ),
        ),
    ]
}

/// The entries that apply to this build (`all`: every entry, whatever build).
pub fn registry(all: bool) -> Vec<Gap> {
    entries().into_iter().filter(|(a, _)| all || a.here()).map(|(_, g)| g).collect()
}

/// Class helper for bridges refusing a request.
pub fn unsupported(detail: String) -> Classified {
    Classified { class: ErrorClass::Unsupported, errno: None, detail }
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

    #[test]
    fn registry_ids_are_unique_and_this_build_has_its_bridges() {
        let all = registry(true);
        let mut ids: Vec<&str> = all.iter().map(|g| g.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        let here: Vec<String> = registry(false).into_iter().map(|g| g.id).collect();
        assert!(here.contains(&KPROBE_SESSION_BRIDGE.to_string()));
        assert_eq!(here.contains(&UPROBE_MULTI_SYS_BRIDGE.to_string()), !crate::api::HAS_UPROBE_MULTI_OPTS);
        assert_eq!(here.contains(&UPROBE_SESSION_RAW_BRIDGE.to_string()), crate::version::linked() < (1, 6));
    }
}
