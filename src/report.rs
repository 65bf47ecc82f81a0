//! Reports of a run: the terminal table with diffs, JSON, and JUnit XML.

use crate::judge::check::Verdict;
use crate::run::CaseResult;
use owo_colors::OwoColorize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the header of every report states.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunHeader {
    pub kernel: String,
    /// Each loader's label and the exact library behind it.
    pub libraries: Vec<(String, crate::loaders::LibraryInfo)>,
    pub kfunc_variant: crate::run::artifacts::KfuncVariant,
}

fn paint(v: Verdict, color: bool) -> String {
    let s = v.as_str();
    if !color {
        return s.to_string();
    }
    match v {
        Verdict::Pass => s.green().to_string(),
        Verdict::Fail => s.red().bold().to_string(),
        Verdict::Flaky => s.truecolor(255, 140, 0).bold().to_string(),
        Verdict::Known => s.blue().to_string(),
        Verdict::Unsupported => s.yellow().to_string(),
        Verdict::Error => s.magenta().bold().to_string(),
        Verdict::Skip => s.dimmed().to_string(),
    }
}

/// How many lines of a diff or trace the terminal shows; the JSON report
/// always has all of it.
pub const TERMINAL_DIFF_LINES: usize = 40;

/// The first `max` lines of `text`, and a note of how many were left out.
pub fn truncate_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return text.trim_end().to_string();
    }
    format!(
        "{}\n… {} more lines (the whole text is in --format json)",
        lines[..max].join("\n"),
        lines.len() - max
    )
}

pub fn counts(results: &[CaseResult]) -> BTreeMap<Verdict, usize> {
    let mut m = BTreeMap::new();
    for r in results {
        *m.entry(r.verdict).or_insert(0) += 1;
    }
    m
}

pub fn table(header: &RunHeader, results: &[CaseResult], color: bool) -> String {
    let mut out = String::new();
    writeln!(out, "kernel {} · session kfuncs: {:?}", header.kernel, header.kfunc_variant).unwrap();
    for (label, l) in &header.libraries {
        writeln!(out, "loader {label}: {} {}", l.library, l.version).unwrap();
    }
    let mut loaders: Vec<&str> = Vec::new();
    for r in results {
        if !loaders.contains(&r.loader.as_str()) {
            loaders.push(&r.loader);
        }
    }
    let mut cases: Vec<&str> = Vec::new();
    for r in results {
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    let w = cases.iter().map(|c| c.len()).max().unwrap_or(4).max(4);
    write!(out, "\n{:<w$}", "case").unwrap();
    for l in &loaders {
        write!(out, "  {:<18}", l).unwrap();
    }
    out.push('\n');
    for c in &cases {
        write!(out, "{c:<w$}").unwrap();
        for l in &loaders {
            match results.iter().find(|r| r.case == *c && r.loader == *l) {
                Some(r) => {
                    let cell = format!("{}{}", r.verdict.as_str(), if r.via == crate::loaders::ViaKind::Compat { " (compat)" } else { "" });
                    let pad = 18usize.saturating_sub(cell.len());
                    let painted = format!("{}{}", paint(r.verdict, color), &cell[r.verdict.as_str().len()..]);
                    write!(out, "  {painted}{}", " ".repeat(pad)).unwrap();
                }
                None => write!(out, "  {:<18}", "-").unwrap(),
            }
        }
        out.push('\n');
    }
    for r in results.iter().filter(|r| r.verdict.is_failure() || r.verdict == Verdict::Known) {
        writeln!(out, "\n{} {} [{}]: {}", paint(r.verdict, color), r.case, r.loader, r.detail).unwrap();
        if let Some(d) = &r.diff {
            let d = truncate_lines(d, TERMINAL_DIFF_LINES);
            let d = if color { crate::judge::check::diff_colorize(&d) } else { d };
            writeln!(out, "{}", d.trim_end()).unwrap();
        }
        if r.verdict == Verdict::Flaky || r.known.as_ref().is_some_and(|k| k.was == Verdict::Flaky) {
            for (i, a) in r.attempts.iter().enumerate() {
                writeln!(out, "  attempt {} ({}):", i + 1, a.verdict).unwrap();
                let t = truncate_lines(a.observed.as_deref().unwrap_or(&a.detail), TERMINAL_DIFF_LINES / 2);
                for l in t.lines() {
                    writeln!(out, "    {l}").unwrap();
                }
            }
        }
    }
    let regressions = version_differences(results);
    if !regressions.is_empty() {
        writeln!(out, "\nbetween library versions (a finding each):").unwrap();
        for r in &regressions {
            writeln!(out, "  {r}").unwrap();
        }
    }
    let c = counts(results);
    let summary: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| format!("{} {}", c.get(v).copied().unwrap_or(0), paint(*v, color)))
        .collect();
    writeln!(out, "\n{}", summary.join(", ")).unwrap();
    out
}

