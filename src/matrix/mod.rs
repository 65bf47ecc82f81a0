//! The kernel matrix: every case × kernel × loader, with each kernel's probed
//! features and config flags. This module holds the data model and renders it
//! as matrix.json, matrix.md, a self-contained matrix.html and a compact
//! terminal table. Booting the kernels is src/vm/; fetching them src/kernels/.


pub mod run;
pub mod shard;

use crate::judge::check::Verdict;
use crate::probing::features::{Feature, FeatureSet};
use crate::loaders::{LibraryInfo, ViaKind};
use crate::run::CaseResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Kernel config options worth showing next to the probed features.
pub const CONFIG_FLAGS: &[&str] = &[
    "CONFIG_KPROBES",
    "CONFIG_FPROBE",
    "CONFIG_UPROBES",
    "CONFIG_BPF_EVENTS",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_X86_KERNEL_IBT",
    "CONFIG_FUNCTION_TRACER",
    "CONFIG_DYNAMIC_FTRACE_WITH_ARGS",
];

/// The flags of [`CONFIG_FLAGS`] as set in a kernel config file (`y`, `m`, or `n` if unset).
pub fn config_flags(config_text: &str) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = CONFIG_FLAGS.iter().map(|f| (f.to_string(), "n".to_string())).collect();
    for line in config_text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if let Some(slot) = m.get_mut(k) {
                *slot = v.trim_matches('"').to_string();
            }
        }
    }
    m
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ColumnStatus {
    /// The guest ran every case and said so.
    Completed,
    /// The kernel panicked, hung, was missing, or the guest broke: every cell
    /// of the column is `error`.
    Error { reason: String, console_tail: String },
}

/// One kernel: its facts and all its results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelColumn {
    /// What was asked for, e.g. `6.12`.
    pub request: String,
    /// `uname -r` of the booted kernel, when known.
    pub release: String,
    pub status: ColumnStatus,
    pub features: Option<FeatureSet>,
    pub config: BTreeMap<String, String>,
    pub results: Vec<CaseResult>,
    pub wall_secs: f64,
    /// Kernel crashes during the column: the case that was running, and the
    /// console tail. The column resumed after each (its verdicts are `error`).
    #[serde(default)]
    pub crashes: Vec<Crash>,
    /// The preemption model the kernel was booted with (`preempt=`), if one
    /// was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<crate::case::PreemptMode>,
    /// The cases this column ran, when it ran a share of them (a shard);
    /// empty = every case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<String>,
    /// Where the column's time went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ColumnProfile>,
}

/// Seconds of one column, summed over its boots: from QEMU's start to the
/// guest's hello (firmware, kernel boot), feature probing, the cases, and
/// the rest (QEMU's exit, and the time lost to crashed boots before their
/// first line). The case time is split by phase, summed over every run of
/// every case; `attempts_s` is what further attempts (reruns, repeats) took.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnProfile {
    pub boots: usize,
    pub boot_s: f64,
    pub features_s: f64,
    pub cases_s: f64,
    pub other_s: f64,
    #[serde(default)]
    pub setup_s: f64,
    pub spawn_s: f64,
    #[serde(default)]
    pub symbols_s: f64,
    pub attach_s: f64,
    pub run_s: f64,
    pub drain_s: f64,
    pub normalise_s: f64,
    pub attempts_s: f64,
}

impl KernelColumn {
    /// The column's name: `7.3`, or `7.3 preempt=full`.
    pub fn label(&self) -> String {
        crate::matrix::shard::ColumnSpec { kernel: self.request.clone(), preempt: self.preempt }.label()
    }

    /// Whether this column was to run `case`.
    pub fn covers(&self, case: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|c| c == case)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Crash {
    pub case: String,
    pub reason: String,
    pub console_tail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseMeta {
    pub id: String,
    /// The kind of the case's first probe: the group the case is shown under.
    pub group: String,
    pub description: String,
    /// The case has `known:` issues. Where one applies its outcome is not
    /// deterministic (a race the kernel loses now and then): `pass` and `known`
    /// are then both the expected result, and the kernel snapshot shows either
    /// as `pass|known`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_known: bool,
    /// The kind of every probe of the case (the "can I use it" view counts
    /// a case for a kind when all its probes are of that kind).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The case expects a trace (not an error): it shows the kind working.
    #[serde(default)]
    pub expects_trace: bool,
}

/// One cell of the "can I use it" view: can probe kind K be used with this
/// loader on this kernel, as the cases of that kind found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usable {
    /// Every case of the kind passed with the library's own API.
    Native,
    /// They passed, some through the compatibility layer.
    Compat,
    /// The kernel lacks it (probed).
    Unsupported,
    /// A case of the kind failed, was flaky or errored.
    Broken,
    /// Only known kernel issues stand in the way.
    Known,
    /// No case covers this kind here.
    Untested,
}

impl Usable {
    pub fn as_str(self) -> &'static str {
        match self {
            Usable::Native => "native",
            Usable::Compat => "via compat",
            Usable::Unsupported => "unsupported",
            Usable::Broken => "broken",
            Usable::Known => "known issue",
            Usable::Untested => "·",
        }
    }
}

