//! probeconf: a conformance suite for Linux BPF probes, run through libbpf
//! (libbpf-rs) and cilium/ebpf (the Go harness) on the same BPF object.
//!
//! The folders follow the pipeline of one case:
//!
//! [`case`] (the YAML model) → [`plan`] (what every loader must do) →
//! [`run`] (targets, a [`loaders`] attaches the recorders of bpf/, attempts) →
//! [`observe`] (decode the raw records, symbolise, normalise) →
//! [`judge`] (the checks, error classes, the regression gate) → [`report`].
//!
//! Around it: [`probing`] decides what the kernel supports by trying;
//! [`kernels`] and [`debian`] fetch Debian kernels (and packages) from the
//! archive; [`vm`] boots them under QEMU with probeconf as init; [`matrix`]
//! runs the suite in every kernel; [`bench`] measures probe costs.

pub mod bench;
pub mod cache;
pub mod case;
pub mod debian;
pub mod interrupt;
pub mod judge;
pub mod kernels;
pub mod loaders;
pub mod matrix;
pub mod observe;
pub mod plan;
pub mod probing;
pub mod report;
pub mod run;
pub mod vm;
