//! The regression gate: two result files compared run by run.
//!
//! A result file is what `probeconf run --format json` prints (an array of
//! results) or a `matrix.json`. Each run is keyed by (column, case, loader).
//! Two files of different kernels, or of different versions of one library,
//! still line up: a dimension on which the files differ entirely, with one
//! value on each side (one kernel each, say), is left out of the key, so
//! 6.12's runs meet 7.3's. `probeconf diff A B` prints the differences,
//! `--baseline A` on `run` and `matrix` gates on them.
//!
//! * a **regression** is a run that fails, is flaky or errors in B but did
//!   not in A, or a run whose normalised trace (or error) changed;
//! * an **improvement** is a run that failed, was flaky or errored in A and
//!   does not in B;
//! * runs present on one side only are listed (a run that disappeared is a
//!   regression: a gate must not pass because a case stopped running).

use crate::judge::check::Verdict;
use crate::run::CaseResult;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One run as the gate sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub column: String,
    pub case: String,
    pub loader: String,
    pub verdict: Verdict,
    pub observed: Option<String>,
}

/// Reads a result file: a JSON array of results, or a matrix.json.
pub fn read(path: &Path) -> Result<Vec<Run>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Vec<Run>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let of = |column: String, r: CaseResult| Run { column, case: r.case, loader: r.loader, verdict: r.verdict, observed: r.observed };
    if v.is_array() {
        let results: Vec<CaseResult> =
            serde_json::from_value(v).map_err(|e| format!("not a `probeconf run --format json` result array: {e}"))?;
        return Ok(results.into_iter().map(|r| of(r.kernel.clone(), r)).collect());
    }
    let m: crate::matrix::Matrix =
        serde_json::from_value(v).map_err(|e| format!("neither a result array nor a matrix.json: {e}"))?;
    let mut runs = Vec::new();
    for k in &m.kernels {
        for c in &m.cases {
            for l in &m.loaders {
                let cell = m.cell(&c.id, k, l);
                let Some(verdict) = cell.verdict else { continue };
                runs.push(Run {
                    column: k.label(),
                    case: c.id.clone(),
                    loader: l.clone(),
                    verdict,
                    observed: cell.result.and_then(|r| r.observed.clone()),
                });
            }
        }
    }
    Ok(runs)
}

/// How a run changed from A to B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Newly failing, flaky or erroring.
    NewFailure,
    /// The same kind of result, another trace.
    TraceChanged,
    /// Failing, flaky or erroring in A, no more in B.
    Improvement,
    /// Only in A: it did not run in B.
    Missing,
    /// Only in B.
    New,
}

impl Change {
    pub fn is_regression(&self) -> bool {
        matches!(self, Change::NewFailure | Change::TraceChanged | Change::Missing)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// The key: whichever of column, case and loader line the files up.
    pub key: String,
    pub change: Change,
    pub before: Option<String>,
    pub after: Option<String>,
    /// The two traces, where they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// What the key is made of (`column`, `case`, `loader`), and which
    /// dimensions were paired across instead (`7.3 ↔ 6.12`).
    pub keyed_by: Vec<String>,
    pub paired: Vec<String>,
    pub same: usize,
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.differences.iter().filter(|d| d.change.is_regression()).count()
    }

    pub fn improvements(&self) -> usize {
        self.differences.iter().filter(|d| d.change == Change::Improvement).count()
    }
}

fn values(runs: &[Run], dim: fn(&Run) -> &str) -> BTreeSet<String> {
    runs.iter().map(|r| dim(r).to_string()).collect()
}

/// Compares A (the baseline) with B.
pub fn compare(a: &[Run], b: &[Run]) -> Comparison {
    let dims: [(&str, fn(&Run) -> &str); 3] =
        [("column", |r| r.column.as_str()), ("case", |r| r.case.as_str()), ("loader", |r| r.loader.as_str())];
    let mut keyed_by = Vec::new();
    let mut paired = Vec::new();
    let mut used: Vec<fn(&Run) -> &str> = Vec::new();
    for (name, dim) in dims {
        let (va, vb) = (values(a, dim), values(b, dim));
        if name != "case" && va.len() == 1 && vb.len() == 1 && va != vb {
            paired.push(format!("{name} {} ↔ {}", va.iter().next().unwrap(), vb.iter().next().unwrap()));
        } else {
            keyed_by.push(name.to_string());
            used.push(dim);
        }
    }
    let key = |r: &Run| used.iter().map(|d| d(r)).collect::<Vec<_>>().join(" ");
    let index = |runs: &[Run]| runs.iter().map(|r| (key(r), r.clone())).collect::<BTreeMap<String, Run>>();
    let (ia, ib) = (index(a), index(b));
    let describe = |r: &Run| r.verdict.as_str().to_string();
    let mut out = Comparison { keyed_by, paired, same: 0, differences: Vec::new() };
    for (k, ra) in &ia {
        let Some(rb) = ib.get(k) else {
            out.differences.push(Difference { key: k.clone(), change: Change::Missing, before: Some(describe(ra)), after: None, diff: None });
            continue;
        };
        let change = if rb.verdict.is_failure() && !ra.verdict.is_failure() {
            Some(Change::NewFailure)
        } else if ra.verdict.is_failure() && !rb.verdict.is_failure() {
            Some(Change::Improvement)
        } else if ra.observed != rb.observed || ra.verdict != rb.verdict {
            Some(Change::TraceChanged)
        } else {
            None
        };
        match change {
            None => out.same += 1,
            Some(change) => {
                let diff = match (&ra.observed, &rb.observed) {
                    (Some(x), Some(y)) if x != y => Some(crate::judge::check::diff(x, y, false)),
                    _ => None,
                };
                out.differences.push(Difference { key: k.clone(), change, before: Some(describe(ra)), after: Some(describe(rb)), diff });
            }
        }
    }
    for (k, rb) in &ib {
        if !ia.contains_key(k) {
            out.differences.push(Difference { key: k.clone(), change: Change::New, before: None, after: Some(describe(rb)), diff: None });
        }
    }
    out
}

