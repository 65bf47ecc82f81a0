//! The one request builder: a [`Plan`] as the protocol's request
//! (go-harness/PROTOCOL.md), typed by the libbpf harness crate's
//! `protocol` module. Every loader gets exactly this request, whether it
//! runs in this process (libbpf) or as a harness program.

use crate::observe::abi::CONFIG_SECTION;
use crate::plan::{PidFilter, Pids, Plan};
use libbpf_harness::protocol::{Base64, Objects, Pid, Probe, Request, Target, PROTOCOL, SCOPE_ALL, SCOPE_PID};

pub fn request(plan: &Plan, pids: &Pids) -> Request {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let probes = plan
        .probes
        .iter()
        .map(|p| {
            let pid = match (p.kind.is_kernel(), p.pid_filter(pids)) {
                (true, _) | (false, PidFilter::All) => Pid { scope: SCOPE_ALL.into(), pid: None },
                (false, PidFilter::Pid { pid }) => Pid { scope: SCOPE_PID.into(), pid: Some(pid) },
            };
            Probe {
                name: p.name.clone(),
                program: p.program.to_string(),
                kind: p.kind.section().to_string(),
                // Probes whose program lives in another object than the
                // session build (plain recorders, USDT) name it.
                object: if p.object != plan.object && !p.kind.is_session() { path(&p.object) } else { String::new() },
                binary: p.binary.as_deref().map(path).unwrap_or_default(),
                targets: p
                    .targets
                    .iter()
                    .map(|t| Target { symbol: t.symbol.clone().unwrap_or_default(), offset: t.offset, cookie: t.cookie })
                    .collect(),
                pid: Some(pid),
                retprobe: (p.retprobe != p.kind.is_return_only()).then_some(p.retprobe),
                session: (p.session != p.kind.is_session()).then_some(p.session),
                rodata: [(CONFIG_SECTION.to_string(), Base64(p.config(pids).encode().to_vec()))].into_iter().collect(),
            }
        })
        .collect();
    match &plan.selectable {
        // The loader picks the build from kernel BTF itself (its compat
        // layer); the runner checks it picked what the Rust side picked.
        Some((noarg, ctx)) => Request { protocol: PROTOCOL, object: String::new(), objects: Some(Objects { noarg: path(noarg), ctx: path(ctx) }), probes },
        None => Request { protocol: PROTOCOL, object: path(&plan.object), objects: None, probes },
    }
}