/// How the columns were run: the emulator, and the attempts per case.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunSettings {
    /// `qemu-system-x86_64 --version`'s first line.
    #[serde(default)]
    pub qemu: String,
    /// `tcg,thread=single`, `tcg,thread=multi` or `kvm`.
    #[serde(default)]
    pub accel: String,
    #[serde(default)]
    pub attempts: crate::run::attempts::AttemptPolicy,
}

/// What a shard's matrix is a share of: the whole plan, so that `merge` can
/// check that every share is there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard: crate::matrix::shard::Shard,
    pub columns: Vec<crate::matrix::shard::ColumnSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub generated_utc: String,
    pub libraries: Vec<LibraryInfo>,
    pub loaders: Vec<String>,
    pub cases: Vec<CaseMeta>,
    pub kernels: Vec<KernelColumn>,
    #[serde(default)]
    pub settings: RunSettings,
    /// Set when this is one shard's share of a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// One cell: the verdict of a case on a kernel through a loader; `None`
/// when the column was not to run that case (another shard's share).
pub struct Cell<'a> {
    pub verdict: Option<Verdict>,
    pub compat: bool,
    pub result: Option<&'a CaseResult>,
}

impl Matrix {
    pub fn cell<'k>(&self, case: &str, kernel: &'k KernelColumn, loader: &str) -> Cell<'k> {
        if !kernel.covers(case) {
            return Cell { verdict: None, compat: false, result: None };
        }
        // A result is shown even from a column that ended in an error: the
        // cases it did run keep their verdicts; the others are errors.
        match kernel.results.iter().find(|r| r.case == case && r.loader == loader) {
            Some(r) => Cell { verdict: Some(r.verdict), compat: r.via == ViaKind::Compat, result: Some(r) },
            None => Cell { verdict: Some(Verdict::Error), compat: false, result: None },
        }
    }

    /// Cases in display order: grouped by kind, in the order kinds are declared.
    pub fn grouped_cases(&self) -> Vec<(&str, Vec<&CaseMeta>)> {
        let mut groups: Vec<(&str, Vec<&CaseMeta>)> = Vec::new();
        let order: Vec<&str> = crate::case::ProbeKind::ALL.iter().map(|k| k.section()).collect();
        let mut cases: Vec<&CaseMeta> = self.cases.iter().collect();
        cases.sort_by_key(|c| (order.iter().position(|k| *k == c.group).unwrap_or(usize::MAX), c.id.clone()));
        for c in cases {
            match groups.last_mut() {
                Some((g, v)) if *g == c.group => v.push(c),
                _ => groups.push((&c.group, vec![c])),
            }
        }
        groups
    }

    /// The probe kinds the cases cover, in declaration order.
    pub fn kinds(&self) -> Vec<&'static str> {
        crate::case::ProbeKind::ALL
            .iter()
            .map(|k| k.section())
            .filter(|k| self.cases.iter().any(|c| c.kinds.len() == 1 && c.kinds[0] == *k))
            .collect()
    }

    /// Can `kind` be used with `loader` on `kernel`? From the cases that show
    /// the kind working (every probe of that kind, a trace expected).
    pub fn usable(&self, kind: &str, kernel: &KernelColumn, loader: &str) -> (Usable, Vec<String>) {
        let cases: Vec<&CaseMeta> = self.cases.iter().filter(|c| c.expects_trace && !c.kinds.is_empty() && c.kinds.iter().all(|k| k == kind)).collect();
        let cells: Vec<(&str, Cell)> = cases.iter().map(|c| (c.id.as_str(), self.cell(&c.id, kernel, loader))).filter(|(_, c)| c.verdict.is_some()).collect();
        if cells.is_empty() {
            return (Usable::Untested, Vec::new());
        }
        let with = |pred: &dyn Fn(Verdict) -> bool| cells.iter().filter(|(_, c)| c.verdict.is_some_and(pred)).map(|(id, _)| id.to_string()).collect::<Vec<_>>();
        let broken = with(&|v| v.is_failure());
        if !broken.is_empty() {
            return (Usable::Broken, broken);
        }
        let known = with(&|v| v == Verdict::Known);
        let passed = with(&|v| v == Verdict::Pass);
        if passed.is_empty() {
            return if known.is_empty() { (Usable::Unsupported, with(&|v| v == Verdict::Unsupported)) } else { (Usable::Known, known) };
        }
        let compat: Vec<String> = cells.iter().filter(|(_, c)| c.verdict == Some(Verdict::Pass) && c.compat).map(|(id, _)| id.to_string()).collect();
        if compat.is_empty() {
            (Usable::Native, passed)
        } else {
            (Usable::Compat, compat)
        }
    }

    pub fn counts(&self) -> BTreeMap<Verdict, usize> {
        let mut m = BTreeMap::new();
        for k in &self.kernels {
            for c in &self.cases {
                for l in &self.loaders {
                    if let Some(v) = self.cell(&c.id, k, l).verdict {
                        *m.entry(v).or_insert(0) += 1;
                    }
                }
            }
        }
        m
    }
}

fn short(v: Option<Verdict>) -> &'static str {
    v.map(Verdict::symbol).unwrap_or("·")
}

