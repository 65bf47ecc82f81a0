//! `probeconf bench`: what a probe hit costs, per probe kind and per loader,
//! measured side by side in one run.
//!
//! Each scenario attaches counting-only programs (bpf/bench.bpf.c) through a
//! loader, exactly as cases attach recorders, and probe-target times loops of
//! calls itself (CLOCK_MONOTONIC around N calls, pinned to one CPU). Method:
//! one warm-up loop (which also lets the kernel optimise a nop5), then K
//! samples of N calls; the median per call is reported with the min–max
//! spread. The probe's own cost is the median minus the unprobed baseline.
//! Absolute figures drift on shared machines: compare ratios within one run.

use crate::run::artifacts::{KfuncVariant, RunDir};
use crate::case::{PidScope, ProbeKind, Target};
use crate::loaders::{AttachRequest, Loader};
use crate::plan::{Pids, Plan, ProbePlan};
use crate::run::target::TargetProcess;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    pub calls_per_sample: u64,
    pub samples: usize,
    pub warmup_calls: u64,
    pub cpu: usize,
}

impl BenchOptions {
    pub fn quick() -> Self {
        BenchOptions { calls_per_sample: 20_000, samples: 5, warmup_calls: 2_000, cpu: 0 }
    }
    pub fn full() -> Self {
        BenchOptions { calls_per_sample: 200_000, samples: 11, warmup_calls: 20_000, cpu: 0 }
    }
    pub fn describe(&self) -> String {
        format!("{} samples × {} calls, {} warm-up calls, pinned to CPU {}", self.samples, self.calls_per_sample, self.warmup_calls, self.cpu)
    }
}

/// One attachment of a scenario.
struct BenchProbe {
    kind: ProbeKind,
    program: &'static str,
    symbol: &'static str,
    skip_return: bool,
}

/// One thing to measure.
pub struct Scenario {
    pub id: &'static str,
    pub what: &'static str,
    /// probe-target function the loop calls, or `sys_NAME`: the loop makes
    /// the raw syscall NAME (kernel functions, [`kernel_scenarios`]).
    pub func: &'static str,
    probes: Vec<BenchProbe>,
}

impl Scenario {
    /// probe-target's step for one timed sample of `calls` calls.
    fn sample_step(&self, calls: u64) -> String {
        match self.func.strip_prefix("sys_") {
            Some(sys) => format!("bench-syscall {calls} {sys} 0"),
            None => format!("bench {calls} {} 1", self.func),
        }
    }

    /// probe-target's step for `calls` untimed warm-up calls.
    fn warmup_step(&self, calls: u64) -> String {
        match self.func.strip_prefix("sys_") {
            Some(sys) => format!("repeat-syscall {calls} {sys} 0"),
            None => format!("repeat {calls} {} 1", self.func),
        }
    }
}

fn p(kind: ProbeKind, program: &'static str, symbol: &'static str) -> BenchProbe {
    BenchProbe { kind, program, symbol, skip_return: false }
}

pub fn scenarios() -> Vec<Scenario> {
    use ProbeKind::*;
    vec![
        Scenario { id: "baseline", what: "no probe (nop1 function)", func: "nop1", probes: vec![] },
        Scenario { id: "uprobe-nop1", what: "uprobe on a 1-byte nop (int3)", func: "nop1", probes: vec![p(Uprobe, "bench_uprobe", "pc_nop1")] },
        Scenario { id: "uprobe-nop5", what: "uprobe on a 5-byte nop", func: "nop5", probes: vec![p(Uprobe, "bench_uprobe", "pc_nop5")] },
        Scenario { id: "uretprobe-nop1", what: "uretprobe, function starting with nop1", func: "nop1", probes: vec![p(Uretprobe, "bench_uretprobe", "pc_nop1")] },
        Scenario { id: "uretprobe-nop5", what: "uretprobe, function starting with nop5", func: "nop5", probes: vec![p(Uretprobe, "bench_uretprobe", "pc_nop5")] },
        Scenario { id: "uprobe-multi-nop1", what: "uprobe.multi link on nop1", func: "nop1", probes: vec![p(UprobeMulti, "bench_uprobe_multi", "pc_nop1")] },
        Scenario {
            id: "session-skip-return",
            what: "uprobe.session, entry returns 1 (no return run)",
            func: "nop1",
            probes: vec![BenchProbe { skip_return: true, ..p(UprobeSession, "bench_uprobe_session", "pc_nop1") }],
        },
        Scenario { id: "session-with-return", what: "uprobe.session, entry and return run", func: "nop1", probes: vec![p(UprobeSession, "bench_uprobe_session", "pc_nop1")] },
        Scenario {
            id: "uprobe+uretprobe",
            what: "uprobe + uretprobe pair (same work as a session with return)",
            func: "nop1",
            probes: vec![p(Uprobe, "bench_uprobe", "pc_nop1"), p(Uretprobe, "bench_uretprobe", "pc_nop1")],
        },
        Scenario { id: "usdt-nop", what: "USDT on a nop (nop; nop10 site: stays int3)", func: "usdt_nop10", probes: vec![p(Usdt, "bench_usdt", "probeconf:nop10")] },
        Scenario { id: "usdt-nop-nop5", what: "USDT on nop; nop5 (moved to the nop5 where supported)", func: "usdt_nop5", probes: vec![p(Usdt, "bench_usdt", "probeconf:nop5")] },
    ]
}

