//! Runs cases through loaders: spawn the targets, attach, run the steps,
//! drain, decode, normalise, judge. One case's failure (an error, a panic, a
//! missing binary) becomes that case's verdict and the run goes on.


pub mod artifacts;
pub mod attempts;
pub mod target;

use crate::observe::abi::RawEvent;
use crate::run::artifacts::RunDir;
use crate::case::{Case, Context, KernelVersion, LoaderId};
use crate::judge::check::{judge, Judgement, Observed, Verdict};
use crate::judge::classify::{Classified, ErrorClass};
use crate::probing::features::FeatureSet;
use crate::loaders::{AttachRequest, FailPhase, Loader, LoaderError, Via, ViaKind};
use crate::observe::normalise::{normalise, Names, RunFacts};
use crate::plan::{plan, Pids, Plan};
use crate::observe::symbolize::{KernelSymbols, Symbolizer};
use crate::run::target::TargetProcess;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// The result of one case through one loader.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CaseResult {
    pub case: String,
    /// The loader's label (`libbpf`, `cilium`, `cilium@v0.20.0`).
    pub loader: String,
    /// Which library (`libbpf` | `cilium`), whatever its version.
    #[serde(rename = "loader_kind")]
    pub loader_id: LoaderId,
    pub kernel: String,
    pub verdict: Verdict,
    pub detail: String,
    /// `compat` when any probe went through the compatibility layer.
    pub via: ViaKind,
    pub vias: Vec<Via>,
    pub library: String,
    /// The library's version number alone (`1.5.1`, `0.22.0`), for `when: library:`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub library_version: String,
    /// The normalised observation (trace, or `error: …`).
    pub observed: Option<String>,
    /// The expected outcome that applied.
    pub expected: Option<String>,
    /// Expected vs observed, for failures.
    pub diff: Option<String>,
    pub duration_ms: u64,
    /// The preemption model the case ran under, when the kernel says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<crate::case::PreemptMode>,
    /// Every attempt, when there was more than one (repeats, reruns of a
    /// run that did not pass): what each observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The known issue this result matched (verdict `known`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<KnownMatch>,
    /// Where the run's time went (the first attempt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// A client loader (bpftrace): the programs and links it created in the
    /// kernel, counted while it was attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<crate::probing::census::ClientCensus>,
    /// Whether the client served a kprobe/kretprobe pair of the case with one
    /// kprobe session (from `census`); `None` when the case has no such pair
    /// or nothing attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_merge: Option<bool>,
}

/// Milliseconds per phase of one run: starting the target processes, loading
/// and attaching (verifier included; for the Go harness also its start),
/// running the steps, draining the ring buffer and detaching (grace periods
/// included), and decoding + normalising.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Timing {
    /// The run directory (probe-target and the objects copied in) and the plan.
    #[serde(default)]
    pub setup_ms: u64,
    /// Starting the target processes, up to their `ready`.
    pub spawn_ms: u64,
    /// Reading the targets' symbols (ELF, USDT notes).
    #[serde(default)]
    pub symbols_ms: u64,
    pub attach_ms: u64,
    pub run_ms: u64,
    pub drain_ms: u64,
    pub normalise_ms: u64,
}

impl CaseResult {
    /// A result with nothing observed yet: the given verdict and detail.
    pub fn new(case: &str, loader: &str, loader_id: LoaderId, kernel: &str, verdict: Verdict, detail: String) -> CaseResult {
        CaseResult {
            case: case.into(),
            loader: loader.into(),
            loader_id,
            kernel: kernel.into(),
            verdict,
            detail,
            via: ViaKind::Native,
            vias: Vec::new(),
            library: String::new(),
            library_version: String::new(),
            observed: None,
            expected: None,
            diff: None,
            duration_ms: 0,
            preempt: None,
            attempts: Vec::new(),
            known: None,
            timing: None,
            census: None,
            session_merge: None,
        }
    }
}

/// One attempt of a case through a loader, judged on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Attempt {
    pub verdict: Verdict,
    pub observed: Option<String>,
    pub detail: String,
}

/// Why a `fail` or `flaky` became `known`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KnownMatch {
    /// What the run would have been without the known issue.
    pub was: Verdict,
    pub reason: String,
    pub see: String,
}

