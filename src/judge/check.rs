//! The checks of one run: against the case's expectation (a), against the
//! snapshot (b, in conformance/), and between loaders (c). The verdict logic
//! and the diffs live here; nothing here touches the kernel.

use crate::case::{ErrorPhase, ExpectedError, Outcome};
use crate::judge::classify::ErrorClass;
use crate::probing::features::Feature;
use crate::loaders::{FailPhase, LoaderError};
use crate::observe::normalise::{canonical_lines, Trace};
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Identical runs disagreed (between attempts of one loader): never a pass.
    Flaky,
    /// A fail or flaky run that matches a known issue the case declares.
    Known,
    Unsupported,
    Error,
    /// The loader cannot express the case (a bpftrace-only case through
    /// libbpf, a case with attach cookies through bpftrace): not run.
    Skip,
}

impl Verdict {
    /// Every verdict, in the order reports list them.
    pub const ALL: [Verdict; 7] = [Verdict::Pass, Verdict::Fail, Verdict::Flaky, Verdict::Known, Verdict::Unsupported, Verdict::Error, Verdict::Skip];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Flaky => "flaky",
            Verdict::Known => "known",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
        }
    }

    /// Whether a run with this verdict fails the exit status.
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Flaky | Verdict::Error)
    }

    /// The one-character symbol of the matrix renderings.
    pub fn symbol(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Flaky => "~",
            Verdict::Known => "k",
            Verdict::Unsupported => "–",
            Verdict::Error => "E",
            Verdict::Skip => "·",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a loader produced for a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Observed {
    Trace(Trace),
    Error(LoaderError),
}

impl Observed {
    /// The normalised result as text: the trace, or `error: PHASE CLASS`.
    /// Used for snapshots and the cross-loader comparison (details excluded:
    /// they are each library's own words).
    pub fn normalised(&self) -> String {
        match self {
            Observed::Trace(t) => t.text(),
            Observed::Error(e) => format!("error: phase={} class={}\n", e.phase, e.error.class),
        }
    }
}

fn phase_matches(want: ErrorPhase, got: FailPhase) -> bool {
    matches!((want, got), (ErrorPhase::Load, FailPhase::Load) | (ErrorPhase::Attach, FailPhase::Attach))
}

/// Unified diff, `-` expected, `+` observed; coloured when `color`.
pub fn diff(expected: &str, observed: &str, color: bool) -> String {
    use owo_colors::OwoColorize;
    let d = TextDiff::from_lines(expected, observed);
    let mut out = String::new();
    for change in d.iter_all_changes() {
        let line = change.to_string_lossy();
        let line = line.trim_end_matches('\n');
        let s = match change.tag() {
            ChangeTag::Delete => format!("- {line}"),
            ChangeTag::Insert => format!("+ {line}"),
            ChangeTag::Equal => format!("  {line}"),
        };
        let s = match (color, change.tag()) {
            (true, ChangeTag::Delete) => s.red().to_string(),
            (true, ChangeTag::Insert) => s.green().to_string(),
            _ => s,
        };
        out.push_str(&s);
        out.push('\n');
    }
    out
}

/// Two columns, expected | observed, for comparing loaders.
pub fn side_by_side(left_title: &str, left: &str, right_title: &str, right: &str) -> String {
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    let w = l.iter().map(|s| s.len()).max().unwrap_or(0).max(left_title.len());
    let mut out = format!("  {left_title:<w$} | {right_title}\n");
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).copied().unwrap_or("");
        let b = r.get(i).copied().unwrap_or("");
        let mark = if a == b { ' ' } else { '!' };
        out.push_str(&format!("{mark} {a:<w$} | {b}\n"));
    }
    out
}

/// The result of check (a).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub detail: String,
    /// Expected vs observed, for failures.
    pub diff: Option<String>,
}