/// The legend line of the text renderings.
fn legend() -> String {
    let mut parts: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| {
            let what = match v {
                Verdict::Unsupported => "unsupported (probed)",
                Verdict::Known => "known issue",
                other => other.as_str(),
            };
            format!("{} {what}", v.symbol())
        })
        .collect();
    parts.push("ᶜ via the compatibility layer".into());
    parts.join(" · ")
}

fn count_line(m: &Matrix, sep: &str) -> String {
    let counts = m.counts();
    Verdict::ALL.iter().map(|v| format!("{} {}", counts.get(v).unwrap_or(&0), v)).collect::<Vec<_>>().join(sep)
}

fn kernel_title(k: &KernelColumn) -> String {
    let mut t = if k.release.is_empty() { k.request.clone() } else { k.release.clone() };
    if let Some(p) = k.preempt {
        t.push_str(&format!(" preempt={p}"));
    }
    t
}

pub fn json(m: &Matrix) -> String {
    let mut v = serde_json::to_value(m).expect("matrix serialises");
    let rows = session_merge_rows(m);
    if !rows.is_empty() {
        v["session_merge"] = serde_json::to_value(&rows).expect("rows serialise");
    }
    serde_json::to_string_pretty(&v).expect("matrix serialises")
}

/// One cell of the "merged into a session" row: a client loader (bpftrace)
/// on a kernel, from the census of every case with a kprobe/kretprobe pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionMergeCell {
    pub kernel: String,
    pub loader: String,
    /// `yes`, `no`, `mixed`, or `–` (no pair attached: unsupported, skipped).
    pub merged: String,
    /// Cases whose pair became one kprobe session / stayed two probes.
    pub merged_cases: Vec<String>,
    pub unmerged_cases: Vec<String>,
    /// Merged cases whose trace was not the expected one: what the merge
    /// changed for the script (a finding each).
    pub changed: Vec<String>,
}

/// The "merged into a session: yes/no" row per kernel × bpftrace version.
pub fn session_merge_rows(m: &Matrix) -> Vec<SessionMergeCell> {
    let mut out = Vec::new();
    for k in &m.kernels {
        for l in &m.loaders {
            let runs: Vec<&CaseResult> = k.results.iter().filter(|r| &r.loader == l && r.loader_id == crate::case::LoaderId::Bpftrace).collect();
            if runs.is_empty() {
                continue;
            }
            let merged_cases: Vec<String> = runs.iter().filter(|r| r.session_merge == Some(true)).map(|r| r.case.clone()).collect();
            let unmerged_cases: Vec<String> = runs.iter().filter(|r| r.session_merge == Some(false)).map(|r| r.case.clone()).collect();
            let changed = runs
                .iter()
                .filter(|r| r.session_merge == Some(true) && matches!(r.verdict, Verdict::Fail | Verdict::Flaky | Verdict::Known))
                .map(|r| r.case.clone())
                .collect();
            let merged = match (merged_cases.is_empty(), unmerged_cases.is_empty()) {
                (true, true) => "–",
                (false, true) => "yes",
                (true, false) => "no",
                (false, false) => "mixed",
            }
            .to_string();
            out.push(SessionMergeCell { kernel: k.label(), loader: l.clone(), merged, merged_cases, unmerged_cases, changed });
        }
    }
    out
}

fn merge_cell_text(c: &SessionMergeCell) -> String {
    let mut t = c.merged.clone();
    if c.merged == "mixed" {
        t = format!("yes: {}; no: {}", c.merged_cases.join(", "), c.unmerged_cases.join(", "));
    }
    if !c.changed.is_empty() {
        t.push_str(&format!(" (changed: {})", c.changed.join(", ")));
    }
    t
}

/// The "what can I use where" table: features × kernels.
fn feature_rows(m: &Matrix) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    for f in Feature::ALL {
        let cells = m
            .kernels
            .iter()
            .map(|k| match &k.features {
                Some(fs) if fs.has(*f) => "yes".to_string(),
                Some(_) => "no".to_string(),
                None => "?".to_string(),
            })
            .collect();
        rows.push((f.tag().to_string(), cells));
    }
    for flag in CONFIG_FLAGS {
        let cells = m.kernels.iter().map(|k| k.config.get(*flag).cloned().unwrap_or_else(|| "?".into())).collect();
        rows.push((flag.to_string(), cells));
    }
    rows
}

