//! A case resolved into what every loader needs to do: which object, which
//! program per probe, binaries as absolute paths in the run directory, flags,
//! and the recorder config. Loader-neutral: both loaders attach from a Plan.

use crate::observe::abi::{consts, RecorderConfig, TargetBehaviour, TargetTable};
use crate::run::artifacts::{KfuncVariant, RunDir};
use crate::case::{Case, CookieWrite, PidScope, Probe, ProbeKind, SkipReturn, StackFrame, Target};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize)]
pub struct ProbePlan {
    pub name: String,
    pub index: u32,
    pub kind: ProbeKind,
    pub program: &'static str,
    /// The object this probe's instance is loaded from.
    pub object: PathBuf,
    /// Absolute path of the probed binary; `None` for kernel probes.
    pub binary: Option<PathBuf>,
    pub targets: Vec<Target>,
    pub pid: PidScope,
    pub retprobe: bool,
    pub session: bool,
    pub cookie_mode: u32,
    pub cookie_value: u64,
    pub return_filter: u32,
    pub filter_arg: u64,
    pub filter_tgid: bool,
    /// Arguments the trace shows at entry.
    pub args: u8,
    /// Bits of the return value that are defined (64 or 32).
    pub ret_width: u8,
    /// Report the program's recursion misses in the trace.
    pub recursion_misses: bool,
    /// Per-target behaviour (`struct pc_targets`), indexed by the attach
    /// cookie: one entry per target, in order. `None`: the probe's knobs for
    /// every hit (the section is not sent and stays zero).
    pub per_target: Option<TargetTable>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub case_id: String,
    pub variant: KfuncVariant,
    /// The object file (in the run directory) both loaders load.
    pub object: PathBuf,
    /// Both builds, for a loader that selects the build itself (the Go
    /// harness does, from kernel BTF); `None` when the case forces one.
    pub selectable: Option<(PathBuf, PathBuf)>,
    pub probes: Vec<ProbePlan>,
    pub run: String,
    pub run_other: Option<String>,
    /// The case's bpftrace program, if it has one (run by bpftrace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpftrace: Option<String>,
    /// The run directory (probe-target and libprobetarget.so are in it).
    pub run_dir: PathBuf,
}

/// The processes of one run, known once they are spawned.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Pids {
    pub target: u32,
    pub other: Option<u32>,
}

/// A link's process filter in neutral terms; each loader maps it onto its
/// library's convention (libbpf: -1 = all; cilium: 0 = all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "kebab-case")]
pub enum PidFilter {
    Pid { pid: u32 },
    All,
}

impl ProbePlan {
    pub fn pid_filter(&self, pids: &Pids) -> PidFilter {
        match self.pid {
            PidScope::Target => PidFilter::Pid { pid: pids.target },
            PidScope::Other => PidFilter::Pid { pid: pids.other.expect("validated: pid other needs run_other") },
            PidScope::All => PidFilter::All,
        }
    }

    pub fn config(&self, pids: &Pids) -> RecorderConfig {
        RecorderConfig {
            probe_index: self.index,
            filter_tgid: if self.filter_tgid { pids.target } else { 0 },
            return_filter: self.return_filter,
            cookie_mode: self.cookie_mode,
            filter_arg: self.filter_arg,
            cookie_value: self.cookie_value,
        }
    }
}

/// `session_cookie` as `(cookie_mode, cookie_value)`.
fn cookie_knob(w: CookieWrite) -> (u64, u64) {
    match w {
        CookieWrite::None => (consts::CM_NONE, 0),
        CookieWrite::Const(v) => (consts::CM_CONST, v),
        CookieWrite::Arg0 => (consts::CM_ARG0, 0),
        CookieWrite::ConstPlusArg0(v) => (consts::CM_CONST_PLUS_ARG0, v),
        CookieWrite::AttachCookie => (consts::CM_ATTACH_COOKIE, 0),
    }
}

/// `skip_return` as `(return_filter, filter_arg)`.
fn skip_knob(r: SkipReturn) -> (u64, u64) {
    match r {
        SkipReturn::Never => (consts::RF_NEVER, 0),
        SkipReturn::Always => (consts::RF_ALWAYS, 0),
        SkipReturn::OddArg0 => (consts::RF_ODD_ARG0, 0),
        SkipReturn::EvenArg0 => (consts::RF_EVEN_ARG0, 0),
        SkipReturn::Arg0Eq(n) => (consts::RF_ARG0_EQ, n),
        SkipReturn::Arg0Lt(n) => (consts::RF_ARG0_LT, n),
    }
}

/// The per-target table of a probe with per-target behaviour: entry i is
/// target i's knobs, each one the target's own or else the probe's.
pub fn target_table(p: &Probe) -> Option<TargetTable> {
    if !p.per_target() {
        return None;
    }
    let entries = p
        .targets
        .iter()
        .map(|t| {
            let own = t.record.clone().unwrap_or_default();
            let (cookie_mode, cookie_value) = cookie_knob(own.session_cookie.unwrap_or(p.record.session_cookie));
            let (return_filter, filter_arg) = skip_knob(own.skip_return.unwrap_or(p.record.skip_return));
            TargetBehaviour { return_filter: return_filter as u32, cookie_mode: cookie_mode as u32, filter_arg, cookie_value, tag: own.tag }
        })
        .collect();
    Some(TargetTable { entries })
}

