//! probeconf's libbpf loader, as a harness that speaks go-harness/PROTOCOL.md
//! (`probeconf-libbpf-harness run|gaps|version`) and as a library the
//! probeconf runner can call in-process: the same code either way.
//!
//! In-process use:
//!
//! ```no_run
//! use libbpf_harness::{attach, protocol::Request, Options};
//! let req: Request = serde_json::from_str(r#"{"protocol":1,"object":"/abs/recorders.bpf.o","probes":[]}"#).unwrap();
//! match attach(&req, &Options::default()) {
//!     Ok(attached) => {
//!         // attached.probes: via / bridge / prog_id per probe, as the `attached` line
//!         // ... run the workload ...
//!         let drained = attached.drain().unwrap(); // raw struct pc_event records
//!         println!("{} records, {} dropped", drained.records.len(), drained.dropped);
//!     }
//!     Err(failure) => println!("{}", serde_json::to_string(&failure.line()).unwrap()),
//! }
//! ```
//!
//! The bridges, what a tool on libbpf-rs would import (kprobe and uprobe
//! sessions, kretprobes with cookies, uprobe_multi on libbpf-rs 0.25, the
//! session-kfunc prototype), are the module [`bridge`]: extension traits on
//! libbpf-rs's `ProgramMut` and `OpenProgramMut`, documented there with the
//! minimum kernel and libbpf of each.
//!
//! Modules: [`bridge`] (the bridges, public API), [`protocol`] (wire types,
//! strict decoding, validation), [`loader`] (load + attach + drain), [`api`]
//! (the libbpf-rs version differences), [`compat`] (the registry and the ids
//! probes are reported with), [`classify`] (the shared errno table),
//! [`session`] (the JSON-lines shell), [`version`] (what is linked), [`log`]
//! (libbpf's log).

#[cfg(not(any(feature = "api-0-25", feature = "api-0-26", feature = "api-0-27")))]
compile_error!("enable exactly one of the features api-0-25, api-0-26, api-0-27 (the libbpf-rs API, src/api.rs)");

pub mod api;
pub mod bridge;
pub mod classify;
pub mod compat;
pub mod loader;
pub mod log;
pub mod protocol;
pub mod session;
pub mod tracing;
pub mod version;

pub use loader::{attach, Attached, Drained, Options};
