//! Which columns of the matrix a run does: every kernel × preemption model,
//! or a deterministic share of them (`--shard I/N`) for one job of a CI job
//! matrix. `probeconf matrix merge` puts the shares back together.
//!
//! The unit of work is a column, or a slice of a column's cases when there
//! are fewer columns than shards (so every shard has work): with C columns
//! and N shards each column is cut into S = ceil(N / C) slices (case i goes
//! to slice i mod S), the C × S units are numbered column by column, and
//! unit u belongs to shard (u mod N) + 1. The share depends only on the
//! column and case lists, never on timing.

use crate::case::PreemptMode;
use serde::{Deserialize, Serialize};

/// `I/N`: the I-th of N shards (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard `{s}`: expected I/N with 1 <= I <= N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One column of the matrix: a kernel, booted with a preemption model (or
/// the kernel's default).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub kernel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<PreemptMode>,
}

impl ColumnSpec {
    /// The column's name in reports: `7.3`, or `7.3 preempt=full`.
    pub fn label(&self) -> String {
        match self.preempt {
            Some(p) => format!("{} preempt={p}", self.kernel),
            None => self.kernel.clone(),
        }
    }
}

/// Every column: each kernel under each model asked for (none = the kernel's
/// default), kernel-major.
pub fn columns(kernels: &[String], preempt: &[PreemptMode]) -> Vec<ColumnSpec> {
    let models: Vec<Option<PreemptMode>> = if preempt.is_empty() { vec![None] } else { preempt.iter().copied().map(Some).collect() };
    kernels.iter().flat_map(|k| models.iter().map(move |p| ColumnSpec { kernel: k.clone(), preempt: *p })).collect()
}

/// A unit of work: column `column`, cases of slice `slice` of `slices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub column: usize,
    pub slice: usize,
    pub slices: usize,
}

impl Unit {
    /// Whether case number `i` (in case order) is in this unit.
    pub fn has_case(&self, i: usize) -> bool {
        i % self.slices == self.slice
    }
}

/// The units of `shard` (all of them without a shard) over `columns` columns.
pub fn units(columns: usize, shard: Option<Shard>) -> Vec<Unit> {
    let Some(shard) = shard else {
        return (0..columns).map(|column| Unit { column, slice: 0, slices: 1 }).collect();
    };
    let slices = if columns == 0 { 1 } else { shard.count.div_ceil(columns).max(1) };
    (0..columns * slices)
        .filter(|u| u % shard.count == shard.index - 1)
        .map(|u| Unit { column: u / slices, slice: u % slices, slices })
        .collect()
}