/// The object build a case loads on a kernel whose session kfuncs look like `kernel`.
pub fn object_variant(case: &Case, kernel: KfuncVariant) -> KfuncVariant {
    match (case.object, kernel) {
        (crate::case::ObjectChoice::Matching, v) => v,
        (crate::case::ObjectChoice::Opposite, KfuncVariant::NoArg) => KfuncVariant::Ctx,
        (crate::case::ObjectChoice::Opposite, KfuncVariant::Ctx) => KfuncVariant::NoArg,
    }
}

/// `kernel_variant` is the running kernel's session-kfunc prototype.
pub fn plan(case: &Case, dir: &RunDir, kernel_variant: KfuncVariant) -> Plan {
    let variant = object_variant(case, kernel_variant);
    let case_dir = case.path.parent().map(PathBuf::from).unwrap_or_default();
    let probes = case
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (cookie_mode, cookie_value) = cookie_knob(p.record.session_cookie);
            let (return_filter, filter_arg) = skip_knob(p.record.skip_return);
            ProbePlan {
                name: p.name.clone(),
                index: i as u32,
                kind: p.kind,
                program: match p.record.stack_frame {
                    StackFrame::Small => p.kind.program(),
                    StackFrame::Large => p.kind.large_frame_program(),
                },
                object: if p.kind == crate::case::ProbeKind::Usdt {
                    dir.usdt_object()
                } else if p.kind.is_tracing() && !p.kind.is_session() {
                    dir.tracing_object()
                } else if p.kind.is_session() {
                    dir.object(variant)
                } else {
                    dir.recorders_object()
                },
                binary: (!p.kind.is_kernel()).then(|| dir.resolve_binary(&p.binary, &case_dir)),
                targets: p.targets.clone(),
                pid: p.pid,
                retprobe: p.retprobe.unwrap_or(p.kind.is_return_only()),
                session: p.session.unwrap_or(p.kind.is_session()),
                cookie_mode: cookie_mode as u32,
                cookie_value,
                return_filter: return_filter as u32,
                filter_arg,
                filter_tgid: p.record.filter_tgid.unwrap_or(p.kind.is_kernel()),
                args: p.record.args.unwrap_or(if p.kind.is_kernel() { 0 } else { 2 }),
                ret_width: p.record.ret_width.unwrap_or(64),
                recursion_misses: p.record.recursion_misses,
                per_target: target_table(p),
            }
        })
        .collect();
    Plan {
        case_id: case.id.clone(),
        variant,
        object: dir.object(variant),
        // Only session probes depend on the build; a loader that selects it
        // itself (the harness) is given both, else the runner's choice.
        selectable: (case.object == crate::case::ObjectChoice::Matching && case.probes.iter().any(|p| p.kind.is_session()))
            .then(|| (dir.object(KfuncVariant::NoArg), dir.object(KfuncVariant::Ctx))),
        probes,
        run: case.run.clone(),
        run_other: case.run_other.clone(),
        bpftrace: case.bpftrace.clone(),
        run_dir: dir.path().to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;
    use std::path::Path;

    #[test]
    fn target_table_takes_each_knob_from_the_target_or_the_probe() {
        let text = r#"
id: pt
description: d
probes:
  - name: s
    kind: uprobe.session
    targets:
      - {symbol: pc_leaf, record: {session_cookie: {const: 0x10}, skip_return: always}}
      - {symbol: pc_nop5, record: {skip_return: {arg0-lt: 4}}}
      - {symbol: pc_nop1, cookie: 0x99}
    record: {session_cookie: {const-plus-arg0: 0x100}, skip_return: odd-arg0}
  - name: km
    kind: kprobe.multi
    targets:
      - {symbol: __x64_sys_close, record: {tag: 0xa0}}
      - {symbol: __x64_sys_dup}
run: call leaf 1
expect: {trace: x}
"#;
        let c = Case::parse(text, Path::new("x")).unwrap();
        let t = target_table(&c.probes[0]).unwrap();
        let b = |rf: u64, fa, cm: u64, cv| TargetBehaviour { return_filter: rf as u32, filter_arg: fa, cookie_mode: cm as u32, cookie_value: cv, tag: None };
        assert_eq!(
            t.entries,
            vec![
                b(consts::RF_ALWAYS, 0, consts::CM_CONST, 0x10),
                b(consts::RF_ARG0_LT, 4, consts::CM_CONST_PLUS_ARG0, 0x100),
                // No record (its cookie falls back past the table): the probe's knobs.
                b(consts::RF_ODD_ARG0, 0, consts::CM_CONST_PLUS_ARG0, 0x100),
            ]
        );
        let t = target_table(&c.probes[1]).unwrap();
        assert_eq!(t.entries.iter().map(|e| e.tag).collect::<Vec<_>>(), [Some(0xa0), None]);
        assert_eq!(c.probes[1].targets.iter().map(|t| t.cookie()).collect::<Vec<_>>(), [0, 1]);
        // The request carries the table only for these probes.
        let plain = Case::parse(&text.replace("record: {tag: 0xa0}", "cookie: 5"), Path::new("x")).unwrap();
        assert!(target_table(&plain.probes[1]).is_none());
    }
}
