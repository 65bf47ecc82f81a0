//! The probeconf command line.

use clap::{Parser, Subcommand, ValueEnum};
use probeconf::case::{discover, Case, LoaderId};
use probeconf::loaders::cilium::CiliumLoader;
use probeconf::loaders::libbpf::LibbpfLoader;
use probeconf::loaders::Loader;
use probeconf::report::{self, RunHeader};
use probeconf::run::{run_all, RunOptions};
use probeconf::probing::{self, features};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "probeconf", version, about = "Conformance suite for Linux BPF probes across libbpf and cilium/ebpf")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LoaderArg {
    Libbpf,
    Cilium,
    All,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Junit,
}

#[derive(Subcommand)]
enum KernelsCmd {
    /// Cached kernels, and the versions the archive serves.
    List {
        /// Refresh the package lists first.
        #[arg(long)]
        refresh: bool,
    },
    /// Download and cache kernels (e.g. 6.1 6.12 7.3).
    Fetch { versions: Vec<String> },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum GapsFormat {
    Table,
    Json,
    Markdown,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Case files or directories (default: cases/).
    paths: Vec<PathBuf>,
    /// Comma-separated kernels. Each is a Debian kernel version (6.1, 6.12.117,
    /// 6.12.117+deb13-amd64, 7) or a kernel image file: image:PATH, or the
    /// path of an existing file. An entry that reads as a Debian version
    /// (a digit first, then only 0-9 a-z . + ~ -) always is one; anything
    /// else must be an existing file, or it is an error column.
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Every kernel the archive serves (newest of each major.minor).
    #[arg(long)]
    all: bool,
    #[arg(long, value_enum, default_value = "all")]
    loader: LoaderArg,
    /// Output directory for matrix.{json,md,html} and VM logs.
    #[arg(long, default_value = "matrix-out")]
    out: PathBuf,
    /// Seconds one boot of a kernel may take (a column boots again after a crash).
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// VMs at once (default: number of cores).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Attempts every case gets per kernel; results that differ between them are `flaky`.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Further attempts (fresh processes) of a case that did not pass, while they agree.
    #[arg(long, default_value_t = 2)]
    reruns: usize,
    /// TCG's vCPU threading: single (the default; multi-threaded TCG of QEMU
    /// < 8.1 crashes kernels, see README) or multi.
    #[arg(long, default_value = "single")]
    tcg_thread: probeconf::vm::TcgThreads,
    /// Boot each kernel under each of these preemption models (`preempt=`
    /// on the kernel command line), one column each: none, voluntary, full, lazy.
    #[arg(long, value_delimiter = ',')]
    preempt: Vec<probeconf::case::PreemptMode>,
    /// Run only the I-th of N deterministic shares of the columns (and of
    /// the cases, when there are fewer columns than shards); join the shards'
    /// outputs with `probeconf matrix merge`.
    #[arg(long)]
    shard: Option<probeconf::matrix::shard::Shard>,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// Compare with an earlier matrix.json (or result file) and exit 1 on
    /// regressions (see `probeconf diff`).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Crash every column's kernel on purpose at this point (tests recovery;
    /// see src/vm/cmdline.rs `probeconf.crash`).
    #[arg(long, hide = true)]
    inject_crash: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct MatrixCmd {
    #[command(subcommand)]
    sub: Option<MatrixSub>,
    #[command(flatten)]
    run: MatrixArgs,
}

#[derive(Subcommand)]
enum MatrixSub {
    /// Join the outputs of every shard of one matrix (`--shard I/N` runs)
    /// into one matrix.{json,md,html}.
    Merge {
        /// The shards' output directories (each with its matrix.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, default_value = "matrix-out")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Run cases (default: every case under cases/) against the host kernel.
    Run {
        /// Case files or directories.
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "all")]
        loader: LoaderArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Build the Go harness against this cilium/ebpf release (e.g. v0.20.0).
        /// Repeat it to compare releases side by side in one run.
        #[arg(long)]
        cilium_version: Vec<String>,
        /// Seconds a target may run its steps.
        #[arg(long, default_value_t = 20)]
        target_timeout: u64,
        /// Attempts every case gets; results that differ between them are `flaky`.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Further attempts (each in a fresh process) of a case that did not
        /// pass, while its attempts agree; any disagreement is `flaky`.
        #[arg(long, default_value_t = 2)]
        reruns: usize,
        /// Compare with an earlier result file (`--format json` output or a
        /// matrix.json) and exit 1 on regressions (see `probeconf diff`).
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Compare two result files (`run --format json` outputs or matrix.json):
    /// regressions (new fail/flaky/error, a changed trace, a run that
    /// disappeared) and improvements. Exit 1 on regressions.
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One attempt of one case through the given loaders, in this fresh
    /// process; prints the results as JSON (used by the runner for reruns).
    #[command(hide = true)]
    Attempt {
        case: PathBuf,
        /// The FeatureSet JSON of the kernel (probed by the parent).
        #[arg(long)]
        features: PathBuf,
        /// The loaders, as the parent describes them (JSON array of specs).
        #[arg(long)]
        loaders: String,
        #[arg(long, default_value_t = 20)]
        target_timeout: u64,
    },
    /// List the cases.
    List { paths: Vec<PathBuf> },
    /// Show a case, its resolved plan and its last trace.
    Show {
        /// Case id or file.
        case: String,
        #[arg(long, value_enum, default_value = "all")]
        loader: LoaderArg,
    },
    /// Run the cases in real Debian kernels under QEMU, both loaders, and
    /// write matrix.json, matrix.md and matrix.html.
    Matrix(MatrixCmd),
    /// Debian kernel images for the matrix.
    Kernels {
        #[command(subcommand)]
        cmd: KernelsCmd,
    },
    /// Measure the cost of a probe hit per kind and loader, side by side.
    Bench {
        /// A short run (under 30 s): fewer calls and samples.
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "all")]
        loader: LoaderArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write an SVG bar chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Also measure attach time for 1, 10, 100, 1000 functions (multi vs single links).
        #[arg(long)]
        attach: bool,
        /// With --attach: measure kprobe.multi vs single kprobes on kernel
        /// functions in this Debian kernel, booted under QEMU.
        #[arg(long)]
        kernel: Option<String>,
    },
    /// Does this QEMU run the kernel's cross-modifying code correctly? Boots
    /// kernels that flip a static key while both vCPUs context-switch, per
    /// TCG threading mode, and counts the boots that crashed.
    TcgStress {
        #[arg(long, value_delimiter = ',', default_value = "6.18,7.3")]
        kernels: Vec<String>,
        /// TCG threading modes to compare (single, multi).
        #[arg(long, value_delimiter = ',', default_value = "multi,single")]
        tcg_thread: Vec<probeconf::vm::TcgThreads>,
        /// Boots per kernel and mode.
        #[arg(long, default_value_t = 10)]
        boots: usize,
        /// Seconds of static-key flipping per boot.
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value_t = 2)]
        smp: u32,
        /// VMs at once (default: number of cores).
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        #[arg(long, default_value = "tcg-stress-out")]
        out: PathBuf,
        /// The QEMU to test (default: qemu-system-x86_64 on PATH).
        #[arg(long, default_value = "qemu-system-x86_64")]
        qemu: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write the embedded artefacts (BPF objects, probe-target) into a directory.
    Artifacts { out: PathBuf },
    /// The compatibility registry: library gaps and how they are bridged.
    Gaps {
        #[arg(long, value_enum, default_value = "table")]
        format: GapsFormat,
        /// Rewrite the gaps table between the markers of this README.
        #[arg(long)]
        update_readme: Option<PathBuf>,
    },
    /// Probe the running kernel's features (by trying).
    Features {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

fn default_cases_dir() -> PathBuf {
    let local = PathBuf::from("cases");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Loads every case; a malformed one (or two with one id) is reported
/// (file:line:col) and counted.
fn load_cases(paths: &[PathBuf]) -> Result<(Vec<Case>, usize), String> {
    let paths = if paths.is_empty() { vec![default_cases_dir()] } else { paths.to_vec() };
    let files = discover(&paths).map_err(|e| e.to_string())?;
    let (cases, errors) = probeconf::case::load_set(&files);
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok((cases, errors.len()))
}

fn loaders(arg: LoaderArg, cilium_versions: &[String]) -> Result<Vec<Box<dyn Loader>>, String> {
    let mut v: Vec<Box<dyn Loader>> = Vec::new();
    if matches!(arg, LoaderArg::Libbpf | LoaderArg::All) {
        v.push(Box::new(LibbpfLoader));
    }
    if matches!(arg, LoaderArg::Cilium | LoaderArg::All) {
        if cilium_versions.is_empty() {
            v.push(Box::new(CiliumLoader::build(None).map_err(|e| format!("cilium loader: {e}"))?));
        }
        for ver in cilium_versions {
            eprintln!("building the Go harness against cilium/ebpf {ver} (cached per version)…");
            let c = CiliumLoader::build(Some(ver)).map_err(|e| format!("cilium loader {ver}: {e}"))?;
            v.push(Box::new(c));
        }
    }
    Ok(v)
}

fn need_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("probeconf loads BPF programs and needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)".into());
    }
    Ok(())
}

