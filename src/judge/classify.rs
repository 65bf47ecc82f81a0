//! Error classes: what a loader's failure means, in the words cases use
//! (`unsupported`, `invalid`, `not-found`, `permission`, `other`). The one
//! errno → class table is bpf/errno-classes.tsv, generated into both the
//! libbpf harness crate (its build.rs) and the Go harness
//! (go-harness/internal/classify, `go generate`); the runner re-exports the
//! Rust half rather than keeping a table of its own.

pub use libbpf_harness::classify::{classify_errno, classify_libbpf, errno_in_text, errno_of, Classified, ErrorClass};

/// Every class, for the vocabulary of error expectations.
pub const ALL_CLASSES: [ErrorClass; 5] =
    [ErrorClass::Unsupported, ErrorClass::Invalid, ErrorClass::NotFound, ErrorClass::Permission, ErrorClass::Other];
