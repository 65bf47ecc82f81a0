//! The one request builder: a [`Plan`] as the protocol's request
//! (go-harness/PROTOCOL.md), typed by the libbpf harness crate's
//! `protocol` module. Every loader gets exactly this request, whether it
//! runs in this process (libbpf) or as a harness program.

use crate::observe::abi::{CONFIG_SECTION, TARGETS_SECTION};
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
                    .map(|t| Target { symbol: t.symbol.clone().unwrap_or_default(), offset: t.offset, cookie: t.cookie() })
                    .collect(),
                pid: Some(pid),
                retprobe: (p.retprobe != p.kind.is_return_only()).then_some(p.retprobe),
                session: (p.session != p.kind.is_session()).then_some(p.session),
                // The per-target table only for probes that have one: every
                // other request stays as it was, the section zero (mode off).
                rodata: std::iter::once((CONFIG_SECTION.to_string(), Base64(p.config(pids).encode().to_vec())))
                    .chain(p.per_target.as_ref().map(|t| (TARGETS_SECTION.to_string(), Base64(t.encode().to_vec()))))
                    .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;
    use crate::observe::abi::{CONFIG_SIZE, TARGETS_SIZE};
    use crate::run::artifacts::{KfuncVariant, RunDir};
    use std::path::Path;

    /// The per-target table goes only to probes that have one, with index
    /// cookies; every other probe's request is what it always was.
    #[test]
    fn per_target_table_only_where_given() {
        let text = r#"
id: pair
description: d
probes:
  - name: um
    kind: uprobe.multi
    targets: &hooks
      - {symbol: pc_leaf, record: {tag: 0xa0}}
      - {symbol: pc_nop5}
  - name: urm
    kind: uretprobe.multi
    targets: *hooks
  - name: plain
    kind: uprobe.multi
    targets: [{symbol: pc_leaf, cookie: 7}]
run: call leaf 1
expect: {trace: x}
"#;
        let case = Case::parse(text, Path::new("pair.yaml")).unwrap();
        let dir = RunDir::new().unwrap();
        let plan = crate::plan::plan(&case, &dir, KfuncVariant::NoArg);
        let req = request(&plan, &Pids { target: 42, other: None });
        let sections = |i: usize| req.probes[i].rodata.iter().map(|(k, v)| (k.as_str(), v.0.len())).collect::<Vec<_>>();
        let both = vec![(CONFIG_SECTION, CONFIG_SIZE), (TARGETS_SECTION, TARGETS_SIZE)];
        assert_eq!(sections(0), both);
        assert_eq!(sections(1), both);
        assert_eq!(req.probes[0].rodata[TARGETS_SECTION].0, req.probes[1].rodata[TARGETS_SECTION].0, "one shared config: identical tables");
        assert_eq!(sections(2), vec![(CONFIG_SECTION, CONFIG_SIZE)]);
        let cookies = |i: usize| req.probes[i].targets.iter().map(|t| t.cookie).collect::<Vec<_>>();
        assert_eq!((cookies(0), cookies(1), cookies(2)), (vec![0, 1], vec![0, 1], vec![7]));
    }
}