pub fn markdown(m: &Matrix) -> String {
    let mut s = String::new();
    writeln!(s, "# probeconf kernel matrix\n").unwrap();
    writeln!(s, "Generated {} · {}\n", m.generated_utc, m.libraries.iter().map(|l| format!("{} {} ({})", l.loader, l.library, l.version)).collect::<Vec<_>>().join(" · ")).unwrap();
    writeln!(s, "{}\n", legend()).unwrap();
    writeln!(s, "{}\n", count_line(m, " · ")).unwrap();
    writeln!(s, "## Can I use it? (probe kind × loader × kernel)\n").unwrap();
    writeln!(s, "{}", can_i_use_markdown(m)).unwrap();
    writeln!(s, "## What works where\n").unwrap();
    write!(s, "| feature |").unwrap();
    for k in &m.kernels {
        write!(s, " {} |", kernel_title(k)).unwrap();
    }
    writeln!(s).unwrap();
    writeln!(s, "|---|{}", "---|".repeat(m.kernels.len())).unwrap();
    for (name, cells) in feature_rows(m) {
        writeln!(s, "| `{name}` | {} |", cells.join(" | ")).unwrap();
    }
    writeln!(s, "\n## Cases\n").unwrap();
    write!(s, "| case |").unwrap();
    for k in &m.kernels {
        for l in &m.loaders {
            write!(s, " {} {} |", k.label(), l).unwrap();
        }
    }
    writeln!(s).unwrap();
    writeln!(s, "|---|{}", "---|".repeat(m.kernels.len() * m.loaders.len())).unwrap();
    let merge = session_merge_rows(m);
    if !merge.is_empty() {
        write!(s, "| *kprobe/kretprobe merged into a session* |").unwrap();
        for k in &m.kernels {
            for l in &m.loaders {
                let c = merge.iter().find(|c| c.kernel == k.label() && &c.loader == l);
                write!(s, " {} |", c.map(merge_cell_text).unwrap_or_default()).unwrap();
            }
        }
        writeln!(s).unwrap();
    }
    for (group, cases) in m.grouped_cases() {
        writeln!(s, "| **{group}** |{}", " |".repeat(m.kernels.len() * m.loaders.len())).unwrap();
        for c in cases {
            write!(s, "| {} |", c.id).unwrap();
            for k in &m.kernels {
                for l in &m.loaders {
                    let cell = m.cell(&c.id, k, l);
                    write!(s, " {}{} |", short(cell.verdict), if cell.compat { "ᶜ" } else { "" }).unwrap();
                }
            }
            writeln!(s).unwrap();
        }
    }
    if m.kernels.iter().any(|k| k.profile.is_some()) {
        writeln!(s, "\n## Where the time went (seconds)\n").unwrap();
        writeln!(s, "{}", profile_table(m)).unwrap();
    }
    writeln!(s, "\n## Kernels\n").unwrap();
    for k in &m.kernels {
        match &k.status {
            ColumnStatus::Completed => {
                writeln!(s, "- {}: completed in {:.0} s", kernel_title(k), k.wall_secs).unwrap();
                for c in &k.crashes {
                    writeln!(s, "  - **kernel crash** while running `{}`: {}", c.case, c.reason).unwrap();
                }
            }
            ColumnStatus::Error { reason, .. } => writeln!(s, "- {}: **error**: {reason}", kernel_title(k)).unwrap(),
        }
    }
    s
}

/// The "can I use it" view as markdown: a row per probe kind, a column per
/// loader and kernel.
pub fn can_i_use_markdown(m: &Matrix) -> String {
    let mut s = String::new();
    write!(s, "| kind |").unwrap();
    for l in &m.loaders {
        for k in &m.kernels {
            write!(s, " {l} {} |", k.label()).unwrap();
        }
    }
    writeln!(s).unwrap();
    writeln!(s, "|---|{}", "---|".repeat(m.loaders.len() * m.kernels.len())).unwrap();
    for kind in m.kinds() {
        write!(s, "| `{kind}` |").unwrap();
        for l in &m.loaders {
            for k in &m.kernels {
                write!(s, " {} |", m.usable(kind, k, l).0.as_str()).unwrap();
            }
        }
        writeln!(s).unwrap();
    }
    s
}

