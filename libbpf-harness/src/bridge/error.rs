//! The bridges' error: the errno the kernel or libbpf gave, the class the
//! shared errno table (`bpf/errno-classes.tsv`) puts it in, the words of the
//! call that failed, and a hint at the likely cause, in the manner of
//! cilium/ebpf's `ErrNotSupported` wrapping ("kernel lacks uprobe sessions
//! (Linux 6.13+)").

use crate::classify::{classify_errno, classify_libbpf, Classified, ErrorClass};
use std::fmt;

/// What a bridge was doing when it failed; it chooses the hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A kprobe or kretprobe (perf event) link.
    Kprobe,
    /// A kprobe_multi link without the session flag.
    KprobeMulti,
    /// A kprobe session link (attach type 56).
    KprobeSession,
    /// A uprobe_multi link without the session flag.
    UprobeMulti,
    /// A uprobe session link (attach type 57).
    UprobeSession,
    /// Naming an fentry/fexit/fsession program's target before load.
    TracingTarget,
    /// An fentry/fexit/fsession link (BPF_LINK_CREATE of a tracing program).
    Tracing,
    /// A tracing multi link (attach types 59, 60, 61).
    TracingMulti,
}

/// The error of every bridge call.
///
/// [`errno`](Self::errno) is what the kernel or libbpf answered (a libbpf
/// error such as `LIBBPF_ERRNO__FORMAT`, 4001, included), `None` for a request
/// the bridge refused before any call (a NUL in a symbol, cookies that do not
/// match the symbols). [`class`](Self::class) is probeconf's class of it
/// ([`ErrorClass::Unsupported`] for EOPNOTSUPP, ENOTSUPP and ENOSYS, ...).
/// [`hint`](Self::hint) names the likely cause when the errno has a usual one
/// for that kind of link; it is a guess from the errno, not a probe of the
/// kernel.
///
/// `Display` prints the call and its error, then the hint:
/// `uprobe session link_create (attach type 57, flags 0x0): Invalid argument (os error 22)
/// (hint: kernel lacks uprobe sessions (Linux 6.13+) ...)`.
///
/// It converts into the harness's [`Classified`] (the class, errno and the
/// words, without the hint) with `From`, and into `std::io::Error` (the errno,
/// or `InvalidInput` without one) for `?` in code that returns `io::Result`.
///
/// ```
/// use libbpf_harness::bridge::{BridgeError, Op};
/// use libbpf_harness::classify::{Classified, ErrorClass};
///
/// let e = BridgeError::from_errno(libc::EINVAL, "uprobe session link_create".into()).with_hint(Op::UprobeSession);
/// assert_eq!(e.errno(), Some(libc::EINVAL));
/// assert!(e.hint().unwrap().contains("Linux 6.13"));
/// let c: Classified = e.into();
/// assert_eq!(c.class, ErrorClass::Invalid);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeError {
    class: ErrorClass,
    errno: Option<i32>,
    detail: String,
    hint: Option<String>,
}

impl BridgeError {
    /// A failed call that set `errno` (positive); the class comes from the
    /// shared errno table.
    pub fn from_errno(errno: i32, detail: String) -> Self {
        BridgeError { class: classify_errno(errno), errno: Some(errno), detail, hint: None }
    }

    /// A request the bridge refuses before any call: class
    /// [`ErrorClass::Invalid`], no errno.
    pub fn invalid(detail: impl Into<String>) -> Self {
        BridgeError { class: ErrorClass::Invalid, errno: None, detail: detail.into(), hint: None }
    }

    /// errno of the last failed libc or libbpf call (libbpf 1.0 mode sets it), as
    /// [`from_errno`](Self::from_errno) with `detail` followed by the errno's text.
    pub(crate) fn last_os_error(detail: impl FnOnce() -> String) -> Self {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        Self::from_errno(errno, format!("{}: {}", detail(), std::io::Error::from_raw_os_error(errno)))
    }

    /// The same error with `what` (the call, in words) before its detail.
    pub(crate) fn reworded(mut self, what: String) -> Self {
        self.detail = format!("{what}: {}", self.detail);
        self
    }

    /// Adds the usual cause of this errno for `op`, if there is one.
    pub fn with_hint(mut self, op: Op) -> Self {
        if self.hint.is_none() {
            self.hint = self.errno.and_then(|e| hint(op, e));
        }
        self
    }

    /// The errno, if a call failed (`None`: the bridge refused the request).
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// probeconf's class of the error (the shared errno table).
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// Whether the kernel (or the linked libbpf) lacks what was asked for,
    /// cilium's `errors.Is(err, ErrNotSupported)`: class `unsupported`.
    pub fn is_not_supported(&self) -> bool {
        self.class == ErrorClass::Unsupported
    }