/// The kernel-function family, on the getpgid syscall's function, driven by
/// a getpgid(0) loop: the BTF trampoline kinds against the kprobe kinds that
/// do the same work, side by side in one kernel. Each attaches one counting
/// program (or a session doing entry and return).
pub fn kernel_scenarios() -> Vec<Scenario> {
    use ProbeKind::*;
    const F: &str = "__x64_sys_getpgid";
    vec![
        Scenario { id: "k-baseline", what: "getpgid(0), no probe", func: "sys_getpgid", probes: vec![] },
        Scenario { id: "kprobe", what: "kprobe (perf event)", func: "sys_getpgid", probes: vec![p(Kprobe, "bench_kprobe", F)] },
        Scenario { id: "kretprobe", what: "kretprobe (perf event)", func: "sys_getpgid", probes: vec![p(Kretprobe, "bench_kprobe", F)] },
        Scenario { id: "kprobe.multi", what: "kprobe.multi link, one function", func: "sys_getpgid", probes: vec![p(KprobeMulti, "bench_kprobe_multi", F)] },
        Scenario { id: "kprobe.session", what: "kprobe.session, entry and return", func: "sys_getpgid", probes: vec![p(KprobeSession, "bench_kprobe_session", F)] },
        Scenario {
            id: "kprobe+kretprobe",
            what: "kprobe + kretprobe pair",
            func: "sys_getpgid",
            probes: vec![p(Kprobe, "bench_kprobe", F), p(Kretprobe, "bench_kprobe", F)],
        },
        Scenario { id: "fentry", what: "fentry (BPF trampoline)", func: "sys_getpgid", probes: vec![p(Fentry, "bench_fentry", F)] },
        Scenario { id: "fexit", what: "fexit", func: "sys_getpgid", probes: vec![p(Fexit, "bench_fexit", F)] },
        Scenario { id: "fsession", what: "fsession, entry and return", func: "sys_getpgid", probes: vec![p(Fsession, "bench_fsession", F)] },
        Scenario { id: "fentry+fexit", what: "fentry + fexit pair", func: "sys_getpgid", probes: vec![p(Fentry, "bench_fentry", F), p(Fexit, "bench_fexit", F)] },
        Scenario { id: "fentry.multi", what: "tracing multi link (fentry.multi), one function", func: "sys_getpgid", probes: vec![p(FentryMulti, "bench_fentry_multi", F)] },
    ]
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Measurement {
    pub scenario: String,
    pub what: String,
    pub loader: String,
    /// Median ns per call (probe included).
    pub ns_per_call: f64,
    pub min_ns_per_call: f64,
    pub max_ns_per_call: f64,
    /// Million calls per second at the median.
    pub mhits_per_s: f64,
    /// What the probed instruction looked like after the run (`call` = optimised).
    pub state: String,
    pub error: Option<String>,
}

fn bench_plan(s: &Scenario, dir: &RunDir, variant: KfuncVariant) -> Result<Plan, String> {
    let bench_obj = dir.path().join(if variant == KfuncVariant::Ctx { "bench.ctx.bpf.o" } else { "bench.bpf.o" });
    let bytes = if variant == KfuncVariant::Ctx { crate::run::artifacts::BENCH_CTX } else { crate::run::artifacts::BENCH };
    std::fs::write(&bench_obj, bytes).map_err(|e| e.to_string())?;
    let usdt_obj = dir.path().join("bench_usdt.bpf.o");
    std::fs::write(&usdt_obj, crate::run::artifacts::BENCH_USDT).map_err(|e| e.to_string())?;
    let probes = s
        .probes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let object = if b.kind == ProbeKind::Usdt { &usdt_obj } else { &bench_obj };
            let targets = vec![Target { symbol: Some(b.symbol.into()), offset: 0, cookie: None, record: None }];
            // Kernel probes count every process's hits: the loop is the only caller.
            let (binary, pid) = if b.kind.is_kernel() { (None, PidScope::All) } else { (Some(dir.probe_target()), PidScope::Target) };
            let mut p = bench_probe(i as u32, b.kind, b.program, object, binary, targets, pid);
            if b.skip_return {
                p.return_filter = crate::observe::abi::consts::RF_ALWAYS as u32;
            }
            p
        })
        .collect();
    Ok(Plan { case_id: format!("bench-{}", s.id), variant, object: bench_obj, selectable: None, probes, run: String::new(), run_other: None, bpftrace: None, run_dir: dir.path().to_path_buf() })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs one scenario through one loader.