/// Judges an observation against the expected outcome, knowing which required
/// features the probes found missing.
///
/// * Required features missing (probed): a load/attach failure is
///   `unsupported` (with the probe's reason); success is a `fail` (the probe or
///   the loader is wrong).
/// * Features present: the observation must equal the expectation. A loader
///   that says `unsupported` there is a `fail`, never a skip.
pub fn judge(expected: &Outcome, observed: &Observed, missing: &[(Feature, String)]) -> Judgement {
    let pass = |detail: String| Judgement { verdict: Verdict::Pass, detail, diff: None };
    let fail = |detail: String, diff: Option<String>| Judgement { verdict: Verdict::Fail, detail, diff };
    if !missing.is_empty() {
        let why = missing.iter().map(|(f, d)| format!("{f}: {d}")).collect::<Vec<_>>().join("; ");
        return match observed {
            Observed::Error(e) if matches!(e.phase, FailPhase::Load | FailPhase::Attach) => {
                let note = if e.error.class == ErrorClass::Unsupported {
                    String::new()
                } else {
                    format!(" [loader classed it `{}`, not `unsupported`]", e.error.class)
                };
                Judgement {
                    verdict: Verdict::Unsupported,
                    detail: format!("kernel lacks it (probed: {why}); loader: {} {}{note}", e.phase, e.error.detail),
                    diff: None,
                }
            }
            Observed::Error(e) => Judgement { verdict: Verdict::Error, detail: e.to_string(), diff: None },
            Observed::Trace(_) => fail(format!("the probes say the kernel lacks it ({why}), yet the loader ran the case"), None),
        };
    }
    match (expected, observed) {
        (Outcome::Trace(want), Observed::Trace(got)) => {
            let want_lines = canonical_lines(want);
            if want_lines == got.lines {
                pass(format!("{} event lines as expected", got.lines.len()))
            } else {
                let want_text = want_lines.join("\n") + "\n";
                fail("observed trace differs from expect.trace".into(), Some(diff(&want_text, &got.text(), false)))
            }
        }
        (Outcome::Error(ExpectedError { phase, class }), Observed::Error(e)) => {
            if phase_matches(*phase, e.phase) && *class == e.error.class {
                pass(format!("{} {} as expected: {}", e.phase, e.error.class, e.error.detail))
            } else if matches!(e.phase, FailPhase::Drain | FailPhase::Harness) {
                Judgement { verdict: Verdict::Error, detail: e.to_string(), diff: None }
            } else {
                fail(
                    format!("expected {phase} {class}, got {} {}: {}", e.phase, e.error.class, e.error.detail),
                    Some(diff(&format!("error: phase={phase} class={class}\n"), &observed.normalised(), false)),
                )
            }
        }
        (Outcome::Trace(want), Observed::Error(e)) => match e.phase {
            FailPhase::Drain | FailPhase::Harness => Judgement { verdict: Verdict::Error, detail: e.to_string(), diff: None },
            _ if e.error.class == ErrorClass::Unsupported => fail(
                format!("loader reports unsupported, but the probes found every required feature: {}", e.error.detail),
                None,
            ),
            _ => fail(e.to_string(), Some(diff(&(canonical_lines(want).join("\n") + "\n"), &observed.normalised(), false))),
        },
        (Outcome::Error(ExpectedError { phase, class }), Observed::Trace(got)) => fail(
            format!("expected {phase} {class}, but the probes attached and ran"),
            Some(diff(&format!("error: phase={phase} class={class}\n"), &got.text(), false)),
        ),
    }
}

