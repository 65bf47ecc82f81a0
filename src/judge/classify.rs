//! The one error classifier of the Rust side: every load/attach failure, from
//! libbpf-rs, from raw libbpf-sys calls or from a kernel probe, is mapped here
//! onto the suite's classes. The library's own message is kept in `detail`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The suite's error classes (`expect: error: class:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The kernel (or library) lacks the feature.
    Unsupported,
    /// The request is malformed: bad flags, not an ELF file, bad program.
    Invalid,
    /// A binary, symbol or process does not exist.
    NotFound,
    /// Not allowed (capabilities, lockdown).
    Permission,
    /// Anything else; never expected by a case.
    Other,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 5] =
        [ErrorClass::Unsupported, ErrorClass::Invalid, ErrorClass::NotFound, ErrorClass::Permission, ErrorClass::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Invalid => "invalid",
            ErrorClass::NotFound => "not-found",
            ErrorClass::Permission => "permission",
            ErrorClass::Other => "other",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libbpf's own error codes (`enum libbpf_errno`, 4000..4013): all describe a
/// malformed object or file, e.g. LIBBPF_ERRNO__FORMAT (4003) for "not ELF".
const LIBBPF_ERRNO_FIRST: i32 = 4000;
const LIBBPF_ERRNO_LAST: i32 = 4013;
/// The kernel-internal ENOTSUPP, which leaks to user space from BPF paths.
pub const ENOTSUPP: i32 = 524;

/// Maps a positive errno onto a class.
pub fn classify_errno(errno: i32) -> ErrorClass {
    match errno {
        libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS => ErrorClass::Unsupported,
        libc::ENOENT | libc::ESRCH | libc::ENXIO => ErrorClass::NotFound,
        libc::EPERM | libc::EACCES => ErrorClass::Permission,
        libc::EINVAL | libc::EBADF | libc::ENOEXEC | libc::E2BIG | libc::EFAULT => ErrorClass::Invalid,
        LIBBPF_ERRNO_FIRST..=LIBBPF_ERRNO_LAST => ErrorClass::Invalid,
        _ => ErrorClass::Other,
    }
}

/// A classified failure, with the library's own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classified {
    pub class: ErrorClass,
    pub errno: Option<i32>,
    pub detail: String,
}

/// Finds the errno in an error chain: an `io::Error` source, or libbpf-rs's
/// "(os error N)" rendering when the chain has been flattened into text.
pub fn errno_of(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = e.source();
    }
    let text = format!("{err:#}");
    let at = text.rfind("os error ")?;
    text[at + 9..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
}

/// Classifies a libbpf-rs error (errno first, then libbpf-rs's own kind).
pub fn classify_libbpf(err: &libbpf_rs::Error) -> Classified {
    let errno = errno_of(err);
    let class = match errno {
        Some(n) => classify_errno(n),
        None => match err.kind() {
            libbpf_rs::ErrorKind::NotFound => ErrorClass::NotFound,
            libbpf_rs::ErrorKind::PermissionDenied => ErrorClass::Permission,
            libbpf_rs::ErrorKind::Unsupported => ErrorClass::Unsupported,
            libbpf_rs::ErrorKind::InvalidInput | libbpf_rs::ErrorKind::InvalidData => ErrorClass::Invalid,
            _ => ErrorClass::Other,
        },
    };
    Classified { class, errno, detail: format!("{err:#}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_table() {
        assert_eq!(classify_errno(libc::EOPNOTSUPP), ErrorClass::Unsupported);
        assert_eq!(classify_errno(524), ErrorClass::Unsupported);
        assert_eq!(classify_errno(libc::ENOENT), ErrorClass::NotFound);
        assert_eq!(classify_errno(libc::ESRCH), ErrorClass::NotFound);
        assert_eq!(classify_errno(libc::EPERM), ErrorClass::Permission);
        assert_eq!(classify_errno(libc::EINVAL), ErrorClass::Invalid);
        assert_eq!(classify_errno(4003), ErrorClass::Invalid);
        assert_eq!(classify_errno(libc::EBUSY), ErrorClass::Other);
    }

    #[test]
    fn libbpf_errors_keep_errno_and_message() {
        let e = libbpf_rs::Error::from_raw_os_error(libc::ENOENT);
        let c = classify_libbpf(&e);
        assert_eq!(c.class, ErrorClass::NotFound);
        assert_eq!(c.errno, Some(libc::ENOENT));
        assert!(c.detail.contains("No such file"), "{}", c.detail);
        let e = libbpf_rs::Error::from_raw_os_error(4003);
        assert_eq!(classify_libbpf(&e).class, ErrorClass::Invalid);
    }
}