pub struct RunOptions {
    /// How long a target may run its steps.
    pub target_timeout: Duration,
    /// Attempts per case: always `repeat`, and up to `reruns` more while the
    /// attempts agree on a result that is not a pass (src/run/attempts.rs).
    pub attempts: crate::run::attempts::AttemptPolicy,
    /// The probeconf binary that runs further attempts in a fresh process
    /// (`probeconf attempt`); `None` = this executable.
    pub self_exe: Option<std::path::PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { target_timeout: Duration::from_secs(20), attempts: Default::default(), self_exe: None }
    }
}

/// Infrastructure trouble: not a loader's fault (a target that cannot start…).
pub struct Trouble(pub String);

impl<E: std::fmt::Display> From<E> for Trouble {
    fn from(e: E) -> Self {
        Trouble(e.to_string())
    }
}

/// The normalised observation of one run, with what went through compat.
pub struct Execution {
    pub observed: Observed,
    pub vias: Vec<Via>,
    pub plan: Plan,
    pub timing: Timing,
    /// What a client loader created in the kernel (bpftrace).
    pub census: Option<crate::probing::census::ClientCensus>,
    /// The loader's note on the run (Drained::note).
    pub note: Option<String>,
}

fn outcome_text(o: &crate::case::Outcome) -> String {
    match o {
        crate::case::Outcome::Trace(t) => crate::observe::normalise::canonical_lines(t).join("\n") + "\n",
        crate::case::Outcome::Error(e) => format!("error: phase={} class={}\n", e.phase, e.class),
    }
}

/// Runs a case through a loader and judges it. Never panics.
pub fn run_case(case: &Case, loader: &dyn Loader, features: &FeatureSet, opts: &RunOptions) -> CaseResult {
    let start = Instant::now();
    let library = loader.library();
    let mut result = CaseResult::new(&case.id, &loader.label(), loader.id(), &features.kernel, Verdict::Error, String::new());
    result.library = format!("{} ({})", library.library, library.version);
    if let Err(why) = loader.expresses(case) {
        result.verdict = Verdict::Skip;
        result.detail = why;
        return result;
    }
    // The preemption model first: a case that cannot have it does not run.
    let _preempt = match case.preempt.map(crate::probing::preempt::switch) {
        Some(Err(why)) => {
            result.verdict = Verdict::Unsupported;
            result.detail = format!("preempt-dynamic: {why}");
            return result;
        }
        Some(Ok(guard)) => Some(guard),
        None => None,
    };
    result.preempt = crate::probing::preempt::current();
    result.library_version = library.version.split_whitespace().next().unwrap_or("").trim_start_matches('v').to_string();
    let cx = Context {
        kernel: KernelVersion::parse(&features.kernel),
        features,
        loader: loader.id(),
        preempt: result.preempt,
        library: KernelVersion::parse(&result.library_version),
    };
    let resolved = case.expect.resolve(&cx);
    // A program bpftrace derived from the probes prints what bpftrace can
    // know: the expectation without the recorders' zero attach cookies.
    let projected;
    let expected = if loader.id() == LoaderId::Bpftrace && case.bpftrace.is_none() {
        projected = match resolved {
            crate::case::Outcome::Trace(t) => crate::case::Outcome::Trace(
                crate::observe::normalise::canonical_lines(t).iter().map(|l| l.replace(" cookie=0x0", "")).collect::<Vec<_>>().join("\n"),
            ),
            other => other.clone(),
        };
        &projected
    } else {
        resolved
    };
    result.expected = Some(outcome_text(expected));
    // preempt-dynamic was settled above (the switch is the probe's proof).
    let missing: Vec<_> = features
        .missing(&case.required_features())
        .into_iter()
        .filter(|f| *f != crate::probing::features::Feature::PreemptDynamic)
        .map(|f| (f, features.why(f).to_string()))
        .collect();

    match catch_unwind(AssertUnwindSafe(|| execute(case, loader, opts))) {
        Ok(Ok(exec)) => {
            let Judgement { verdict, detail, diff } = judge(expected, &exec.observed, &missing);
            result.verdict = verdict;
            result.detail = detail;
            result.diff = diff;
            result.observed = Some(exec.observed.normalised());
            result.via = if exec.vias.iter().any(|v| v.via == ViaKind::Compat) { ViaKind::Compat } else { ViaKind::Native };
            result.vias = exec.vias;
            result.timing = Some(exec.timing);
            let pair = exec.plan.probes.iter().any(|p| p.kind == crate::case::ProbeKind::Kprobe)
                && exec.plan.probes.iter().any(|p| p.kind == crate::case::ProbeKind::Kretprobe);
            result.session_merge = exec.census.as_ref().and_then(|c| c.kprobe_session(pair));
            if let Some(c) = &exec.census {
                result.detail = format!("{}; kernel objects: {}", result.detail, c.summary());
            }
            if let Some(n) = &exec.note {
                result.detail = format!("{}; {n}", result.detail);
            }
            result.census = exec.census;
        }
        Ok(Err(Trouble(msg))) => result.detail = msg,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            result.detail = format!("panic while running the case: {msg}");
        }
    }
    result.duration_ms = start.elapsed().as_millis() as u64;
    result
}