pub fn measure(s: &Scenario, loader: &dyn Loader, opts: &BenchOptions) -> Measurement {
    let mut m = Measurement {
        scenario: s.id.into(),
        what: s.what.into(),
        loader: loader.label(),
        ns_per_call: 0.0,
        min_ns_per_call: 0.0,
        max_ns_per_call: 0.0,
        mhits_per_s: 0.0,
        state: String::new(),
        error: None,
    };
    let run = || -> Result<(Vec<f64>, String), String> {
        let dir = RunDir::new().map_err(|e| e.to_string())?;
        let plan = bench_plan(s, &dir, crate::probing::kfunc_variant())?;
        let mut steps = format!("pin {}; {}", opts.cpu, s.warmup_step(opts.warmup_calls));
        for _ in 0..opts.samples {
            steps.push_str(&format!("; {}", s.sample_step(opts.calls_per_sample)));
        }
        if !s.func.starts_with("sys_") {
            let inspect_at = if s.func == "usdt_nop5" { " 1" } else { "" };
            steps.push_str(&format!("; inspect {}{inspect_at}", s.func));
        }
        let mut target = TargetProcess::spawn(&dir.probe_target(), &steps).map_err(|e| e.to_string())?;
        let pids = Pids { target: target.pid, other: None };
        let attached = if plan.probes.is_empty() {
            None
        } else {
            Some(loader.attach(&AttachRequest { plan: &plan, pids }).map_err(|e| e.to_string())?)
        };
        let (exit, observed, stderr) = target.run_to_end(Duration::from_secs(120)).map_err(|e| e.to_string())?;
        if let Some(a) = attached {
            a.drain().map_err(|e| e.to_string())?;
        }
        if !exit.is_clean() {
            return Err(format!("probe-target {}: {}", exit.describe(), stderr.trim()));
        }
        let mut per_call = Vec::new();
        let mut state = String::new();
        for o in observed {
            if let Some(rest) = o.strip_prefix("bench ") {
                let ns: f64 = rest.split("ns=").nth(1).and_then(|v| v.trim().parse().ok()).ok_or("bad bench line")?;
                per_call.push(ns / opts.calls_per_sample as f64);
            } else if let Some(first) = o.split_whitespace().find_map(|w| w.strip_prefix("first=")) {
                state = first.to_string();
            }
        }
        Ok((per_call, state))
    };
    match run() {
        Ok((mut per_call, state)) if !per_call.is_empty() => {
            m.min_ns_per_call = per_call.iter().cloned().fold(f64::INFINITY, f64::min);
            m.max_ns_per_call = per_call.iter().cloned().fold(0.0, f64::max);
            m.ns_per_call = median(&mut per_call);
            m.mhits_per_s = 1000.0 / m.ns_per_call;
            m.state = state;
        }
        Ok(_) => m.error = Some("no samples".into()),
        Err(e) => m.error = Some(e),
    }
    m
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BenchReport {
    pub kernel: String,
    pub machine: String,
    pub options: String,
    pub measurements: Vec<Measurement>,
    pub wall_secs: f64,
}

pub fn machine_name() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {n} CPUs")
}

