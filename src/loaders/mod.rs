//! The loaders: one implementation per BPF library, behind one trait, so the
//! runner, the checks and the reports never know which library ran.
//!
//! A loader loads the shared object once per probe (each instance has its own
//! `.rodata.pc_cfg`), shares the ring buffer between instances, attaches, and
//! later drains the raw records. Decoding and normalisation happen outside, once.

pub mod bpftrace;
pub mod compat;
pub mod go_build;
pub mod harness;
pub mod libbpf;
pub mod libbpf_build;
pub mod registry;
pub mod request;

use crate::case::LoaderId;
use crate::judge::classify::Classified;
use crate::plan::{Pids, Plan};
use serde::{Deserialize, Serialize};

/// Where in a run a loader failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailPhase {
    /// Opening or loading the object (verifier, kfunc resolution).
    Load,
    /// Creating links.
    Attach,
    /// Reading the events back.
    Drain,
    /// The harness process itself (crash, protocol violation).
    Harness,
}

impl std::fmt::Display for FailPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailPhase::Load => "load",
            FailPhase::Attach => "attach",
            FailPhase::Drain => "drain",
            FailPhase::Harness => "harness",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderError {
    pub phase: FailPhase,
    /// The probe being loaded or attached, if any.
    pub probe: Option<String>,
    #[serde(flatten)]
    pub error: Classified,
}

impl std::fmt::Display for LoaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.phase)?;
        if let Some(p) = &self.probe {
            write!(f, " for probe `{p}`")?;
        }
        write!(f, " ({}): {}", self.error.class, self.error.detail)
    }
}

/// Whether a probe went through the library's own API or the compatibility layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViaKind {
    Native,
    Compat,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Via {
    pub probe: String,
    pub via: ViaKind,
    /// The compatibility registry entry used (src/loaders/compat.rs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The kernel's id of the probe's program (per-program counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
}

/// The raw records of one run.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    pub records: Vec<Vec<u8>>,
    /// Events the BPF side could not reserve (ring buffer full).
    pub dropped: u64,
    /// A client that prints its own events (bpftrace): what it printed, in
    /// place of raw records.
    pub client: Option<Vec<crate::observe::normalise::ClientEvent>>,
    /// What the loader wants said about the run (bpftrace's stderr when it
    /// printed no event at all), appended to the result's detail.
    pub note: Option<String>,
}

/// The library behind a loader, for report headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryInfo {
    pub loader: LoaderId,
    pub library: String,
    pub version: String,
}

pub struct AttachRequest<'a> {
    pub plan: &'a Plan,
    pub pids: Pids,
}

pub trait Loader: Send + Sync {
    fn id(&self) -> LoaderId;
    /// The name in reports: `libbpf`, `cilium`, or `cilium@v0.20.0` for a
    /// library version other than the pinned one.
    fn label(&self) -> String {
        self.id().to_string()
    }
    fn library(&self) -> LibraryInfo;
    /// How a fresh process opens this same loader again (further attempts of
    /// a case run in a child process); `None` for a loader that cannot be.
    fn respawn(&self) -> Option<registry::LoaderSpec> {
        None
    }
    /// Objects this loader brings, built with its library's headers, by the
    /// file name of the runner's object they replace (the USDT recorder of an
    /// older libbpf: usdt.bpf.h's layout is the library's).
    fn own_objects(&self) -> Vec<(String, std::path::PathBuf)> {
        Vec::new()
    }
    /// Whether this loader can run the case at all; `Err(why)` makes the run
    /// `skip`. libbpf and cilium run every case except bpftrace programs.
    fn expresses(&self, case: &crate::case::Case) -> Result<(), String> {
        match &case.bpftrace {
            Some(_) => Err("a bpftrace case: only bpftrace runs it (--loader bpftrace@VERSION)".into()),
            None => Ok(()),
        }
    }
    /// Loads and attaches every probe of the plan. On error nothing stays attached.
    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError>;
}

/// Probes that are attached. Dropping it detaches everything.
pub trait Attached {
    fn vias(&self) -> Vec<Via>;
    /// What a client (bpftrace) created in the kernel, counted while attached.
    fn census(&self) -> Option<crate::probing::census::ClientCensus> {
        None
    }
    /// Reads every pending record, then detaches and unloads.
    fn drain(self: Box<Self>) -> Result<Drained, LoaderError>;
}
