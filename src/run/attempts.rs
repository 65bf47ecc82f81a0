//! Attempts: how one case becomes its final verdicts when a single run is not
//! enough to say.
//!
//! A case runs once through every loader. It runs again, each time in a
//! fresh `probeconf attempt` process (nothing shared with the first run:
//! loaders, ring buffers, caches), `repeat - 1` more times always, and up to
//! `reruns` more times while the attempts agree on a result that did not
//! pass. Then, per loader:
//!
//! * attempts that disagree (verdict or normalised trace) give `flaky`, never
//!   `pass`, with every attempt's trace in the result;
//! * attempts that agree give the first attempt's verdict, and the loaders
//!   with stable results are cross-checked against each other;
//! * a `fail` or `flaky` that matches one of the case's known issues becomes
//!   `known`.
//!
//! Retrying never turns a failure into a pass: a rerun can only show that
//! the result is not stable.

use crate::case::{Case, Context, KernelVersion};
use crate::judge::check::{cross_check, Verdict};
use crate::probing::features::FeatureSet;
use crate::run::{Attempt, CaseResult, KnownMatch};
use serde::{Deserialize, Serialize};

/// How many attempts a case gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptPolicy {
    /// Attempts every case gets (at least 1).
    pub repeat: usize,
    /// Further attempts while every attempt so far agrees and some loader did
    /// not pass.
    pub reruns: usize,
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        AttemptPolicy { repeat: 1, reruns: 2 }
    }
}

/// One attempt: the results of every loader, each judged on its own (not yet
/// cross-checked).
pub type AttemptResults = Vec<CaseResult>;

fn key(r: &CaseResult) -> (Verdict, Option<&str>) {
    (r.verdict, r.observed.as_deref())
}

/// Whether every attempt gave each loader the same verdict and trace.
fn agree(attempts: &[AttemptResults]) -> bool {
    let Some(first) = attempts.first() else { return true };
    attempts[1..].iter().all(|a| {
        a.len() == first.len() && a.iter().zip(first).all(|(x, y)| x.loader == y.loader && key(x) == key(y))
    })
}

/// Whether a further attempt could change anything: some loader did not pass
/// (after the cross-loader check, which is what the user would see).
fn not_passing(attempt: &AttemptResults) -> bool {
    let mut judged = attempt.clone();
    cross_check(&mut judged);
    judged.iter().any(|r| matches!(r.verdict, Verdict::Fail | Verdict::Error))
}

/// Runs the attempts `policy` asks for and settles the verdicts. `again`
/// runs one more attempt (in a fresh process); when it cannot, the attempts
/// so far are settled and the results say why there were no more.
pub fn settle(
    case: &Case,
    features: &FeatureSet,
    policy: AttemptPolicy,
    first: AttemptResults,
    mut again: impl FnMut() -> Result<AttemptResults, String>,
) -> Vec<CaseResult> {
    let mut attempts = vec![first];
    let mut trouble = None;
    let wanted = policy.repeat.max(1) + policy.reruns;
    while attempts.len() < wanted && !crate::interrupt::requested() {
        let always = attempts.len() < policy.repeat.max(1);
        if !always && !(agree(&attempts) && not_passing(attempts.last().expect("one attempt"))) {
            break;
        }
        match again() {
            Ok(a) => attempts.push(a),
            Err(e) => {
                trouble = Some(e);
                break;
            }
        }
    }
    let mut out = combine(case, features, &attempts);
    if let Some(e) = trouble {
        for r in &mut out {
            r.detail = format!("{} [no further attempt: {e}]", r.detail);
        }
    }
    out
}

/// The final results of a case from its attempts (see the module docs).
pub fn combine(case: &Case, features: &FeatureSet, attempts: &[AttemptResults]) -> Vec<CaseResult> {
    let first = &attempts[0];
    let mut stable: Vec<CaseResult> = Vec::new();
    let mut flaky: Vec<CaseResult> = Vec::new();
    for (i, r) in first.iter().enumerate() {
        let mine: Vec<&CaseResult> = attempts.iter().filter_map(|a| a.get(i).filter(|x| x.loader == r.loader)).collect();
        let mut out = r.clone();
        if mine.len() > 1 {
            out.attempts = mine.iter().map(|a| Attempt { verdict: a.verdict, observed: a.observed.clone(), detail: a.detail.clone() }).collect();
            out.duration_ms = mine.iter().map(|a| a.duration_ms).sum();
        }
        if mine.iter().all(|a| key(a) == key(r)) {
            stable.push(out);
        } else {
            let verdicts: Vec<&str> = mine.iter().map(|a| a.verdict.as_str()).collect();
            let traces = mine.iter().map(|a| a.observed.as_deref()).collect::<std::collections::BTreeSet<_>>().len();
            out.verdict = Verdict::Flaky;
            out.detail = format!(
                "{} attempts disagree ({}; {traces} different results); every attempt's result is in `attempts`",
                mine.len(),
                verdicts.join(", ")
            );
            out.diff = flaky_diff(&mine);
            flaky.push(out);
        }
    }
    cross_check(&mut stable);
    let mut all: Vec<CaseResult> = first
        .iter()
        .map(|r| {
            stable.iter().chain(flaky.iter()).find(|x| x.loader == r.loader).cloned().expect("every loader settled")
        })
        .collect();
    for r in &mut all {
        apply_known(case, features, r);
    }
    all
}