/// The comparison for a terminal: regressions first, then improvements and
/// the rest; long diffs cut (the JSON has them whole).
pub fn text(c: &Comparison, a_name: &str, b_name: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    writeln!(s, "{a_name} → {b_name}: keyed by {}{}", c.keyed_by.join(", "), if c.paired.is_empty() { String::new() } else { format!("; paired {}", c.paired.join(", ")) }).unwrap();
    for (title, pick) in [
        ("regressions", (|d: &Difference| d.change.is_regression()) as fn(&Difference) -> bool),
        ("improvements", |d: &Difference| d.change == Change::Improvement),
        ("only in the second file", |d: &Difference| d.change == Change::New),
    ] {
        let of: Vec<&Difference> = c.differences.iter().filter(|d| pick(d)).collect();
        if of.is_empty() {
            continue;
        }
        writeln!(s, "\n{title} ({}):", of.len()).unwrap();
        for d in of {
            let what = match d.change {
                Change::NewFailure => "newly failing",
                Change::TraceChanged => "trace changed",
                Change::Improvement => "fixed",
                Change::Missing => "did not run",
                Change::New => "new",
            };
            writeln!(s, "  {}: {what} ({} → {})", d.key, d.before.as_deref().unwrap_or("-"), d.after.as_deref().unwrap_or("-")).unwrap();
            if let Some(diff) = &d.diff {
                for l in crate::report::truncate_lines(diff, 12).lines() {
                    writeln!(s, "      {l}").unwrap();
                }
            }
        }
    }
    writeln!(s, "\n{} regressions, {} improvements, {} unchanged", c.regressions(), c.improvements(), c.same).unwrap();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(column: &str, case: &str, loader: &str, v: Verdict, t: &str) -> Run {
        Run { column: column.into(), case: case.into(), loader: loader.into(), verdict: v, observed: Some(t.into()) }
    }

    #[test]
    fn regressions_improvements_and_changed_traces() {
        use Verdict::*;
        let a = vec![
            run("7.3", "a", "libbpf", Pass, "x\n"),
            run("7.3", "b", "libbpf", Fail, "y\n"),
            run("7.3", "c", "libbpf", Pass, "z\n"),
            run("7.3", "d", "libbpf", Pass, "w\n"),
            run("7.3", "gone", "libbpf", Pass, "v\n"),
        ];
        let b = vec![
            run("7.3", "a", "libbpf", Flaky, "x\n"),
            run("7.3", "b", "libbpf", Pass, "y2\n"),
            run("7.3", "c", "libbpf", Pass, "z2\n"),
            run("7.3", "d", "libbpf", Pass, "w\n"),
            run("7.3", "new", "libbpf", Pass, "n\n"),
        ];
        let c = compare(&a, &b);
        let of = |case: &str| c.differences.iter().find(|d| d.key.contains(case)).map(|d| d.change.clone());
        assert_eq!(of("7.3 a "), Some(Change::NewFailure));
        assert_eq!(of(" b "), Some(Change::Improvement));
        assert_eq!(of(" c "), Some(Change::TraceChanged));
        assert_eq!(of(" d "), None);
        assert_eq!(of("gone"), Some(Change::Missing));
        assert_eq!(of("new"), Some(Change::New));
        assert_eq!((c.regressions(), c.improvements(), c.same), (3, 1, 1));
        assert!(text(&c, "A", "B").contains("3 regressions, 1 improvements, 1 unchanged"));
        // The same file against itself: nothing.
        assert_eq!(compare(&a, &a).differences.len(), 0);
    }

    #[test]
    fn two_kernels_or_two_library_versions_pair_up() {
        use Verdict::*;
        let a = vec![run("6.12", "a", "libbpf", Pass, "x\n"), run("6.12", "a", "cilium", Pass, "x\n")];
        let b = vec![run("7.3", "a", "libbpf", Pass, "x\n"), run("7.3", "a", "cilium", Fail, "q\n")];
        let c = compare(&a, &b);
        assert_eq!(c.paired, ["column 6.12 ↔ 7.3"]);
        assert_eq!(c.keyed_by, ["case", "loader"]);
        assert_eq!(c.regressions(), 1);
        let a = vec![run("7.3", "a", "libbpf@1.5", Pass, "x\n")];
        let b = vec![run("7.3", "a", "libbpf@1.7", Pass, "x\n")];
        let c = compare(&a, &b);
        assert_eq!(c.paired, ["loader libbpf@1.5 ↔ libbpf@1.7"]);
        assert_eq!(c.same, 1);
    }
}
