//! The libbpf side of the compatibility layer: what libbpf-rs 0.27.2 does not
//! expose, reached through the re-exported `libbpf_sys`. Each bridge is listed
//! in the registry (src/loaders/compat.rs) under the id given here.

use crate::judge::classify::{classify_errno, Classified};
use libbpf_rs::{AsRawLibbpf, Link, ProgramMut};
use std::ffi::CString;
use std::ptr::NonNull;

/// Registry id of the kprobe session bridge.
pub const KPROBE_SESSION_BRIDGE: &str = "libbpf-rs-kprobe-session";

/// `bpf_program__attach_kprobe_multi_opts` with every field, including
/// `.session`, which `libbpf_rs::KprobeMultiOpts` lacks.
pub fn attach_kprobe_multi(
    prog: &ProgramMut<'_>,
    symbols: &[String],
    cookies: &[u64],
    retprobe: bool,
    session: bool,
) -> Result<Link, Classified> {
    let invalid = |detail: String| Classified { class: crate::judge::classify::ErrorClass::Invalid, errno: None, detail };
    if symbols.is_empty() || cookies.len() != symbols.len() {
        return Err(invalid(format!("{} symbols with {} cookies", symbols.len(), cookies.len())));
    }
    let csyms: Vec<CString> = symbols
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| invalid(format!("symbol {s:?} contains NUL"))))
        .collect::<Result<_, _>>()?;
    let mut sym_ptrs: Vec<*const libc::c_char> = csyms.iter().map(|s| s.as_ptr()).collect();
    let opts = libbpf_rs::libbpf_sys::bpf_kprobe_multi_opts {
        sz: size_of::<libbpf_rs::libbpf_sys::bpf_kprobe_multi_opts>() as _,
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
    let raw = unsafe {
        libbpf_rs::libbpf_sys::bpf_program__attach_kprobe_multi_opts(prog.as_libbpf_object().as_ptr(), std::ptr::null(), &opts)
    };
    // libbpf returns NULL and sets errno (libbpf 1.0 mode, which libbpf-rs enables).
    match NonNull::new(raw) {
        // SAFETY: a non-NULL bpf_link from libbpf, owned by nobody else; Link
        // destroys it exactly once on drop.
        Some(p) => Ok(unsafe { Link::from_ptr(p) }),
        None => {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
            Err(Classified {
                class: classify_errno(errno),
                errno: Some(errno),
                detail: format!(
                    "bpf_program__attach_kprobe_multi_opts(session={session}, retprobe={retprobe}): {}",
                    std::io::Error::from_raw_os_error(errno)
                ),
            })
        }
    }
}

/// libbpf's pid convention for a neutral filter: -1 means all processes
/// (0 would mean the calling process, i.e. probeconf itself).
pub fn libbpf_pid(filter: crate::plan::PidFilter) -> i32 {
    match filter {
        crate::plan::PidFilter::Pid { pid } => pid as i32,
        crate::plan::PidFilter::All => -1,
    }
}