/// Prints the comparison of `current` with the baseline file; true when
/// there are regressions.
fn gate(baseline: &std::path::Path, current: &[probeconf::judge::regression::Run]) -> Result<bool, String> {
    let before = probeconf::judge::regression::read(baseline)?;
    let c = probeconf::judge::regression::compare(&before, current);
    eprint!("{}", probeconf::judge::regression::text(&c, &baseline.display().to_string(), "this run"));
    Ok(c.regressions() > 0)
}

fn cmd_diff(a: &std::path::Path, b: &std::path::Path, format: Format) -> Result<ExitCode, String> {
    let c = probeconf::judge::regression::compare(&probeconf::judge::regression::read(a)?, &probeconf::judge::regression::read(b)?);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&c).unwrap()),
        _ => print!("{}", probeconf::judge::regression::text(&c, &a.display().to_string(), &b.display().to_string())),
    }
    Ok(if c.regressions() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn cmd_attempt(case: &std::path::Path, features: &std::path::Path, loaders: &str, timeout: u64) -> Result<ExitCode, String> {
    need_root()?;
    let case = Case::load(case).map_err(|e| e.to_string())?;
    let text = std::fs::read(features).map_err(|e| format!("{}: {e}", features.display()))?;
    let features: features::FeatureSet = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", features.display()))?;
    let specs: Vec<probeconf::run::attempts::LoaderSpec> = serde_json::from_str(loaders).map_err(|e| format!("--loaders: {e}"))?;
    let loaders = specs.iter().map(|s| s.open()).collect::<Result<Vec<_>, _>>()?;
    let opts = RunOptions { target_timeout: std::time::Duration::from_secs(timeout), ..RunOptions::default() };
    let results: Vec<_> = loaders.iter().map(|l| probeconf::run::run_case(&case, l.as_ref(), &features, &opts)).collect();
    println!("{}", report::json(&results));
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn cmd_run(
    paths: &[PathBuf],
    loader: LoaderArg,
    format: Format,
    cilium_versions: &[String],
    timeout: u64,
    repeat: usize,
    reruns: usize,
    baseline: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    need_root()?;
    probeconf::interrupt::install();
    let (cases, bad) = load_cases(paths)?;
    let features = probing::host_features();
    let loaders = loaders(loader, cilium_versions)?;
    let loader_refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let header = RunHeader {
        kernel: features.kernel.clone(),
        libraries: loaders.iter().map(|l| l.library()).collect(),
        kfunc_variant: probing::kfunc_variant(),
    };
    let total = (cases.len() * loader_refs.len()) as u64;
    let bar = if format == Format::Table && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap());
        Some(b)
    } else {
        None
    };
    if repeat == 0 {
        return Err("--repeat is at least 1".into());
    }
    let opts = RunOptions {
        target_timeout: std::time::Duration::from_secs(timeout),
        attempts: probeconf::run::attempts::AttemptPolicy { repeat, reruns },
        self_exe: None,
    };
    let results = run_all(&cases, &loader_refs, features, &opts, |r| {
        if let Some(b) = &bar {
            b.set_message(format!("{} [{}] {}", r.case, r.loader, r.verdict));
            b.inc(1);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let color = std::io::stdout().is_terminal();
    match format {
        Format::Table => print!("{}", report::table(&header, &results, color)),
        Format::Json => println!("{}", report::json(&results)),
        Format::Junit => print!("{}", report::junit(&header, &results)),
    }
    if probeconf::interrupt::requested() {
        eprintln!("interrupted: {} of {total} runs done; everything attached was released", results.len());
        return Ok(ExitCode::from(130));
    }
    let mut failed = results.iter().any(|r| r.verdict.is_failure());
    if let Some(b) = baseline {
        let runs = probeconf::judge::regression::parse(&report::json(&results))?;
        failed |= gate(b, &runs)?;
    }
    if bad > 0 {
        eprintln!("{bad} case file(s) could not be read");
    }
    Ok(if failed || bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn cmd_list(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let (cases, bad) = load_cases(paths)?;
    let w = cases.iter().map(|c| c.id.len()).max().unwrap_or(2);
    for c in &cases {
        let kinds: Vec<String> = c.probes.iter().map(|p| p.kind.to_string()).collect();
        println!("{:<w$}  {:<34}  {}", c.id, kinds.join(","), c.description.lines().next().unwrap_or(""));
    }
    Ok(if bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn find_case(name: &str) -> Result<Case, String> {
    let p = PathBuf::from(name);
    if p.exists() {
        return Case::load(&p).map_err(|e| e.to_string());
    }
    let (cases, _) = load_cases(&[])?;
    cases.into_iter().find(|c| c.id == name).ok_or_else(|| format!("no case with id `{name}` (see `probeconf list`)"))
}

fn cmd_show(name: &str, loader: LoaderArg) -> Result<ExitCode, String> {
    let case = find_case(name)?;
    println!("# {}\n{}", case.path.display(), std::fs::read_to_string(&case.path).unwrap_or_default());
    let dir = probeconf::run::artifacts::RunDir::new().map_err(|e| e.to_string())?;
    let plan = probeconf::plan::plan(&case, &dir, probing::kfunc_variant());
    println!("# resolved plan\n{}", serde_json::to_string_pretty(&plan).unwrap());
    need_root()?;
    let features = probing::host_features();
    for l in loaders(loader, &[])? {
        let r = probeconf::run::run_case(&case, l.as_ref(), features, &RunOptions::default());
        println!("\n# trace via {} ({}): {}\n{}", r.loader, r.library, r.verdict, r.observed.as_deref().unwrap_or("(none)"));
        println!("# {}", r.detail);
        if let Some(d) = &r.diff {
            println!("{d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(quick: bool, loader: LoaderArg, format: Format, svg: Option<PathBuf>, attach: bool) -> Result<ExitCode, String> {
    need_root()?;
    probeconf::interrupt::install();
    let loaders = loaders(loader, &[])?;
    let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let opts = if quick { probeconf::bench::BenchOptions::quick() } else { probeconf::bench::BenchOptions::full() };
    let report = probeconf::bench::run(&refs, &opts, |m| {
        eprintln!("  {:<20} {:<8} {}", m.scenario, m.loader, m.error.clone().unwrap_or_else(|| format!("{:.1} ns/call", m.ns_per_call)))
    });
    if let Some(p) = svg {
        std::fs::write(&p, report.svg()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let scaling = if attach {
        let counts: &[usize] = if quick { &[1, 10, 100] } else { &[1, 10, 100, 1000] };
        probeconf::bench::attach_scaling(&refs, counts, if quick { 1 } else { 3 })
    } else {
        Vec::new()
    };
    match format {
        Format::Json => println!("{}", serde_json::json!({"hits": report, "attach": scaling})),
        _ => {
            print!("{}", report.table());
            if attach {
                print!("\n{}", probeconf::bench::attach_table(&scaling));
            }
        }
    }
    Ok(if report.measurements.iter().any(|m| m.error.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn cmd_kernels(cmd: KernelsCmd) -> Result<ExitCode, String> {
    use probeconf::kernels;
    match cmd {
        KernelsCmd::List { refresh } => {
            println!("cached ({}):", kernels::cache_root().display());
            for k in kernels::cached() {
                println!("  {:<6} {:<28} {}{}", k.request, k.release, k.package, if k.config.is_none() { "  (no config in the archive)" } else { "" });
            }
            match kernels::available(refresh) {
                Ok(av) => {
                    println!("available:");
                    for a in av {
                        println!("  {:<6} {:<28} {} ({})", a.request, a.release, a.package, a.suite);
                    }
                }
                Err(e) => eprintln!("available: {e}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        KernelsCmd::Fetch { versions } => {
            let mut ok = true;
            for (v, r) in versions.iter().zip(kernels::fetch(&versions)) {
                match r {
                    Ok(k) => println!("{v}: {} → {}", k.release, k.vmlinuz.display()),
                    Err(e) => {
                        ok = false;
                        eprintln!("{v}: {e}");
                    }
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Writes matrix.{json,md,html}, prints the chosen rendering, and gives the
/// exit status: 1 when any cell failed, was flaky or errored.
fn write_matrix(m: &probeconf::matrix::Matrix, out: &std::path::Path, format: Format) -> Result<ExitCode, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("matrix.json"), probeconf::matrix::json(m)).map_err(|e| e.to_string())?;
    std::fs::write(out.join("matrix.md"), probeconf::matrix::markdown(m)).map_err(|e| e.to_string())?;
    std::fs::write(out.join("matrix.html"), probeconf::matrix::html(m)).map_err(|e| e.to_string())?;
    match format {
        Format::Json => println!("{}", probeconf::matrix::json(m)),
        _ => print!("{}", probeconf::matrix::terminal(m)),
    }
    let counts = m.counts();
    let bad: usize = counts.iter().filter(|(v, _)| v.is_failure()).map(|(_, n)| n).sum();
    Ok(if bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn cmd_matrix_merge(dirs: &[PathBuf], out: &std::path::Path, format: Format) -> Result<ExitCode, String> {
    let mut parts = Vec::new();
    for d in dirs {
        let f = d.join("matrix.json");
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        parts.push(serde_json::from_str(&text).map_err(|e| format!("{}: not a matrix.json: {e}", f.display()))?);
    }
    let m = probeconf::matrix::shard::merge(parts)?;
    let code = write_matrix(&m, out, format)?;
    eprintln!("merged {} shards; wrote {}/matrix.{{json,md,html}}", dirs.len(), out.display());
    Ok(code)
}

fn cmd_matrix(a: MatrixArgs) -> Result<ExitCode, String> {
    need_root()?;
    let MatrixArgs { paths, mut kernels, all, loader, out, timeout, jobs, repeat, reruns, tcg_thread, preempt, shard, qemu, baseline, inject_crash, format } = a;
    if all {
        kernels = probeconf::kernels::available(false).map_err(|e| e.to_string())?.into_iter().map(|a| a.request).collect();
    }
    if kernels.is_empty() {
        return Err("give --kernels 6.1,6.12,… or --all (see `probeconf kernels list`)".into());
    }
    if repeat == 0 {
        return Err("--repeat is at least 1".into());
    }
    let loaders = match loader {
        LoaderArg::Libbpf => vec![LoaderId::Libbpf],
        LoaderArg::Cilium => vec![LoaderId::Cilium],
        LoaderArg::All => vec![LoaderId::Libbpf, LoaderId::Cilium],
    };
    if loaders.contains(&LoaderId::Cilium) {
        probeconf::loaders::go_build::ensure_harness(None)?;
    }
    let paths = if paths.is_empty() { vec![default_cases_dir()] } else { paths };
    let mut opts = probeconf::matrix::run::MatrixOptions::new(kernels, paths, loaders, out.clone());
    opts.timeout = std::time::Duration::from_secs(timeout);
    opts.parallel = jobs;
    opts.attempts = probeconf::run::attempts::AttemptPolicy { repeat, reruns };
    opts.tcg_threads = tcg_thread;
    opts.crash = inject_crash.as_deref().map(probeconf::vm::cmdline::CrashPlan::parse).transpose()?;
    opts.preempt = preempt;
    opts.shard = shard;
    opts.qemu = qemu;
    let start = std::time::Instant::now();
    let m = probeconf::matrix::run::run(&opts, |line| eprintln!("{line}"))?;
    let mut code = write_matrix(&m, &out, format)?;
    eprintln!("{} columns in {:.0} s; wrote {}/matrix.{{json,md,html}}", m.kernels.len(), start.elapsed().as_secs_f64(), out.display());
    if let Some(b) = baseline {
        if gate(&b, &probeconf::judge::regression::parse(&probeconf::matrix::json(&m))?)? {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// kprobe.multi attach-time scaling inside a VM (the host has no kprobes).
fn cmd_bench_kernel_attach(request: &str) -> Result<ExitCode, String> {
    need_root()?;
    let img = probeconf::kernels::fetch(&[request.to_string()]).into_iter().next().expect("one result").map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let initramfs = dir.path().join("initramfs.cpio");
    probeconf::vm::image::write(&probeconf::vm::ImageSpec { init: None, harness: None, cases: vec![] }, &initramfs)?;
    let guest = probeconf::vm::GuestOptions { mode: probeconf::vm::GuestMode::BenchAttach, ..Default::default() };
    let mut b = probeconf::vm::BootOptions::new(&img.vmlinuz, &initramfs);
    b.kernel_cmdline_extra = guest.to_kernel_args();
    b.timeout = std::time::Duration::from_secs(900);
    eprintln!("booting {} (TCG) for kprobe.multi attach-time scaling…", img.release);
    let (out, boot_crashes) = probeconf::vm::boot_retrying(&b, 3);
    if !boot_crashes.is_empty() {
        eprintln!("the kernel panicked while booting {} time(s); booted again", boot_crashes.len());
    }
    let timings: Vec<probeconf::bench::AttachTiming> = out
        .lines
        .iter()
        .filter_map(|l| match l {
            probeconf::vm::lines::GuestLine::AttachTiming { timing } => Some(timing.clone()),
            _ => None,
        })
        .collect();
    if timings.is_empty() {
        return Err(format!("the guest reported no timings ({:?}); console:\n{}", out.status, out.console_tail));
    }
    println!("kernel {} (QEMU TCG), kprobe.multi vs single kprobes on PCI/ACPI functions", img.release);
    print!("{}", probeconf::bench::attach_table(&timings));
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn cmd_tcg_stress(
    kernels: Vec<String>,
    threads: Vec<probeconf::vm::TcgThreads>,
    boots: usize,
    secs: u64,
    smp: u32,
    jobs: usize,
    out: PathBuf,
    qemu: PathBuf,
    format: Format,
) -> Result<ExitCode, String> {
    let mut images = Vec::new();
    for (req, r) in kernels.iter().zip(probeconf::kernels::fetch(&kernels)) {
        images.push((req.clone(), r.map_err(|e| format!("{req}: {e}"))?.vmlinuz));
    }
    let opts = probeconf::vm::stress::StressOptions {
        kernels: images,
        threads,
        boots,
        secs,
        smp,
        parallel: jobs,
        timeout: std::time::Duration::from_secs(300),
        work_dir: out,
        qemu,
    };
    let boots = probeconf::vm::stress::run(&opts, |b| {
        eprintln!("{} tcg={} {}: {:.0} s{}", b.kernel, b.threads.as_str(), b.outcome, b.wall_secs, b.crash.as_deref().map(|c| format!(" — {c}")).unwrap_or_default())
    })?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&boots).unwrap()),
        _ => print!("{}", probeconf::vm::stress::table(&boots)),
    }
    let broken = boots.iter().any(|b| b.outcome != "ok");
    Ok(if broken { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn all_gaps() -> Result<Vec<probeconf::loaders::compat::Gap>, String> {
    let harness = probeconf::loaders::go_build::ensure_harness(None)?;
    let mut gaps = probeconf::loaders::compat::rust_registry();
    gaps.extend(probeconf::loaders::compat::go_registry(&harness)?);
    Ok(gaps)
}

fn cmd_gaps(format: GapsFormat, update_readme: Option<PathBuf>) -> Result<ExitCode, String> {
    let gaps = all_gaps()?;
    if let Some(readme) = update_readme {
        let text = std::fs::read_to_string(&readme).map_err(|e| format!("{}: {e}", readme.display()))?;
        let new = probeconf::loaders::compat::readme_with(&text, &probeconf::loaders::compat::markdown(&gaps))?;
        std::fs::write(&readme, new).map_err(|e| format!("{}: {e}", readme.display()))?;
        eprintln!("updated the gaps table in {}", readme.display());
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        GapsFormat::Table => print!("{}", probeconf::loaders::compat::table(&gaps)),
        GapsFormat::Json => println!("{}", serde_json::to_string_pretty(&gaps).unwrap()),
        GapsFormat::Markdown => print!("{}", probeconf::loaders::compat::markdown(&gaps)),
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_features(format: Format) -> Result<ExitCode, String> {
    need_root()?;
    let f = probing::host_features();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&f.flat_json()).unwrap()),
        _ => {
            println!("kernel {}", f.kernel);
            for feat in features::Feature::ALL {
                let r = &f.results[feat];
                println!("{:<20} {:<4} {}", feat.tag(), if r.supported { "yes" } else { "no" }, r.detail);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    if probeconf::vm::guest::is_guest_init() {
        probeconf::vm::guest::guest_main()
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run { paths, loader, format, cilium_version, target_timeout, repeat, reruns, baseline } => {
            cmd_run(&paths, loader, format, &cilium_version, target_timeout, repeat, reruns, baseline.as_deref())
        }
        Cmd::Diff { a, b, format } => cmd_diff(&a, &b, format),
        Cmd::Attempt { case, features, loaders, target_timeout } => cmd_attempt(&case, &features, &loaders, target_timeout),
        Cmd::List { paths } => cmd_list(&paths),
        Cmd::Show { case, loader } => cmd_show(&case, loader),
        Cmd::Features { format } => cmd_features(format),
        Cmd::Gaps { format, update_readme } => cmd_gaps(format, update_readme),
        Cmd::Bench { kernel: Some(k), .. } => cmd_bench_kernel_attach(&k),
        Cmd::Bench { quick, loader, format, svg, attach, kernel: None } => cmd_bench(quick, loader, format, svg, attach),
        Cmd::Matrix(MatrixCmd { sub: Some(MatrixSub::Merge { dirs, out, format }), .. }) => cmd_matrix_merge(&dirs, &out, format),
        Cmd::Matrix(MatrixCmd { sub: None, run }) => cmd_matrix(run),
        Cmd::Kernels { cmd } => cmd_kernels(cmd),
        Cmd::TcgStress { kernels, tcg_thread, boots, secs, smp, jobs, out, qemu, format } => {
            cmd_tcg_stress(kernels, tcg_thread, boots, secs, smp, jobs, out, qemu, format)
        }
        Cmd::Artifacts { out } => probeconf::run::artifacts::write_all(&out).map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string()),
    };
    r.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}