/// Joins the matrices of every shard of one plan into the matrix an
/// unsharded run would have given (verdicts and traces; timings add up).
/// Refuses shards of different plans, loaders or cases, a shard given twice,
/// and a missing shard.
pub fn merge(parts: Vec<crate::matrix::Matrix>) -> Result<crate::matrix::Matrix, String> {
    use crate::matrix::{ColumnStatus, KernelColumn, Matrix};
    let first = parts.first().ok_or("nothing to merge")?;
    let info = first.shard.clone().ok_or("the first matrix is not a shard's (no `shard` in its matrix.json)")?;
    let ids = |m: &Matrix| m.cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let mut seen = vec![false; info.shard.count];
    for m in &parts {
        let i = m.shard.as_ref().ok_or("a matrix without `shard`: not a shard's output")?;
        if i.shard.count != info.shard.count || i.columns != info.columns {
            return Err(format!("shard {} is of another plan (columns or shard count differ from shard {})", i.shard, info.shard));
        }
        if m.loaders != first.loaders || ids(m) != ids(first) || m.settings.attempts != first.settings.attempts {
            return Err(format!("shard {} ran other loaders, cases or attempts than shard {}", i.shard, info.shard));
        }
        if std::mem::replace(&mut seen[i.shard.index - 1], true) {
            return Err(format!("shard {} is given twice", i.shard));
        }
    }
    let missing: Vec<String> = seen.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| format!("{}/{}", i + 1, info.shard.count)).collect();
    if !missing.is_empty() {
        return Err(format!("missing shard(s): {}", missing.join(", ")));
    }
    let all_cases = ids(first);
    let mut kernels: Vec<KernelColumn> = Vec::new();
    for spec in &info.columns {
        let pieces: Vec<&KernelColumn> =
            parts.iter().flat_map(|m| m.kernels.iter()).filter(|k| k.request == spec.kernel && k.preempt == spec.preempt).collect();
        let Some(base) = pieces.first() else {
            // A column with no units (possible only with zero cases).
            continue;
        };
        let mut col = (*base).clone();
        col.results.clear();
        col.crashes.clear();
        col.wall_secs = 0.0;
        let mut errors = Vec::new();
        for p in &pieces {
            col.results.extend(p.results.iter().cloned());
            col.crashes.extend(p.crashes.iter().cloned());
            col.wall_secs += p.wall_secs;
            if col.features.is_none() {
                col.features = p.features.clone();
            }
            if col.release.is_empty() {
                col.release = p.release.clone();
            }
            if let ColumnStatus::Error { reason, console_tail } = &p.status {
                errors.push((reason.clone(), console_tail.clone()));
            }
        }
        // Results in case order, as one run would have sent them.
        col.results.sort_by_key(|r| all_cases.iter().position(|c| *c == r.case));
        let covered: std::collections::BTreeSet<&String> = pieces.iter().flat_map(|p| p.cases.iter()).collect();
        col.cases = if pieces.iter().any(|p| p.cases.is_empty()) || covered.len() == all_cases.len() {
            Vec::new()
        } else {
            all_cases.iter().filter(|c| covered.contains(c)).cloned().collect()
        };
        col.status = match errors.len() {
            0 => ColumnStatus::Completed,
            _ => ColumnStatus::Error {
                reason: errors.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join("; "),
                console_tail: errors.last().map(|(_, t)| t.clone()).unwrap_or_default(),
            },
        };
        kernels.push(col);
    }
    let mut out = first.clone();
    out.generated_utc = parts.iter().map(|m| m.generated_utc.clone()).max().unwrap_or_default();
    out.kernels = kernels;
    out.shard = None;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (column, case) pair is done by exactly one shard.
    fn coverage(columns: usize, cases: usize, n: usize) -> Vec<Vec<usize>> {
        let mut owner = vec![vec![0usize; cases]; columns];
        for i in 1..=n {
            for u in units(columns, Some(Shard { index: i, count: n })) {
                for c in (0..cases).filter(|c| u.has_case(*c)) {
                    owner[u.column][c] += 1;
                }
            }
        }
        owner
    }

    #[test]
    fn shards_cover_every_cell_once() {
        for (columns, cases, n) in [(10, 62, 4), (3, 62, 3), (2, 62, 3), (1, 62, 4), (2, 5, 8), (4, 1, 2)] {
            let owner = coverage(columns, cases, n);
            assert!(owner.iter().flatten().all(|&o| o == 1), "{columns} columns, {cases} cases, {n} shards: {owner:?}");
        }
    }

    #[test]
    fn more_columns_than_shards_splits_by_column_and_fewer_splits_cases() {
        let s = |i, n| Some(Shard { index: i, count: n });
        assert_eq!(units(4, s(2, 2)).iter().map(|u| (u.column, u.slices)).collect::<Vec<_>>(), [(1, 1), (3, 1)]);
        // Two kernels, three shards: each column in two slices; every shard has work.
        for i in 1..=3 {
            assert!(!units(2, s(i, 3)).is_empty());
        }
        assert_eq!(units(3, None).len(), 3);
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        for bad in ["0/2", "3/2", "2", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn merged_shards_equal_the_whole_and_bad_sets_are_refused() {
        use crate::matrix::{CaseMeta, ColumnStatus, KernelColumn, Matrix};
        let cases = ["a", "b", "c"];
        let columns = columns(&["6.1".into(), "7.3".into()], &[]);
        let result = |case: &str, kernel: &str| {
            let mut r = crate::run::attempts::tests_support::result(case, "libbpf", crate::judge::check::Verdict::Pass);
            r.kernel = kernel.into();
            r
        };
        let column = |spec: &ColumnSpec, only: &[usize], partial: bool| KernelColumn {
            request: spec.kernel.clone(),
            release: format!("{}.0", spec.kernel),
            status: ColumnStatus::Completed,
            features: None,
            config: Default::default(),
            results: only.iter().map(|i| result(cases[*i], &spec.kernel)).collect(),
            wall_secs: 10.0,
            crashes: vec![],
            preempt: None,
            profile: None,
            cases: if partial { only.iter().map(|i| cases[*i].to_string()).collect() } else { vec![] },
        };
        let matrix = |kernels: Vec<KernelColumn>, shard: Option<Shard>| Matrix {
            generated_utc: "t".into(),
            libraries: vec![],
            loaders: vec!["libbpf".into()],
            cases: cases.iter().map(|c| CaseMeta { id: c.to_string(), group: "uprobe".into(), description: String::new(), has_known: false, kinds: vec!["uprobe".into()], expects_trace: true }).collect(),
            kernels,
            settings: Default::default(),
            shard: shard.map(|shard| crate::matrix::ShardInfo { shard, columns: columns.clone() }),
        };
        let whole = matrix(columns.iter().map(|c| column(c, &[0, 1, 2], false)).collect(), None);
        // Three shards over two columns: each column in two case slices.
        let mut parts = Vec::new();
        for i in 1..=3 {
            let shard = Shard { index: i, count: 3 };
            let cols = units(2, Some(shard))
                .iter()
                .map(|u| column(&columns[u.column], &(0..3).filter(|c| u.has_case(*c)).collect::<Vec<_>>(), true))
                .collect();
            parts.push(matrix(cols, Some(shard)));
        }
        let merged = merge(parts.clone()).unwrap();
        let view = |m: &Matrix| m.kernels.iter().map(|k| (k.label(), k.cases.clone(), k.results.iter().map(|r| (r.case.clone(), r.verdict, r.observed.clone())).collect::<Vec<_>>())).collect::<Vec<_>>();
        assert_eq!(view(&merged), view(&whole));
        assert!(merge(parts[..2].to_vec()).unwrap_err().contains("missing shard(s): 3/3"));
        let twice = vec![parts[0].clone(), parts[0].clone(), parts[1].clone()];
        assert!(merge(twice).unwrap_err().contains("given twice"));
        assert!(merge(vec![whole]).is_err());
    }

    #[test]
    fn columns_are_kernel_major_with_models() {
        let c = columns(&["6.18".into(), "7.3".into()], &[PreemptMode::None, PreemptMode::Full]);
        let labels: Vec<String> = c.iter().map(|c| c.label()).collect();
        assert_eq!(labels, ["6.18 preempt=none", "6.18 preempt=full", "7.3 preempt=none", "7.3 preempt=full"]);
        assert_eq!(columns(&["6.1".into()], &[])[0].label(), "6.1");
    }
}