    /// The failed call and its error, without the hint.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The likely cause, when the errno has a usual one for the operation.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for BridgeError {}

impl From<BridgeError> for Classified {
    /// The class, the errno and the detail; the hint is left out, so the
    /// harness's error lines read as they did before the bridges had hints.
    fn from(e: BridgeError) -> Classified {
        Classified { class: e.class, errno: e.errno, detail: e.detail }
    }
}

impl From<Classified> for BridgeError {
    fn from(c: Classified) -> BridgeError {
        BridgeError { class: c.class, errno: c.errno, detail: c.detail, hint: None }
    }
}

impl From<libbpf_rs::Error> for BridgeError {
    /// libbpf-rs's error, classified as the harness classifies it (errno
    /// first, then libbpf-rs's kind).
    fn from(e: libbpf_rs::Error) -> BridgeError {
        classify_libbpf(&e).into()
    }
}

impl From<BridgeError> for std::io::Error {
    fn from(e: BridgeError) -> std::io::Error {
        let kind = match e.errno {
            Some(n) => std::io::Error::from_raw_os_error(n).kind(),
            None => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

/// ENOTSUPP, the kernel-internal "not supported" that leaks out of some BPF paths.
const ENOTSUPP: i32 = 524;

fn kprobe_pmu() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

/// The usual cause of `errno` for `op` (a guess from the errno alone, except
/// for kprobes, where the kprobe PMU's presence decides between two causes).
fn hint(op: Op, errno: i32) -> Option<String> {
    let permission = "needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)";
    let s = match (op, errno) {
        (_, libc::EPERM | libc::EACCES) => permission,
        (Op::UprobeSession, libc::EINVAL) => {
            "kernel lacks uprobe sessions (Linux 6.13+), or the program was not loaded as SEC(\"uprobe.session\") \
             (expected attach type 57), or retprobe was asked with session"
        }
        (Op::UprobeMulti, libc::EINVAL) => {
            "kernel lacks uprobe_multi links (Linux 6.6+), or the program was not loaded as SEC(\"uprobe.multi\")"
        }
        (Op::UprobeSession | Op::UprobeMulti, libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS) => {
            "kernel without uprobe_multi links (Linux 6.6+ built with CONFIG_UPROBES)"
        }
        (Op::UprobeSession | Op::UprobeMulti, libc::ENOENT) => "binary or symbol not found (symbols are looked up in .dynsym, then .symtab)",
        (Op::UprobeSession | Op::UprobeMulti, libc::ESRCH) => "no such process, or a symbol defined twice in the binary",
        (Op::KprobeSession, libc::EINVAL) => {
            "kernel lacks kprobe sessions (Linux 6.10+), or the program was not loaded as SEC(\"kprobe.session\") \
             (expected attach type 56), or retprobe was asked with session"
        }
        (Op::KprobeSession | Op::KprobeMulti, libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS) => {
            "kernel without kprobe_multi links (Linux 5.18+ built with CONFIG_FPROBE)"
        }
        (Op::KprobeSession | Op::KprobeMulti, libc::ENOENT | libc::ESRCH) => {
            "a symbol is not traceable (not in /sys/kernel/tracing/available_filter_functions) or misspelt"
        }
        (Op::Kprobe, libc::ENOENT | libc::EOPNOTSUPP | ENOTSUPP) if !kprobe_pmu() => {
            "no kprobe PMU (/sys/bus/event_source/devices/kprobe): kernel built without CONFIG_KPROBES"
        }
        (Op::Kprobe, libc::ENOENT) => "symbol not in /proc/kallsyms, or misspelt",
        (Op::Kprobe, libc::EINVAL) => "kretprobes take no offset; or the offset is not an instruction boundary",
        (Op::TracingTarget, libc::ESRCH | libc::ENOENT) => {
            "no BTF FUNC of that name in vmlinux or a module's BTF (a misspelt, inlined or static function, or one pahole left out)"
        }
        (Op::Tracing, libc::EBUSY) => "the function has no ftrace entry (notrace), or this program is already linked to it",
        (Op::Tracing | Op::TracingMulti, libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS) => {
            "kernel without BPF trampolines for this attach type (fsession: Linux 7.0, x86_64 only)"
        }
        (Op::TracingMulti, libc::EINVAL) => {
            "kernel without the tracing multi link, or the program was not loaded with the multi attach type (59/60/61) \
             and attach_btf_id 0, or a duplicate or non-FUNC BTF id"
        }
        (Op::TracingMulti, libc::ENOENT) => "a function is not traceable (no ftrace entry)",
        (Op::TracingMulti, libc::E2BIG) => "too many functions for one link, or too many programs on one function's trampoline",
        _ => return None,
    };
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_and_conversions() {
        let e = BridgeError::from_errno(libc::EINVAL, "link_create: Invalid argument".into()).with_hint(Op::UprobeSession);
        assert!(e.to_string().starts_with("link_create: Invalid argument (hint: kernel lacks uprobe sessions (Linux 6.13+)"), "{e}");
        let c: Classified = e.clone().into();
        assert_eq!(c, Classified { class: ErrorClass::Invalid, errno: Some(libc::EINVAL), detail: "link_create: Invalid argument".into() });
        let e = BridgeError::from_errno(libc::EOPNOTSUPP, "x".into()).with_hint(Op::KprobeSession);
        assert!(e.is_not_supported() && e.hint().unwrap().contains("CONFIG_FPROBE"));
        assert_eq!(BridgeError::from_errno(libc::EBUSY, "x".into()).with_hint(Op::Kprobe).hint(), None);
        let e = BridgeError::invalid("symbol \"a\\0\" contains NUL");
        assert_eq!((e.class(), e.errno()), (ErrorClass::Invalid, None));
        let io: std::io::Error = BridgeError::from_errno(libc::ENOENT, "x".into()).into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