fn decode_error(detail: String) -> LoaderError {
    LoaderError { phase: FailPhase::Drain, probe: None, error: Classified { class: ErrorClass::Other, errno: None, detail } }
}

/// Runs a case through a loader and normalises what happened.
pub fn execute(case: &Case, loader: &dyn Loader, opts: &RunOptions) -> Result<Execution, Trouble> {
    if crate::interrupt::requested() {
        return Err(Trouble("interrupted".into()));
    }
    let mut timing = Timing::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let ms = clock.elapsed().as_millis() as u64;
        clock = Instant::now();
        ms
    };
    let dir = RunDir::new()?;
    let variant = crate::probing::kfunc_variant();
    let mut plan = plan(case, &dir, variant);
    // A loader that brings its own build of an object (made with its
    // library's headers) loads that one.
    for (name, path) in loader.own_objects() {
        for p in plan.probes.iter_mut().filter(|p| p.object.file_name().is_some_and(|f| f == name.as_str())) {
            p.object = path.clone();
        }
    }
    timing.setup_ms = lap();
    let mut p0 = TargetProcess::spawn(&dir.probe_target(), &case.run)?;
    let mut p1 = match &case.run_other {
        Some(steps) => Some(TargetProcess::spawn(&dir.probe_target(), steps)?),
        None => None,
    };
    let pids = Pids { target: p0.pid, other: p1.as_ref().map(|p| p.pid) };
    timing.spawn_ms = lap();
    let mut symbols = Symbolizer::default();
    symbols.add_process(p0.pid, &p0.maps, dir.path());
    if let Some(p) = &p1 {
        symbols.add_process(p.pid, &p.maps, dir.path());
    }

    timing.symbols_ms = lap();
    let attached = match loader.attach(&AttachRequest { plan: &plan, pids }) {
        Ok(a) => a,
        Err(e) => {
            timing.attach_ms = lap();
            return Ok(Execution { observed: Observed::Error(e), vias: Vec::new(), plan, timing, census: None, note: None });
        }
    };
    timing.attach_ms = lap();
    let vias = attached.vias();
    let census = attached.census();
    let mut facts = RunFacts::default();
    let (exit, observed, stderr) = p0.run_to_end(opts.target_timeout)?;
    facts.observations.extend(observed.into_iter().map(|o| ("P0".to_string(), o)));
    if !exit.is_clean() {
        facts.abnormal_exits.push(("P0".into(), exit.describe()));
        if matches!(exit, crate::run::target::Exit::Code(_)) && !stderr.trim().is_empty() {
            return Err(Trouble(format!("probe-target P0 {}: {}", exit.describe(), stderr.trim())));
        }
    }
    if let Some(p) = p1.as_mut() {
        let (exit, observed, _) = p.run_to_end(opts.target_timeout)?;
        facts.observations.extend(observed.into_iter().map(|o| ("P1".to_string(), o)));
        if !exit.is_clean() {
            facts.abnormal_exits.push(("P1".into(), exit.describe()));
        }
    }
    // Counters of the programs, read while they are still loaded.
    for p in plan.probes.iter().filter(|p| p.recursion_misses) {
        let misses = vias.iter().find(|v| v.probe == p.name).and_then(|v| v.prog_id).and_then(crate::probing::prog_stats::recursion_misses);
        let text = misses.map(|m| m.to_string()).unwrap_or_else(|| "?".into());
        facts.counters.push((p.name.clone(), format!("recursion_misses={text}")));
    }
    timing.run_ms = lap();
    let drained = match attached.drain() {
        Ok(d) => d,
        Err(e) => return Ok(Execution { observed: Observed::Error(e), vias, plan, timing, census, note: None }),
    };
    timing.drain_ms = lap();
    facts.dropped = drained.dropped;
    let client_events = drained.client;
    let note = drained.note;
    let mut events = Vec::with_capacity(drained.records.len());
    for r in &drained.records {
        match RawEvent::decode(r) {
            Ok(e) => events.push(e),
            Err(e) => return Ok(Execution { observed: Observed::Error(decode_error(e.to_string())), vias, plan, timing, census, note: None }),
        }
    }
    let probe_names: Vec<String> = plan.probes.iter().map(|p| p.name.clone()).collect();
    let processes: Vec<(u32, &'static str)> = std::iter::once((pids.target, "P0")).chain(pids.other.map(|p| (p, "P1"))).collect();
    let kernel_symbols = plan.probes.iter().any(|p| p.kind.is_kernel()).then(KernelSymbols::shared);
    let probe_args: Vec<u8> = plan.probes.iter().map(|p| p.args).collect();
    let single_target: Vec<Option<String>> = plan
        .probes
        .iter()
        .map(|p| match p.targets.as_slice() {
            [t] if t.offset == 0 => t.symbol.clone(),
            _ => None,
        })
        .collect();
    let probe_ret_width: Vec<u8> = plan.probes.iter().map(|p| p.ret_width).collect();
    let names = Names { probes: &probe_names, args: &probe_args, ret_width: &probe_ret_width, single_target: &single_target, processes: &processes, user: &symbols, kernel: kernel_symbols };
    let trace = match &client_events {
        Some(client) => crate::observe::normalise::normalise_client(client, &names, &facts),
        None => normalise(&events, &names, &facts),
    };
    timing.normalise_ms = lap();
    Ok(Execution { observed: Observed::Trace(trace), vias, plan, timing, census, note })
}