/// Every scenario through every loader, interleaved per scenario so that
/// drift on the machine affects both loaders alike.
pub fn run(loaders: &[&dyn Loader], opts: &BenchOptions, progress: impl FnMut(&Measurement)) -> BenchReport {
    run_scenarios(scenarios(), loaders, opts, progress)
}

/// [`run`] over the given scenarios.
pub fn run_scenarios(all: Vec<Scenario>, loaders: &[&dyn Loader], opts: &BenchOptions, mut progress: impl FnMut(&Measurement)) -> BenchReport {
    let start = Instant::now();
    let mut measurements = Vec::new();
    for s in all {
        for l in loaders {
            if crate::interrupt::requested() {
                break;
            }
            let m = measure(&s, *l, opts);
            progress(&m);
            measurements.push(m);
        }
    }
    BenchReport {
        kernel: crate::probing::kernel_release(),
        machine: machine_name(),
        options: opts.describe(),
        measurements,
        wall_secs: start.elapsed().as_secs_f64(),
    }
}

impl BenchReport {
    fn get(&self, scenario: &str, loader: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.scenario == scenario && m.loader == loader && m.error.is_none())
    }

    pub fn loaders(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for m in &self.measurements {
            if !v.contains(&m.loader) {
                v.push(m.loader.clone());
            }
        }
        v
    }

    /// The table: per scenario and loader, ns/call (spread), M calls/s, the
    /// probe's own cost over the baseline, and its ratio to the int3 uprobe.
    pub fn table(&self) -> String {
        let mut s = String::new();
        writeln!(s, "kernel {} · {} · {}", self.kernel, self.machine, self.options).unwrap();
        writeln!(
            s,
            "{:<20} {:<8} {:>9} {:>17} {:>8} {:>11} {:>9}  {}",
            "scenario", "loader", "ns/call", "spread", "M/s", "probe ns", "vs int3", "state"
        )
        .unwrap();
        for m in &self.measurements {
            if let Some(e) = &m.error {
                writeln!(s, "{:<20} {:<8} error: {e}", m.scenario, m.loader).unwrap();
                continue;
            }
            let base = self.get("baseline", &m.loader).map(|b| b.ns_per_call).unwrap_or(0.0);
            let cost = m.ns_per_call - base;
            let int3 = self.get("uprobe-nop1", &m.loader).map(|u| u.ns_per_call - base);
            let ratio = match int3 {
                Some(u) if m.scenario != "baseline" && u > 0.0 => format!("{:.2}", cost / u),
                _ => "-".into(),
            };
            writeln!(
                s,
                "{:<20} {:<8} {:>9.1} {:>17} {:>8.2} {:>11.1} {:>9}  {}",
                m.scenario,
                m.loader,
                m.ns_per_call,
                format!("{:.1}–{:.1}", m.min_ns_per_call, m.max_ns_per_call),
                m.mhits_per_s,
                cost,
                ratio,
                m.state
            )
            .unwrap();
        }
        let loaders = self.loaders();
        if loaders.len() == 2 {
            writeln!(s, "\nloader agreement ({} / {}, probe cost over baseline):", loaders[1], loaders[0]).unwrap();
            for sc in scenarios().iter().filter(|s| s.id != "baseline") {
                let (Some(a), Some(b)) = (self.get(sc.id, &loaders[0]), self.get(sc.id, &loaders[1])) else { continue };
                let ba = self.get("baseline", &loaders[0]).map(|x| x.ns_per_call).unwrap_or(0.0);
                let bb = self.get("baseline", &loaders[1]).map(|x| x.ns_per_call).unwrap_or(0.0);
                let r = (b.ns_per_call - bb) / (a.ns_per_call - ba);
                let flag = if !(0.85..=1.15).contains(&r) { "  <- differs by more than 15%: a finding" } else { "" };
                writeln!(s, "  {:<20} {:.2}{flag}", sc.id, r).unwrap();
            }
        }
        writeln!(s, "\n{:.1} s wall", self.wall_secs).unwrap();
        s
    }

    /// A horizontal bar chart of the probe cost per scenario and loader.
    pub fn svg(&self) -> String {
        let loaders = self.loaders();
        let scen = scenarios();
        let bar_h = 14.0;
        let row_h = bar_h * loaders.len() as f64 + 10.0;
        let left = 250.0;
        let width = 900.0;
        // Scale to the largest whisker, leaving room for its label.
        let max = self.measurements.iter().filter(|m| m.error.is_none()).map(|m| m.max_ns_per_call).fold(1.0, f64::max);
        let scale = (width - left - 130.0) / max;
        let colors = ["#3b6fd1", "#e0823d", "#4a9d5b", "#9b59b6"];
        let height = 40.0 + row_h * scen.len() as f64 + 30.0;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">ns per call (median; whiskers: min–max) — kernel {} — {}</text>\n",
            self.kernel, self.machine
        );
        for (li, l) in loaders.iter().enumerate() {
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{l}</text>\n",
                left + li as f64 * 110.0,
                height - 18.0,
                colors[li % 4],
                left + li as f64 * 110.0 + 14.0,
                height - 9.0
            ));
        }
        for (i, sc) in scen.iter().enumerate() {
            let y0 = 35.0 + row_h * i as f64;
            s.push_str(&format!("<text x=\"10\" y=\"{}\">{}</text>\n", y0 + row_h / 2.0, sc.id));
            for (li, l) in loaders.iter().enumerate() {
                let Some(m) = self.get(sc.id, l) else { continue };
                let y = y0 + li as f64 * bar_h;
                let w = m.ns_per_call * scale;
                s.push_str(&format!(
                    "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\
                     <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#333\"/>\
                     <text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{:.0} ns{}</text>\n",
                    bar_h - 2.0,
                    colors[li % 4],
                    left + m.min_ns_per_call * scale,
                    left + m.max_ns_per_call * scale,
                    y + (bar_h - 2.0) / 2.0,
                    y + (bar_h - 2.0) / 2.0,
                    left + m.max_ns_per_call * scale + 6.0,
                    y + bar_h - 4.0,
                    m.ns_per_call,
                    if m.state == "call" { " (optimised)" } else { "" }
                ));
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The kprobe kind each tracing scenario does the same work as.
pub const KERNEL_PAIRS: [(&str, &str); 5] =
    [("fentry", "kprobe"), ("fexit", "kretprobe"), ("fsession", "kprobe.session"), ("fentry+fexit", "kprobe+kretprobe"), ("fentry.multi", "kprobe.multi")];

/// The per-hit table of [`kernel_scenarios`]: each probe's own cost (median
/// per call minus the unprobed syscall's), and each tracing kind's cost as a
/// ratio to the kprobe kind that does the same work, per loader, from one
/// run. `unit` names what the guest's clock counted: `ns`, or `instr` under
/// QEMU's -icount shift=0 (one guest instruction per ns).
pub fn kernel_hits_table(ms: &[Measurement], unit: &str) -> String {
    let mut s = String::new();
    let mut loaders: Vec<&str> = Vec::new();
    for m in ms {
        if !loaders.contains(&m.loader.as_str()) {
            loaders.push(&m.loader);
        }
    }
    let get = |sc: &str, l: &str| ms.iter().find(|m| m.scenario == sc && m.loader == l && m.error.is_none());
    let cost = |sc: &str, l: &str| -> Option<f64> { Some(get(sc, l)?.ns_per_call - get("k-baseline", l)?.ns_per_call) };
    writeln!(s, "{:<18} {:<48} {}", "scenario", "what", loaders.iter().map(|l| format!("{l:>22}")).collect::<String>()).unwrap();
    for sc in kernel_scenarios() {
        let cells: String = loaders
            .iter()
            .map(|l| match (get(sc.id, l), cost(sc.id, l)) {
                (Some(m), _) if sc.id == "k-baseline" => format!("{:>22}", format!("{:.0} {unit}", m.ns_per_call)),
                (Some(_), Some(c)) => format!("{:>22}", format!("+{c:.0} {unit}")),
                _ => format!("{:>22}", "error"),
            })
            .collect();
        writeln!(s, "{:<18} {:<48} {cells}", sc.id, sc.what).unwrap();
    }
    writeln!(s, "\ncost of the tracing kind / cost of the kprobe kind doing the same work:").unwrap();
    for (t, k) in KERNEL_PAIRS {
        let cells: String = loaders
            .iter()
            .map(|l| match (cost(t, l), cost(k, l)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:>22}", format!("{:.2}", a / b)),
                _ => format!("{:>22}", "-"),
            })
            .collect();
        writeln!(s, "{:<18} {:<48} {cells}", t, format!("vs {k}")).unwrap();
    }
    for m in ms.iter().filter(|m| m.error.is_some()) {
        writeln!(s, "  {} {}: {}", m.scenario, m.loader, m.error.as_deref().unwrap_or("")).unwrap();
    }
    s
}

/// One attach-time measurement: `functions` probed in one multi link or in
/// as many single links, through one loader. Load + attach, wall time.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct AttachTiming {
    pub loader: String,
    pub mode: String,
    pub functions: usize,
    /// Load + attach, median.
    pub ms: f64,
    /// Detach and unload (closing the links), median. Closing a perf-event
    /// uprobe link waits for an RCU tasks-trace grace period per link.
    pub detach_ms: f64,
    pub error: Option<String>,
}