/// The first attempt against each later one that differs from it.
fn flaky_diff(mine: &[&CaseResult]) -> Option<String> {
    let base = mine[0].observed.as_deref().unwrap_or("");
    let mut out = String::new();
    for (i, a) in mine.iter().enumerate().skip(1) {
        let other = a.observed.as_deref().unwrap_or("");
        if other != base || a.verdict != mine[0].verdict {
            out.push_str(&format!("attempt 1 ({}) vs attempt {} ({}):\n", mine[0].verdict, i + 1, a.verdict));
            out.push_str(&crate::judge::check::diff(base, other, false));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A `fail` or `flaky` result whose conditions match a known issue of the
/// case becomes `known`.
pub fn apply_known(case: &Case, features: &FeatureSet, r: &mut CaseResult) {
    if !matches!(r.verdict, Verdict::Fail | Verdict::Flaky) {
        return;
    }
    let cx = Context {
        kernel: KernelVersion::parse(&r.kernel),
        features,
        loader: r.loader_id,
        preempt: r.preempt,
        library: KernelVersion::parse(&r.library_version),
    };
    if let Some(k) = case.known.iter().find(|k| k.when.holds(&cx)) {
        r.known = Some(KnownMatch { was: r.verdict, reason: k.reason.clone(), see: k.see.clone() });
        r.detail = format!("known issue ({}): {} — see {}; {}", r.verdict, k.reason, k.see, r.detail);
        r.verdict = Verdict::Known;
    }
}

pub use crate::loaders::registry::LoaderSpec;

/// Runs one more attempt of `case` in a fresh `probeconf attempt` process:
/// the features are handed over (not probed again), the loaders reopened from
/// their specs. Its stdout is the JSON array of results.
pub fn attempt_in_child(
    exe: &std::path::Path,
    case: &Case,
    features: &FeatureSet,
    loaders: &[LoaderSpec],
    target_timeout_s: u64,
) -> Result<AttemptResults, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let features_file = dir.path().join("features.json");
    std::fs::write(&features_file, serde_json::to_vec(features).expect("features serialise")).map_err(|e| e.to_string())?;
    let loaders_json = serde_json::to_string(loaders).expect("specs serialise");
    let out = duct::cmd(
        exe,
        [
            "attempt".into(),
            case.path.to_string_lossy().into_owned(),
            "--features".into(),
            features_file.to_string_lossy().into_owned(),
            "--loaders".into(),
            loaders_json,
            "--target-timeout".into(),
            target_timeout_s.to_string(),
        ],
    )
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`probeconf attempt` {}: {}", out.status, err.lines().last().unwrap_or("")));
    }
    let results: AttemptResults =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("`probeconf attempt` printed no result array: {e}"))?;
    if results.len() != loaders.len() {
        return Err(format!("`probeconf attempt` gave {} results for {} loaders", results.len(), loaders.len()));
    }
    Ok(results)
}