/// This executable, when it is probeconf (the CLI, or `/init` of a VM
/// image): further attempts run as `probeconf attempt`. Another program
/// using the library says where probeconf is in [`RunOptions::self_exe`].
fn probeconf_exe() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this executable: {e}"))?;
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name == "probeconf" || name == "init" {
        Ok(exe)
    } else {
        Err(format!("{} is not probeconf: set RunOptions::self_exe to run further attempts", exe.display()))
    }
}

/// Every case through every loader, in order: one attempt in this process,
/// further attempts as `opts.attempts` asks (src/run/attempts.rs), the
/// cross-loader check, known issues. `progress` is called per final result.
pub fn run_all(
    cases: &[Case],
    loaders: &[&dyn Loader],
    features: &FeatureSet,
    opts: &RunOptions,
    mut progress: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for case in cases {
        let mut first = Vec::new();
        for loader in loaders {
            if crate::interrupt::requested() {
                crate::judge::check::cross_check(&mut first);
                out.extend(first);
                return out;
            }
            first.push(run_case(case, *loader, features, opts));
        }
        let specs: Option<Vec<crate::loaders::registry::LoaderSpec>> = loaders.iter().map(|l| l.respawn()).collect();
        let exe = opts.self_exe.clone().map(Ok).unwrap_or_else(probeconf_exe);
        let again = || -> Result<Vec<CaseResult>, String> {
            let specs = specs.as_ref().ok_or("a loader cannot be opened in another process")?;
            let exe = exe.as_ref().map_err(|e| e.clone())?;
            crate::run::attempts::attempt_in_child(exe, case, features, specs, opts.target_timeout.as_secs())
        };
        let settled = crate::run::attempts::settle(case, features, opts.attempts, first, again);
        for r in &settled {
            progress(r);
        }
        out.extend(settled);
    }
    out
}