/// A counting probe of the bench objects: no cookie writes, no filters.
fn bench_probe(
    index: u32,
    kind: ProbeKind,
    program: &'static str,
    object: &std::path::Path,
    binary: Option<std::path::PathBuf>,
    targets: Vec<Target>,
    pid: PidScope,
) -> ProbePlan {
    ProbePlan {
        name: format!("b{index}"),
        index,
        kind,
        program,
        object: object.to_path_buf(),
        binary,
        targets,
        pid,
        retprobe: kind.is_return_only(),
        session: kind.is_session(),
        cookie_mode: 0,
        cookie_value: 0,
        return_filter: 0,
        filter_arg: 0,
        filter_tgid: false,
        args: 0,
        ret_width: 64,
        recursion_misses: false,
        per_target: None,
    }
}

/// Attach-time scaling: uprobe.multi on 1, 10, 100, 1000 functions of a
/// generated target, against as many single uprobe links. Reported as
/// ratios: each loader's time relative to its own one-function multi attach
/// (the cilium figures include starting the harness, a constant that the
/// ratio to its own baseline cancels).
pub fn attach_scaling(loaders: &[&dyn Loader], counts: &[usize], repeats: usize) -> Vec<AttachTiming> {
    let Ok(dir) = RunDir::new() else { return Vec::new() };
    let target = dir.path().join("bench-target");
    let written = std::fs::write(&target, crate::run::artifacts::BENCH_TARGET).and_then(|_| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
    });
    if written.is_err() {
        return Vec::new();
    }
    let functions: Vec<String> = (0..counts.iter().copied().max().unwrap_or(1)).map(|i| format!("pc_bf_{i:04}")).collect();
    let modes = [("multi", ProbeKind::UprobeMulti, "bench_uprobe_multi"), ("single", ProbeKind::Uprobe, "bench_uprobe")];
    scaling(loaders, counts, repeats, &modes, Some(target), &functions, &dir)
}