/// Cases whose verdict differs between versions of the same library
/// (`cilium@v0.20.0` vs `cilium`): regressions or fixes, either way a finding.
pub fn version_differences(results: &[CaseResult]) -> Vec<String> {
    let mut out = Vec::new();
    let family = |label: &str| label.split('@').next().unwrap_or(label).to_string();
    let mut cases: Vec<&str> = results.iter().map(|r| r.case.as_str()).collect();
    cases.dedup();
    for case in cases {
        let runs: Vec<&CaseResult> = results.iter().filter(|r| r.case == case).collect();
        for (i, a) in runs.iter().enumerate() {
            for b in &runs[i + 1..] {
                if a.loader == b.loader || family(&a.loader) != family(&b.loader) {
                    continue;
                }
                if a.verdict != b.verdict {
                    out.push(format!("{case}: {} {} vs {} {}", a.loader, a.verdict, b.loader, b.verdict));
                } else if a.observed != b.observed {
                    let why = if a.expected != b.expected { "each as its version's expectation says" } else { "the same expectation" };
                    out.push(format!("{case}: {} and {} both {}, with different traces ({why})", a.loader, b.loader, a.verdict));
                }
            }
        }
    }
    out
}

/// One JSON array of result objects. The header's facts are in every object
/// (`kernel`, `library`, `loader`), so each result stands alone.
pub fn json(results: &[CaseResult]) -> String {
    serde_json::to_string_pretty(results).expect("results serialise")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn junit(header: &RunHeader, results: &[CaseResult]) -> String {
    let c = counts(results);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let n = |v: Verdict| c.get(&v).copied().unwrap_or(0);
    writeln!(
        out,
        "<testsuite name=\"probeconf\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        results.len(),
        n(Verdict::Fail) + n(Verdict::Flaky),
        n(Verdict::Error),
        n(Verdict::Unsupported) + n(Verdict::Known) + n(Verdict::Skip)
    )
    .unwrap();
    writeln!(out, "  <properties><property name=\"kernel\" value=\"{}\"/></properties>", xml_escape(&header.kernel)).unwrap();
    for r in results {
        write!(
            out,
            "  <testcase classname=\"probeconf.{}\" name=\"{}\" time=\"{:.3}\">",
            r.loader,
            xml_escape(&r.case),
            r.duration_ms as f64 / 1000.0
        )
        .unwrap();
        match r.verdict {
            Verdict::Pass => {}
            Verdict::Unsupported | Verdict::Skip => write!(out, "<skipped message=\"{}\"/>", xml_escape(&r.detail)).unwrap(),
            Verdict::Fail => write!(
                out,
                "<failure message=\"{}\">{}</failure>",
                xml_escape(&r.detail),
                xml_escape(r.diff.as_deref().unwrap_or(""))
            )
            .unwrap(),
            Verdict::Flaky => {
                let attempts: Vec<String> = r
                    .attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("attempt {} ({}):\n{}", i + 1, a.verdict, a.observed.as_deref().unwrap_or(&a.detail)))
                    .collect();
                write!(
                    out,
                    "<failure type=\"flaky\" message=\"flaky: {}\">{}</failure>",
                    xml_escape(&r.detail),
                    xml_escape(&attempts.join("\n"))
                )
                .unwrap()
            }
            // Shown and counted, not a failure: JUnit's nearest is a skip with the reason.
            Verdict::Known => write!(out, "<skipped type=\"known\" message=\"{}\"/>", xml_escape(&r.detail)).unwrap(),
            Verdict::Error => write!(out, "<error message=\"{}\"/>", xml_escape(&r.detail)).unwrap(),
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