/// The "can I use it" view as an HTML table: kinds × (loader × kernel), each
/// cell coloured by what the cases of that kind found, its title naming them.
fn can_i_use_html(m: &Matrix) -> String {
    let mut s = String::from("<h2>Can I use it?</h2>\n<p>Probe kind × loader@version × kernel, from the cases whose probes are all of that kind and expect a trace: <span class=\"u-native\">native</span> (the library's own API), <span class=\"u-compat\">via compat</span> (the compatibility layer), <span class=\"u-unsupported\">unsupported</span> (the kernel lacks it, probed), <span class=\"u-broken\">broken</span> (a case failed, was flaky or errored), <span class=\"u-known\">known issue</span>.</p>\n<table class=\"ciu\"><tr><th rowspan=\"2\">kind</th>");
    for l in &m.loaders {
        write!(s, "<th colspan=\"{}\">{}</th>", m.kernels.len(), esc(l)).unwrap();
    }
    s.push_str("</tr><tr>");
    for _ in &m.loaders {
        for k in &m.kernels {
            write!(s, "<th title=\"{}\">{}</th>", esc(&kernel_title(k)), esc(&k.label())).unwrap();
        }
    }
    s.push_str("</tr>\n");
    for kind in m.kinds() {
        write!(s, "<tr><td class=\"case\">{}</td>", esc(kind)).unwrap();
        for l in &m.loaders {
            for k in &m.kernels {
                let (u, cases) = m.usable(kind, k, l);
                let class = match u {
                    Usable::Native => "u-native",
                    Usable::Compat => "u-compat",
                    Usable::Unsupported => "u-unsupported",
                    Usable::Broken => "u-broken",
                    Usable::Known => "u-known",
                    Usable::Untested => "",
                };
                write!(s, "<td class=\"{class}\" title=\"{}\">{}</td>", esc(&cases.join(", ")), u.as_str()).unwrap();
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// The per-column time profile as a markdown table.
pub fn profile_table(m: &Matrix) -> String {
    let mut s = String::new();
    writeln!(s, "| column | wall | boots | boot | features | cases | other | of the cases: setup | spawn | symbols | load+attach | run | drain+detach | normalise | further attempts |").unwrap();
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
    for k in &m.kernels {
        let Some(p) = &k.profile else { continue };
        writeln!(
            s,
            "| {} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            k.label(),
            k.wall_secs,
            p.boots,
            p.boot_s,
            p.features_s,
            p.cases_s,
            p.other_s,
            p.setup_s,
            p.spawn_s,
            p.symbols_s,
            p.attach_s,
            p.run_s,
            p.drain_s,
            p.normalise_s,
            p.attempts_s
        )
        .unwrap();
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn anchor(case: &str, kernel: &str, loader: &str) -> String {
    format!("d-{case}-{kernel}-{loader}").replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
}

/// A self-contained page: a coloured grid (cases grouped by kind × kernels ×
/// loaders), each cell linking to its detail (diff or error), and the feature
/// table per kernel.
pub fn html(m: &Matrix) -> String {
    let mut s = String::new();
    s.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>probeconf kernel matrix</title><style>\n");
    s.push_str(
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330}h1{font-size:22px}h2{font-size:17px;margin-top:28px}\n\
         table{border-collapse:collapse}th,td{border:1px solid #d6dae3;padding:3px 7px;text-align:center}\n\
         th{background:#f3f5f9;font-weight:600}td.case{text-align:left;font-family:ui-monospace,monospace;font-size:12px}\n\
         tr.group td{background:#e8ecf4;text-align:left;font-weight:600}\n\
         td.v a{display:block;color:inherit;text-decoration:none;font-weight:600}\n\
         .pass{background:#c9efcf}.fail{background:#f6b5b5}.flaky{background:#ffc98a}.known{background:#c9d7ef}\n\
         .unsupported{background:#eee6c4}.error{background:#e3c2f0}.skip{color:#999}\n\
         tr.merge td.v{font-weight:600}.merge-yes{background:#cfe6ff}.merge-mixed{background:#ffe9b3}\n\
         .yes{background:#c9efcf}.no{background:#f0e2e2}.compat{outline:2px dashed #3b6fd1;outline-offset:-3px}\n\
         .u-native{background:#9fdfaa}.u-compat{background:#cfe6ff}.u-unsupported{background:#eee6c4}.u-broken{background:#f6b5b5}\n\
         .u-known{background:#c9d7ef}table.ciu td{font-size:12px;white-space:nowrap}\n\
         .legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid #ccc}\n\
         details{margin:6px 0}pre{background:#f6f7fa;padding:8px;overflow:auto;font-size:12px}\n",
    );
    s.push_str("</style></head><body>\n<h1>probeconf kernel matrix</h1>\n");
    writeln!(
        s,
        "<p>Generated {} · {}</p>",
        esc(&m.generated_utc),
        esc(&m.libraries.iter().map(|l| format!("{} {} ({})", l.loader, l.library, l.version)).collect::<Vec<_>>().join(" · "))
    )
    .unwrap();
    s.push_str("<p class=\"legend\">");
    for v in Verdict::ALL {
        let what = match v {
            Verdict::Unsupported => "unsupported (probed)",
            Verdict::Known => "known issue",
            other => other.as_str(),
        };
        write!(s, "<span class=\"{v}\">{} {what}</span>", v.symbol()).unwrap();
    }
    s.push_str("<span class=\"compat\">ᶜ via compatibility layer</span></p>\n");
    writeln!(s, "<p>{}</p>", esc(&count_line(m, " · "))).unwrap();

    s.push_str(&can_i_use_html(m));
    s.push_str("<h2>Cases</h2>\n<table><tr><th rowspan=\"2\">case</th>");
    for k in &m.kernels {
        write!(s, "<th colspan=\"{}\" title=\"{}\">{}</th>", m.loaders.len(), esc(&kernel_title(k)), esc(&k.label())).unwrap();
    }
    s.push_str("</tr><tr>");
    for _ in &m.kernels {
        for l in &m.loaders {
            write!(s, "<th>{}</th>", esc(l)).unwrap();
        }
    }
    s.push_str("</tr>\n");
    let width = 1 + m.kernels.len() * m.loaders.len();
    let merge = session_merge_rows(m);
    if !merge.is_empty() {
        s.push_str("<tr class=\"merge\"><td class=\"case\" title=\"From the kernel's view while bpftrace was attached (its programs and links): one kprobe_multi link serving entry and return of a kprobe/kretprobe pair\">kprobe/kretprobe merged into a session</td>");
        for k in &m.kernels {
            for l in &m.loaders {
                match merge.iter().find(|c| c.kernel == k.label() && &c.loader == l) {
                    Some(c) => write!(
                        s,
                        "<td class=\"v merge-{}\" title=\"merged: {} · not merged: {}\">{}</td>",
                        esc(&c.merged),
                        esc(&c.merged_cases.join(", ")),
                        esc(&c.unmerged_cases.join(", ")),
                        esc(&merge_cell_text(c))
                    )
                    .unwrap(),
                    None => s.push_str("<td class=\"v\"></td>"),
                }
            }
        }
        s.push_str("</tr>\n");
    }
    for (group, cases) in m.grouped_cases() {
        writeln!(s, "<tr class=\"group\"><td colspan=\"{width}\">{}</td></tr>", esc(group)).unwrap();
        for c in cases {
            write!(s, "<tr><td class=\"case\" title=\"{}\">{}</td>", esc(c.description.trim()), esc(&c.id)).unwrap();
            for k in &m.kernels {
                for l in &m.loaders {
                    let cell = m.cell(&c.id, k, l);
                    let Some(verdict) = cell.verdict else {
                        s.push_str("<td class=\"v\" title=\"not in this shard\">·</td>");
                        continue;
                    };
                    let target = match cell.result {
                        None => format!("k-{}", anchor("", &k.label(), "")),
                        Some(_) => anchor(&c.id, &k.label(), l),
                    };
                    write!(
                        s,
                        "<td class=\"v {}{}\"><a href=\"#{target}\" title=\"{}\">{}{}</a></td>",
                        verdict,
                        if cell.compat { " compat" } else { "" },
                        esc(cell.result.map(|r| r.detail.as_str()).unwrap_or("kernel column failed")),
                        short(cell.verdict),
                        if cell.compat { "ᶜ" } else { "" }
                    )
                    .unwrap();
                }
            }
            s.push_str("</tr>\n");
        }
    }
    s.push_str("</table>\n");

    s.push_str("<h2>What works where (probed features and config)</h2>\n<table><tr><th>feature</th>");
    for k in &m.kernels {
        write!(s, "<th>{}</th>", esc(&kernel_title(k))).unwrap();
    }
    s.push_str("</tr>\n");
    for (name, cells) in feature_rows(m) {
        write!(s, "<tr><td class=\"case\">{}</td>", esc(&name)).unwrap();
        for c in cells {
            let class = match c.as_str() {
                "yes" | "y" => "yes",
                "no" | "n" => "no",
                _ => "",
            };
            write!(s, "<td class=\"{class}\">{}</td>", esc(&c)).unwrap();
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n<h2>Details</h2>\n");
    for k in &m.kernels {
        writeln!(s, "<h3 id=\"k-{}\">{} ({:.0} s)</h3>", anchor("", &k.label(), ""), esc(&kernel_title(k)), k.wall_secs).unwrap();
        if let ColumnStatus::Error { reason, console_tail } = &k.status {
            writeln!(s, "<p><b>error:</b> {}</p><pre>{}</pre>", esc(reason), esc(console_tail)).unwrap();
        }
        for c in &k.crashes {
            writeln!(s, "<p><b>kernel crash while running {}:</b> {}</p><pre>{}</pre>", esc(&c.case), esc(&c.reason), esc(&c.console_tail)).unwrap();
        }
        for r in k.results.iter().filter(|r| r.verdict != Verdict::Pass) {
            writeln!(
                s,
                "<details id=\"{}\" open><summary><b>{}</b> {} [{}]</summary><p>{}</p>{}</details>",
                anchor(&r.case, &k.label(), &r.loader),
                r.verdict,
                esc(&r.case),
                esc(&r.loader),
                esc(&r.detail),
                r.diff.as_deref().map(|d| format!("<pre>{}</pre>", esc(d))).unwrap_or_default()
                    + &r.attempts
                        .iter()
                        .enumerate()
                        .map(|(i, a)| format!(
                            "<p>attempt {} ({})</p><pre>{}</pre>",
                            i + 1,
                            a.verdict,
                            esc(a.observed.as_deref().unwrap_or(&a.detail))
                        ))
                        .collect::<String>()
            )
            .unwrap();
        }
        for r in k.results.iter().filter(|r| r.verdict == Verdict::Pass) {
            writeln!(
                s,
                "<details id=\"{}\"><summary>pass {} [{}]</summary><pre>{}</pre></details>",
                anchor(&r.case, &k.label(), &r.loader),
                esc(&r.case),
                esc(&r.loader),
                esc(r.observed.as_deref().unwrap_or(""))
            )
            .unwrap();
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// The compact terminal table.
pub fn terminal(m: &Matrix) -> String {
    let mut s = String::new();
    let w = m.cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(6);
    write!(s, "{:<w$}", "").unwrap();
    for k in &m.kernels {
        let col = k.label();
        write!(s, " {:^width$}", col, width = 2 * m.loaders.len() + 1).unwrap();
    }
    writeln!(s).unwrap();
    for (group, cases) in m.grouped_cases() {
        writeln!(s, "[{group}]").unwrap();
        for c in cases {
            write!(s, "{:<w$}", c.id).unwrap();
            for k in &m.kernels {
                let cells: Vec<String> = m.loaders.iter().map(|l| short(m.cell(&c.id, k, l).verdict).to_string()).collect();
                write!(s, " {:^width$}", cells.join(" "), width = 2 * m.loaders.len() + 1).unwrap();
            }
            writeln!(s).unwrap();
        }
    }
    writeln!(s, "\n(each kernel: {}) {}", m.loaders.join(" "), count_line(m, ", ")).unwrap();
    // What needs a look: every cell that is not a pass or unsupported, in one line each.
    for k in &m.kernels {
        if let ColumnStatus::Error { reason, .. } = &k.status {
            writeln!(s, "E {}: column error: {reason}", k.label()).unwrap();
        }
        for c in &k.crashes {
            writeln!(s, "! {}: kernel crash during {}: {}", k.label(), c.case, c.reason).unwrap();
        }
        for r in k.results.iter().filter(|r| r.verdict.is_failure() || r.verdict == Verdict::Known) {
            let detail: String = r.detail.chars().take(160).collect();
            writeln!(s, "{} {} {} [{}]: {}", r.verdict.symbol(), k.label(), r.case, r.loader, detail).unwrap();
        }
    }
    s
}

/// The per-kernel snapshot text: probed features, config flags, and every
/// verdict (a new kernel adds one snapshot file; it changes no other).
pub fn kernel_snapshot(m: &Matrix, k: &KernelColumn) -> String {
    let mut s = String::new();
    match &k.status {
        ColumnStatus::Completed => writeln!(s, "status: completed").unwrap(),
        ColumnStatus::Error { reason, .. } => writeln!(s, "status: error: {reason}").unwrap(),
    }
    writeln!(s, "features:").unwrap();
    if let Some(f) = &k.features {
        for feat in Feature::ALL {
            writeln!(s, "  {}: {}", feat.tag(), f.has(*feat)).unwrap();
        }
    }
    writeln!(s, "config:").unwrap();
    for (flag, v) in &k.config {
        writeln!(s, "  {flag}: {v}").unwrap();
    }
    writeln!(s, "verdicts:").unwrap();
    for (_, cases) in m.grouped_cases() {
        for c in cases {
            // A case no loader of the run could express (a bpftrace case in a
            // run without bpftrace) has no line.
            if m.loaders.iter().all(|l| m.cell(&c.id, k, l).verdict == Some(Verdict::Skip)) {
                continue;
            }
            let cells: Vec<String> = m
                .loaders
                .iter()
                .map(|l| {
                    let cell = m.cell(&c.id, k, l);
                    // A race that only sometimes goes wrong (see CaseMeta::has_known):
                    // a `known` can only come from a matching issue, so nothing is lost.
                    let v = match cell.verdict {
                        Some(Verdict::Pass | Verdict::Known) if c.has_known => "pass|known",
                        v => v.map(|v| v.as_str()).unwrap_or("not-run"),
                    };
                    format!("{l}={v}{}", if cell.compat { "(compat)" } else { "" })
                })
                .collect();
            writeln!(s, "  {}: {}", c.id, cells.join(" ")).unwrap();
        }
    }
    let merge: Vec<String> =
        session_merge_rows(m).into_iter().filter(|c| c.kernel == k.label()).map(|c| format!("{}={}", c.loader, merge_cell_text(&c))).collect();
    if !merge.is_empty() {
        writeln!(s, "kprobe/kretprobe merged into a session: {}", merge.join(" ")).unwrap();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, loader: &str, v: Verdict) -> CaseResult {
        CaseResult {
            case: case.into(),
            loader: loader.into(),
            loader_id: if loader == "libbpf" { crate::case::LoaderId::Libbpf } else { crate::case::LoaderId::Cilium },
            kernel: "6.12.0".into(),
            verdict: v,
            detail: "d".into(),
            via: if loader == "cilium" { ViaKind::Compat } else { ViaKind::Native },
            vias: vec![],
            library: "x".into(),
            library_version: String::new(),
            observed: Some("P0/T0 <x>".into()),
            expected: None,
            diff: Some("- a\n+ b".into()),
            duration_ms: 1,
            preempt: None,
            attempts: vec![],
            known: None,
            timing: None,
            census: None,
            session_merge: None,
        }
    }

    #[test]
    fn session_merge_row_per_kernel_and_bpftrace_version() {
        let mut m = sample();
        m.loaders = vec!["libbpf".into(), "bpftrace@0.27.1".into()];
        let bt = |case: &str, v: Verdict, merged: Option<bool>| {
            let mut r = result(case, "bpftrace@0.27.1", v);
            r.loader_id = crate::case::LoaderId::Bpftrace;
            r.session_merge = merged;
            r
        };
        m.kernels[0].results = vec![
            result("a", "libbpf", Verdict::Pass),
            bt("exact", Verdict::Pass, Some(true)),
            bt("wild", Verdict::Fail, Some(true)),
            bt("uprobe", Verdict::Pass, None),
        ];
        let rows = session_merge_rows(&m);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].merged, "yes");
        assert_eq!(rows[0].merged_cases, ["exact", "wild"]);
        assert_eq!(rows[0].changed, ["wild"]);
        assert_eq!(merge_cell_text(&rows[0]), "yes (changed: wild)");
        m.kernels[0].results[1].session_merge = Some(false);
        assert_eq!(merge_cell_text(&session_merge_rows(&m)[0]), "yes: wild; no: exact (changed: wild)");
        assert!(markdown(&m).contains("| *kprobe/kretprobe merged into a session* |"), "{}", markdown(&m));
        assert!(html(&m).contains("merged into a session</td>"));
        assert!(json(&m).contains("\"session_merge\""));
        assert!(kernel_snapshot(&m, &m.kernels[0]).contains("kprobe/kretprobe merged into a session: bpftrace@0.27.1="));
    }

    pub fn sample() -> Matrix {
        let ok = KernelColumn {
            request: "6.12".into(),
            release: "6.12.48+deb13-amd64".into(),
            status: ColumnStatus::Completed,
            features: Some(FeatureSet { kernel: "6.12.48".into(), results: Default::default() }),
            config: config_flags("CONFIG_KPROBES=y\nCONFIG_FPROBE=y\n"),
            results: vec![result("a", "libbpf", Verdict::Pass), result("a", "cilium", Verdict::Fail)],
            wall_secs: 61.0,
            crashes: vec![],
            preempt: None,
            cases: vec![],
            profile: None,
        };
        let broken = KernelColumn {
            request: "9.9".into(),
            release: String::new(),
            status: ColumnStatus::Error { reason: "timed out after 1 s".into(), console_tail: "Booting <kernel>".into() },
            features: None,
            config: Default::default(),
            results: vec![],
            wall_secs: 1.0,
            crashes: vec![],
            preempt: None,
            cases: vec![],
            profile: None,
        };
        Matrix {
            generated_utc: "2026-11-26T00:00:00Z".into(),
            libraries: vec![],
            loaders: vec!["libbpf".into(), "cilium".into()],
            cases: vec![CaseMeta { id: "a".into(), group: "uprobe.session".into(), description: "x".into(), has_known: false, kinds: vec!["uprobe.session".into()], expects_trace: true }],
            kernels: vec![ok, broken],
            settings: Default::default(),
            shard: None,
        }
    }

    #[test]
    fn renders_every_cell_and_links_details() {
        let m = sample();
        let h = html(&m);
        assert!(h.contains("class=\"v pass\""), "pass cell");
        assert!(h.contains("class=\"v fail compat\""), "compat fail cell");
        assert!(h.contains("href=\"#d-a-6_12-cilium\"") && h.contains("id=\"d-a-6_12-cilium\""), "cell links to its detail");
        assert!(h.contains("timed out after 1 s") && h.contains("Booting &lt;kernel&gt;"), "error column shows the console tail, escaped");
        assert!(!h.contains("<x>"), "observed text is escaped");
        let md = markdown(&m);
        assert!(md.contains("| a | ✓ | ✗ᶜ | E | E |"), "{md}");
        assert!(md.contains("| `CONFIG_FPROBE` | y | ? |"), "{md}");
        let t = terminal(&m);
        assert!(t.contains("[uprobe.session]"));
        assert_eq!(m.counts()[&Verdict::Error], 2);
        let snap = kernel_snapshot(&m, &m.kernels[0]);
        assert!(snap.contains("  a: libbpf=pass cilium=fail(compat)"), "{snap}");
    }

    #[test]
    fn snapshot_shows_pass_or_known_alike_for_cases_with_known_issues() {
        let mut m = sample();
        m.cases[0].has_known = true;
        m.kernels[0].results = vec![result("a", "libbpf", Verdict::Pass), result("a", "cilium", Verdict::Known)];
        let snap = kernel_snapshot(&m, &m.kernels[0]);
        assert!(snap.contains("  a: libbpf=pass|known cilium=pass|known(compat)"), "{snap}");
        // A failure the known issue does not cover stays a failure.
        m.kernels[0].results[1].verdict = Verdict::Fail;
        assert!(kernel_snapshot(&m, &m.kernels[0]).contains("cilium=fail(compat)"));
    }

    #[test]
    fn can_i_use_reads_the_cases_of_each_kind() {
        let mut m = sample();
        // 6.12: libbpf passes natively, cilium fails; 9.9: the column errored.
        assert_eq!(m.usable("uprobe.session", &m.kernels[0], "libbpf").0, Usable::Native);
        assert_eq!(m.usable("uprobe.session", &m.kernels[0], "cilium").0, Usable::Broken);
        assert_eq!(m.usable("uprobe.session", &m.kernels[1], "libbpf").0, Usable::Broken);
        assert_eq!(m.usable("kprobe", &m.kernels[0], "libbpf").0, Usable::Untested);
        m.kernels[0].results[1].verdict = Verdict::Pass;
        assert_eq!(m.usable("uprobe.session", &m.kernels[0], "cilium").0, Usable::Compat);
        m.kernels[0].results[1].verdict = Verdict::Unsupported;
        assert_eq!(m.usable("uprobe.session", &m.kernels[0], "cilium").0, Usable::Unsupported);
        assert!(html(&m).contains("Can I use it?"));
        assert!(markdown(&m).contains("| `uprobe.session` | native | broken | unsupported | broken |"), "{}", markdown(&m));
    }

    #[test]
    fn config_flags_default_to_n() {
        let f = config_flags("CONFIG_UPROBES=y\n# CONFIG_KPROBES is not set\n");
        assert_eq!(f["CONFIG_UPROBES"], "y");
        assert_eq!(f["CONFIG_KPROBES"], "n");
    }
}