/// Kernel functions that are safe to probe in bulk and that nothing calls in
/// the guest: PCI and ACPI helpers, from tracefs's list of traceable functions.
pub fn idle_kernel_functions(n: usize) -> Vec<String> {
    let text = ["/sys/kernel/tracing/available_filter_functions", "/sys/kernel/debug/tracing/available_filter_functions"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let blacklist = std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist").unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|f| (f.starts_with("pci_") || f.starts_with("acpi_")) && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .filter(|f| !blacklist.contains(f))
        .filter(|f| seen.insert(f.to_string()))
        .take(n)
        .map(str::to_string)
        .collect()
}

/// Attach-time scaling for kernel functions: one kprobe.multi link against as
/// many single kprobes (run in a VM: the host has no kprobes).
pub fn kernel_attach_scaling(loaders: &[&dyn Loader], counts: &[usize], repeats: usize) -> Vec<AttachTiming> {
    let Ok(dir) = RunDir::new() else { return Vec::new() };
    let functions = idle_kernel_functions(counts.iter().copied().max().unwrap_or(1));
    let modes = [("multi", ProbeKind::KprobeMulti, "bench_kprobe_multi"), ("single", ProbeKind::Kprobe, "bench_kprobe")];
    scaling(loaders, counts, repeats, &modes, None, &functions, &dir)
}

/// Whether a BTF-based tracing program can attach to `function`: a BTF FUNC
/// whose prototype the trampoline handles everywhere (at most 6 arguments,
/// none variadic, no struct or union by value). The verifier refuses the rest
/// ("The function acpi_os_printf with variable args is unsupported."), and
/// one refused function fails a whole multi link.
fn traceable(btf: &libbpf_rs::btf::Btf<'_>, function: &str) -> bool {
    use libbpf_rs::btf::types::{Func, FuncProto};
    use libbpf_rs::btf::BtfKind;
    let Some(func) = btf.type_by_name::<Func>(function) else { return false };
    let Some(Ok(proto)) = func.next_type().map(FuncProto::try_from) else { return false };
    let by_value_aggregate = |t: Option<libbpf_rs::btf::BtfType<'_>>| {
        t.map(|t| matches!(t.skip_mods_and_typedefs().kind(), BtfKind::Struct | BtfKind::Union)).unwrap_or(false)
    };
    proto.len() <= 6
        && !by_value_aggregate(proto.next_type())
        && proto.iter().all(|p| u32::from(p.ty) != 0 && !by_value_aggregate(btf.type_by_id(p.ty)))
}