#[cfg(test)]
mod tests {
    //! The checker itself, on fake event streams: no BPF, but the real target,
    //! decoder, normaliser and checks.
    use super::*;
    use crate::observe::abi::{consts, Phase};
    use crate::loaders::{Attached, Drained, LibraryInfo};

    /// A loader that "attaches" nothing and drains canned events for P0.
    struct FakeLoader {
        id: LoaderId,
        cookies: Vec<u64>,
    }

    struct FakeAttached {
        records: Vec<Vec<u8>>,
    }

    impl Attached for FakeAttached {
        fn vias(&self) -> Vec<Via> {
            Vec::new()
        }
        fn drain(self: Box<Self>) -> Result<crate::loaders::Drained, LoaderError> {
            Ok(Drained { records: self.records, dropped: 0, client: None, note: None })
        }
    }

    impl Loader for FakeLoader {
        fn id(&self) -> LoaderId {
            self.id
        }
        fn library(&self) -> LibraryInfo {
            LibraryInfo { loader: self.id, library: "fake".into(), version: "0".into() }
        }
        fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
            let records = self
                .cookies
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut e = crate::observe::normalise::tests::ev(req.pids.target, req.pids.target, 0, Phase::Entry, i as u64 + 1, 0);
                    e.kind = consts::KIND_UPROBE as u16;
                    e.attach_cookie = *c;
                    e.encode().to_vec()
                })
                .collect();
            Ok(Box::new(FakeAttached { records }))
        }
    }

    fn case() -> Case {
        Case::parse(
            "id: fake\ndescription: d\nprobes: [{name: up, kind: uprobe, targets: [{symbol: pc_leaf, cookie: 0x11}]}]\nrun: call leaf 1\n\
             expect:\n  trace: |\n    P0/T0 up entry pc_leaf(1, 0) cookie=0x11\n    P0/T0 up entry pc_leaf(2, 0) cookie=0x11\n",
            std::path::Path::new("fake.yaml"),
        )
        .unwrap()
    }

    fn features() -> FeatureSet {
        FeatureSet { kernel: "6.18.0".into(), results: Default::default() }
    }

    #[test]
    fn loaders_that_agree_pass() {
        let a = FakeLoader { id: LoaderId::Libbpf, cookies: vec![0x11, 0x11] };
        let b = FakeLoader { id: LoaderId::Cilium, cookies: vec![0x11, 0x11] };
        let mut c = case();
        c.probes[0].kind = crate::case::ProbeKind::Uprobe;
        let mut f = features();
        for feat in crate::probing::features::Feature::ALL {
            f.results.insert(*feat, crate::probing::features::ProbeResult { supported: true, detail: String::new() });
        }
        let r = run_all(&[c], &[&a, &b], &f, &RunOptions::default(), |_| {});
        assert!(r.iter().all(|r| r.verdict == Verdict::Pass), "{r:#?}");
    }

    #[test]
    fn a_broken_side_fails_with_a_side_by_side_diff() {
        let a = FakeLoader { id: LoaderId::Libbpf, cookies: vec![0x11, 0x11] };
        // The "cilium" side loses a cookie: a broken loader.
        let b = FakeLoader { id: LoaderId::Cilium, cookies: vec![0x11, 0x0] };
        let mut f = features();
        for feat in crate::probing::features::Feature::ALL {
            f.results.insert(*feat, crate::probing::features::ProbeResult { supported: true, detail: String::new() });
        }
        let r = run_all(&[case()], &[&a, &b], &f, &RunOptions::default(), |_| {});
        assert_eq!(r[1].verdict, Verdict::Fail);
        // libbpf matched its expectation, but the case fails for both: loaders disagree.
        assert_eq!(r[0].verdict, Verdict::Fail, "{}", r[0].detail);
        let sbs = r[0].diff.as_deref().unwrap();
        assert!(sbs.contains("libbpf") && sbs.contains("cilium"), "{sbs}");
        assert!(sbs.contains("! P0/T0 up entry pc_leaf(2, 0) cookie=0x11 | P0/T0 up entry pc_leaf(2, 0) cookie=0x0"), "{sbs}");
    }
}
