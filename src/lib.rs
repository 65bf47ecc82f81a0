//! probeconf: a conformance suite for Linux BPF probes, run through libbpf
//! (libbpf-rs) and cilium/ebpf (the Go harness) on the same BPF object.
//!
//! The pipeline of one case: [`case`] (YAML) → [`plan`] → a [`loader`] attaches
//! the recorders of bpf/ to [`target`] processes → raw records → [`abi`] (the one
//! decoder) → [`normalise`] (the one normaliser) → [`check`] → [`report`].
//! [`probing`] decides what the kernel supports by trying, into the vocabulary
//! of [`features`].

pub mod abi;
pub mod artifacts;
pub mod attempts;
pub mod bench;
pub mod case;
pub mod census;
pub mod check;
pub mod compat;
pub mod classify;
pub mod features;
pub mod harness_build;
pub mod interrupt;
pub mod debian;
pub mod kernels;
pub mod libbpf_log;
pub mod loader;
pub mod matrix;
pub mod matrix_run;
pub mod normalise;
pub mod plan;
pub mod preempt;
pub mod priv_stack;
pub mod probing;
pub mod prog_stats;
pub mod regression;
pub mod report;
pub mod runner;
pub mod shard;
pub mod symbolize;
pub mod target;
pub mod vm;
