//! The libbpf loader in this process: the libbpf harness crate
//! (libbpf-harness/, libbpf-rs 0.27.2 on libbpf 1.7) called as a library, on
//! the very request its `probeconf-libbpf-harness run` would get. Other
//! libbpf versions run as that harness program, built per version
//! ([`super::libbpf_build`]); this is the same code, only in-process for the
//! pinned version, which saves a process per case.

use super::{AttachRequest, Attached, Drained, FailPhase, LibraryInfo, Loader, LoaderError, Via};
use crate::case::LoaderId;
use libbpf_harness::protocol;

pub struct LibbpfLoader;

/// "1.7.0": the libbpf linked into this binary.
pub fn libbpf_version() -> String {
    libbpf_harness::version::libbpf_version()
}

fn loader_error(f: protocol::Failure) -> LoaderError {
    let phase = match f.phase {
        protocol::Phase::Load => FailPhase::Load,
        protocol::Phase::Attach => FailPhase::Attach,
        protocol::Phase::Drain => FailPhase::Drain,
        protocol::Phase::Protocol => FailPhase::Harness,
    };
    LoaderError { phase, probe: f.probe, error: f.error }
}

impl Loader for LibbpfLoader {
    fn id(&self) -> LoaderId {
        LoaderId::Libbpf
    }

    fn library(&self) -> LibraryInfo {
        let v = libbpf_harness::version::info();
        LibraryInfo { loader: LoaderId::Libbpf, library: "libbpf".into(), version: format!("{} (libbpf-rs {}, libbpf-sys {})", v.version, v.libbpf_rs, v.libbpf_sys) }
    }

    fn respawn(&self) -> Option<super::registry::LoaderSpec> {
        Some(super::registry::LoaderSpec::Libbpf)
    }

    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        let request = super::request::request(req.plan, &req.pids);
        let attached = libbpf_harness::attach(&request, &libbpf_harness::Options::default()).map_err(loader_error)?;
        super::harness::check_variant(req, &attached.choice)?;
        let vias = attached.probes.iter().cloned().map(super::harness::via).collect();
        Ok(Box::new(InProcess { attached, vias }))
    }
}

struct InProcess {
    attached: libbpf_harness::Attached,
    vias: Vec<Via>,
}

impl Attached for InProcess {
    fn vias(&self) -> Vec<Via> {
        self.vias.clone()
    }

    fn drain(self: Box<Self>) -> Result<Drained, LoaderError> {
        let d = self.attached.drain().map_err(loader_error)?;
        Ok(Drained { records: d.records, dropped: d.dropped, client: None, note: None })
    }
}