/// Attach-time scaling of the tracing multi link: one fentry.multi link on N
/// kernel functions against N fentry links. An fentry program is bound to its
/// function at load, so N single links are N programs: the timing is load +
/// attach for both modes (the multi program loads once). Functions are the
/// idle ones of [`idle_kernel_functions`] that have a BTF FUNC.
pub fn tracing_attach_scaling(loaders: &[&dyn Loader], counts: &[usize], repeats: usize) -> Vec<AttachTiming> {
    let Ok(dir) = RunDir::new() else { return Vec::new() };
    let max = counts.iter().copied().max().unwrap_or(1);
    let with_btf: Vec<String> = match libbpf_rs::btf::Btf::from_vmlinux() {
        Ok(btf) => idle_kernel_functions(max * 4).into_iter().filter(|f| traceable(&btf, f)).take(max).collect(),
        Err(_) => Vec::new(),
    };
    let modes = [("multi", ProbeKind::FentryMulti, "bench_fentry_multi"), ("single", ProbeKind::Fentry, "bench_fentry")];
    scaling(loaders, counts, repeats, &modes, None, &with_btf, &dir)
}

/// The shared loop of both scalings: one untimed multi attach per loader
/// first (page cache, kernel BTF, harness start-up), then per size and mode
/// `repeats` timed rounds; single links of 100 or more get one round, since
/// each link's detach waits for an RCU grace period.
fn scaling(
    loaders: &[&dyn Loader],
    counts: &[usize],
    repeats: usize,
    modes: &[(&str, ProbeKind, &'static str); 2],
    binary: Option<std::path::PathBuf>,
    functions: &[String],
    dir: &RunDir,
) -> Vec<AttachTiming> {
    // The build whose session kfuncs this kernel takes: its session
    // programs are not loaded here, but cilium refuses an object whose kfunc
    // prototypes do not match.
    let (name, bytes) = match crate::probing::kfunc_variant() {
        KfuncVariant::NoArg => ("bench.bpf.o", crate::run::artifacts::BENCH),
        KfuncVariant::Ctx => ("bench.ctx.bpf.o", crate::run::artifacts::BENCH_CTX),
    };
    let object = dir.path().join(name);
    if std::fs::write(&object, bytes).is_err() {
        return Vec::new();
    }
    let targets = |n: usize| -> Vec<Target> {
        functions[..n].iter().enumerate().map(|(i, f)| Target { symbol: Some(f.clone()), offset: 0, cookie: Some(i as u64), record: None }).collect()
    };
    let (multi_kind, multi_program) = (modes[0].1, modes[0].2);
    if !functions.is_empty() {
        for l in loaders {
            let warm = bench_probe(0, multi_kind, multi_program, &object, binary.clone(), targets(1), PidScope::All);
            let _ = time_attach(*l, "warm-up", 1, vec![warm], &object, 1);
        }
    }
    let mut out = Vec::new();
    for &n in counts.iter().filter(|n| **n <= functions.len()) {
        for &(mode, kind, program) in modes {
            let rounds = if mode == "single" && n >= 100 { 1 } else { repeats };
            for l in loaders {
                // A single-link tracing program has one target: one probe per function.
                let probes = if kind.is_tracing() && !kind.is_multi_link() {
                    targets(n).into_iter().enumerate().map(|(i, t)| bench_probe(i as u32, kind, program, &object, None, vec![t], PidScope::All)).collect()
                } else {
                    vec![bench_probe(0, kind, program, &object, binary.clone(), targets(n), PidScope::All)]
                };
                out.push(time_attach(*l, mode, n, probes, &object, rounds));
            }
        }
    }
    out
}

/// Times `repeats` attach + detach rounds of the probes through one loader.
fn time_attach(l: &dyn Loader, mode: &str, n: usize, probes: Vec<ProbePlan>, object: &std::path::Path, repeats: usize) -> AttachTiming {
    let plan = Plan {
        case_id: format!("attach-{mode}-{n}"),
        variant: KfuncVariant::NoArg,
        object: object.to_path_buf(),
        selectable: None,
        probes,
        run: String::new(),
        run_other: None,
        bpftrace: None,
        run_dir: object.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
    };
    let req = AttachRequest { plan: &plan, pids: Pids { target: std::process::id(), other: None } };
    let (mut times, mut detach, mut error) = (Vec::new(), Vec::new(), None);
    for _ in 0..repeats {
        let t = Instant::now();
        match l.attach(&req) {
            Ok(a) => {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                let _ = a.drain();
                detach.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let ms = if times.is_empty() { 0.0 } else { median(&mut times) };
    let detach_ms = if detach.is_empty() { 0.0 } else { median(&mut detach) };
    AttachTiming { loader: l.label(), mode: mode.into(), functions: n, ms, detach_ms, error }
}

/// The scaling table: ratios to each loader's own one-function multi attach,
/// and single/multi at each size.
pub fn attach_table(t: &[AttachTiming]) -> String {
    let mut s = String::from(
        "attach-time scaling (median; ratios to the same loader's 1-function multi link; detach = closing the links):\n",
    );
    writeln!(s, "{:<8} {:>9} {:>12} {:>12} {:>14} {:>14} {:>14}", "loader", "functions", "multi", "single", "single/multi", "detach multi", "detach single").unwrap();
    let mut loaders: Vec<&str> = t.iter().map(|x| x.loader.as_str()).collect();
    loaders.dedup();
    let mut seen = Vec::new();
    for l in loaders {
        if seen.contains(&l) {
            continue;
        }
        seen.push(l);
        let base = t.iter().find(|x| x.loader == l && x.mode == "multi" && x.functions == 1).map(|x| x.ms).unwrap_or(1.0);
        let mut ns: Vec<usize> = t.iter().filter(|x| x.loader == l).map(|x| x.functions).collect();
        ns.dedup();
        ns.sort();
        ns.dedup();
        for n in ns {
            let get = |m: &str| t.iter().find(|x| x.loader == l && x.mode == m && x.functions == n);
            let cell = |x: Option<&AttachTiming>| match x {
                Some(x) if x.error.is_none() => format!("{:.2}×", x.ms / base),
                Some(x) => format!("error: {}", x.error.clone().unwrap_or_default().chars().take(40).collect::<String>()),
                None => "-".into(),
            };
            let ratio = match (get("multi"), get("single")) {
                (Some(m), Some(si)) if m.error.is_none() && si.error.is_none() && m.ms > 0.0 => format!("{:.1}", si.ms / m.ms),
                _ => "-".into(),
            };
            let dbase = t.iter().find(|x| x.loader == l && x.mode == "multi" && x.functions == 1).map(|x| x.detach_ms).unwrap_or(1.0).max(0.001);
            let dcell = |x: Option<&AttachTiming>| match x {
                Some(x) if x.error.is_none() => format!("{:.1}×", x.detach_ms / dbase),
                _ => "-".into(),
            };
            writeln!(
                s,
                "{l:<8} {n:>9} {:>12} {:>12} {:>14} {:>14} {:>14}",
                cell(get("multi")),
                cell(get("single")),
                ratio,
                dcell(get("multi")),
                dcell(get("single"))
            )
            .unwrap();
        }
    }
    for x in t.iter().filter(|x| x.error.is_some()) {
        writeln!(s, "  {} {} {}: {}", x.loader, x.mode, x.functions, x.error.as_deref().unwrap_or("")).unwrap();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_scenarios() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let ids: Vec<&str> = scenarios().iter().map(|s| s.id).collect();
        for want in ["baseline", "uprobe-nop1", "uprobe-nop5", "uretprobe-nop5", "session-skip-return", "uprobe+uretprobe", "usdt-nop-nop5"] {
            assert!(ids.contains(&want), "{want}");
        }
    }
}