/// Colours a diff made by [`diff`] (red `-`, green `+`).
pub fn diff_colorize(d: &str) -> String {
    use owo_colors::OwoColorize;
    d.lines()
        .map(|l| {
            if l.starts_with("- ") {
                l.red().to_string()
            } else if l.starts_with("+ ") {
                l.green().to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Check (c): the loaders of one case must agree on the normalised result.
/// A disagreement fails every run of the case that has not failed already,
/// with both sides side by side. Where the case documents a library
/// difference (its resolved expectations differ per loader) and each loader
/// met its own, the difference is reported in the detail instead.
pub fn cross_check(runs: &mut [crate::run::CaseResult]) {
    // Runs of loaders that could not express the case are not compared.
    let Some(first) = runs.iter().find(|r| r.verdict != Verdict::Skip).cloned() else { return };
    let Some(first_obs) = first.observed.clone() else { return };
    let mut disagreements = Vec::new();
    for r in runs.iter().filter(|r| r.verdict != Verdict::Skip && r.loader != first.loader) {
        let Some(obs) = &r.observed else { continue };
        if *obs != first_obs {
            // Documented: the case expects each library to differ, and each met its own.
            // Both unsupported: the probes found the kernel lacks the feature and both
            // loaders failed; how each classes that failure is reported, not judged here.
            let documented = (r.expected != first.expected && r.verdict == Verdict::Pass && first.verdict == Verdict::Pass)
                || (r.verdict == Verdict::Unsupported && first.verdict == Verdict::Unsupported);
            disagreements.push((r.loader.clone(), obs.clone(), documented));
        }
    }
    for (other, obs, documented) in disagreements {
        let sbs = side_by_side(&first.loader, &first_obs, &other, &obs);
        for r in runs.iter_mut().filter(|r| r.loader == first.loader || r.loader == other) {
            if documented {
                let what = if r.verdict == Verdict::Unsupported { "loaders fail differently" } else { "documented difference" };
                r.detail = format!("{} [{what}: {} `{}` vs {} `{}`]", r.detail, first.loader, first_obs.trim(), other, obs.trim());
            } else if r.verdict != Verdict::Fail {
                r.verdict = Verdict::Fail;
                r.detail = format!("loaders disagree: {} vs {}", first.loader, other);
                r.diff = Some(sbs.clone());
            } else {
                r.detail = format!("{}; loaders disagree too", r.detail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::classify::Classified;

    fn trace(lines: &[&str]) -> Observed {
        Observed::Trace(Trace { lines: lines.iter().map(|s| s.to_string()).collect() })
    }
    fn err(phase: FailPhase, class: ErrorClass) -> Observed {
        Observed::Error(LoaderError { phase, probe: None, error: Classified { class, errno: None, detail: "d".into() } })
    }

    #[test]
    fn trace_match_and_mismatch() {
        let want = Outcome::Trace("P0/T0 a entry f(1, 0)\n  P0/T0   a return f => 2\n".into());
        assert_eq!(judge(&want, &trace(&["P0/T0 a entry f(1, 0)", "P0/T0 a return f => 2"]), &[]).verdict, Verdict::Pass);
        let j = judge(&want, &trace(&["P0/T0 a entry f(1, 0)", "P0/T0 a return f => 3"]), &[]);
        assert_eq!(j.verdict, Verdict::Fail);
        let d = j.diff.unwrap();
        assert!(d.contains("- P0/T0 a return f => 2") && d.contains("+ P0/T0 a return f => 3"), "{d}");
    }

    #[test]
    fn unsupported_only_when_probed_missing() {
        let want = Outcome::Trace("x".into());
        let missing = vec![(Feature::UprobeSession, "EINVAL".to_string())];
        assert_eq!(judge(&want, &err(FailPhase::Attach, ErrorClass::Unsupported), &missing).verdict, Verdict::Unsupported);
        // Kernel has the feature but the loader says unsupported: a finding.
        let j = judge(&want, &err(FailPhase::Attach, ErrorClass::Unsupported), &[]);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.detail.contains("found every required feature"));
        // Kernel lacks it but the loader ran: a finding too.
        assert_eq!(judge(&want, &trace(&["x"]), &missing).verdict, Verdict::Fail);
        // A crashed harness is an error, not unsupported.
        assert_eq!(judge(&want, &err(FailPhase::Harness, ErrorClass::Other), &missing).verdict, Verdict::Error);
    }

    #[test]
    fn expected_errors() {
        let want = Outcome::Error(ExpectedError { phase: ErrorPhase::Attach, class: ErrorClass::NotFound });
        assert_eq!(judge(&want, &err(FailPhase::Attach, ErrorClass::NotFound), &[]).verdict, Verdict::Pass);
        assert_eq!(judge(&want, &err(FailPhase::Load, ErrorClass::NotFound), &[]).verdict, Verdict::Fail);
        assert_eq!(judge(&want, &err(FailPhase::Attach, ErrorClass::Invalid), &[]).verdict, Verdict::Fail);
        assert_eq!(judge(&want, &trace(&["x"]), &[]).verdict, Verdict::Fail);
    }

    #[test]
    fn side_by_side_marks_differences() {
        let s = side_by_side("libbpf", "a\nb\n", "cilium", "a\nc\n");
        assert!(s.contains("  a") && s.contains("! b"), "{s}");
    }
}