/// A plain result for other modules' tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    pub fn result(case: &str, loader: &str, v: Verdict) -> CaseResult {
        let id = if loader.starts_with("cilium") { crate::case::LoaderId::Cilium } else { crate::case::LoaderId::Libbpf };
        let mut r = CaseResult::new(case, loader, id, "6.18.0", v, "d".into());
        r.observed = Some(format!("trace of {case}\n"));
        r.expected = Some("want\n".into());
        r.duration_ms = 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case_with_known() -> Case {
        Case::parse(
            "id: k\ndescription: d\nprobes: [{name: up, kind: uprobe, targets: [{symbol: pc_leaf}]}]\nrun: call leaf 1\n\
             expect: {trace: \"P0/T0 up entry pc_leaf(1, 0) cookie=0x0\\n\"}\n\
             known:\n  - when: {kernel: \">=6.13\", loader: cilium}\n    reason: a documented kernel bug\n    see: docs/findings/x.md\n",
            std::path::Path::new("k.yaml"),
        )
        .unwrap()
    }

    fn features() -> FeatureSet {
        FeatureSet { kernel: "6.18.0".into(), results: Default::default() }
    }

    fn run(loader: &str, v: Verdict, observed: &str) -> CaseResult {
        let mut r = tests_support::result("k", loader, v);
        r.observed = Some(observed.into());
        r
    }

    #[test]
    fn a_pass_runs_once_and_stays_a_pass() {
        let c = case_with_known();
        let mut calls = 0;
        let out = settle(&c, &features(), AttemptPolicy::default(), vec![run("libbpf", Verdict::Pass, "want\n")], || {
            calls += 1;
            Err("not needed".into())
        });
        assert_eq!(calls, 0);
        assert_eq!(out[0].verdict, Verdict::Pass);
        assert!(out[0].attempts.is_empty());
    }

    #[test]
    fn a_fail_then_a_pass_is_flaky_never_a_pass() {
        let c = case_with_known();
        let mut later = vec![vec![run("libbpf", Verdict::Pass, "want\n")]].into_iter();
        let out = settle(&c, &features(), AttemptPolicy::default(), vec![run("libbpf", Verdict::Fail, "other\n")], || {
            Ok(later.next().unwrap())
        });
        assert_eq!(out[0].verdict, Verdict::Flaky, "{}", out[0].detail);
        assert_eq!(out[0].attempts.len(), 2);
        assert_eq!(out[0].attempts[1].verdict, Verdict::Pass);
        assert!(out[0].diff.as_deref().unwrap().contains("- other"), "{:?}", out[0].diff);
    }

    #[test]
    fn a_stable_fail_is_rerun_then_stays_a_fail() {
        let c = case_with_known();
        let mut calls = 0;
        let out = settle(&c, &features(), AttemptPolicy { repeat: 1, reruns: 2 }, vec![run("libbpf", Verdict::Fail, "other\n")], || {
            calls += 1;
            Ok(vec![run("libbpf", Verdict::Fail, "other\n")])
        });
        assert_eq!(calls, 2);
        assert_eq!(out[0].verdict, Verdict::Fail);
        assert_eq!(out[0].attempts.len(), 3);
    }

    #[test]
    fn repeats_always_run_and_any_difference_is_flaky() {
        let c = case_with_known();
        let mut n = 0;
        let out = settle(&c, &features(), AttemptPolicy { repeat: 3, reruns: 0 }, vec![run("libbpf", Verdict::Pass, "want\n")], || {
            n += 1;
            Ok(vec![run("libbpf", if n == 2 { Verdict::Fail } else { Verdict::Pass }, if n == 2 { "x\n" } else { "want\n" })])
        });
        assert_eq!(n, 2);
        assert_eq!(out[0].verdict, Verdict::Flaky);
    }

    #[test]
    fn a_matching_known_issue_turns_fail_or_flaky_into_known_only_where_it_applies() {
        let c = case_with_known();
        let f = features();
        let mut r = run("cilium", Verdict::Fail, "x\n");
        apply_known(&c, &f, &mut r);
        assert_eq!(r.verdict, Verdict::Known);
        assert_eq!(r.known.as_ref().unwrap().was, Verdict::Fail);
        // Another loader, or an older kernel: not covered.
        let mut r = run("libbpf", Verdict::Fail, "x\n");
        apply_known(&c, &f, &mut r);
        assert_eq!(r.verdict, Verdict::Fail);
        let mut r = run("cilium", Verdict::Fail, "x\n");
        r.kernel = "6.12.0".into();
        apply_known(&c, &f, &mut r);
        assert_eq!(r.verdict, Verdict::Fail);
        // A pass stays a pass.
        let mut r = run("cilium", Verdict::Pass, "want\n");
        apply_known(&c, &f, &mut r);
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn a_flaky_loader_is_not_cross_checked_against_a_stable_one() {
        let c = case_with_known();
        let first = vec![run("libbpf", Verdict::Pass, "want\n"), run("cilium", Verdict::Fail, "x\n")];
        let out = settle(&c, &features(), AttemptPolicy { repeat: 1, reruns: 1 }, first, || {
            Ok(vec![run("libbpf", Verdict::Pass, "want\n"), run("cilium", Verdict::Pass, "want\n")])
        });
        assert_eq!(out[0].verdict, Verdict::Pass, "{}", out[0].detail);
        // cilium is flaky, which a known issue for cilium on >= 6.13 covers.
        assert_eq!(out[1].verdict, Verdict::Known);
        assert_eq!(out[1].known.as_ref().unwrap().was, Verdict::Flaky);
    }
}
