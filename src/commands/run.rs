//! `probeconf run`, `list`, `show`, and the hidden `attempt` (one attempt in
//! a fresh process, for reruns).

use super::{gate, load_cases, need_root, Format, LoaderArgs};
use probeconf::case::Case;
use probeconf::loaders::Loader;
use probeconf::probing::{self, features};
use probeconf::report::{self, RunHeader};
use probeconf::run::{run_all, RunOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Case files or directories.
    paths: Vec<PathBuf>,
    #[command(flatten)]
    loaders: LoaderArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
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
}

pub fn run(a: RunArgs) -> Result<ExitCode, String> {
    need_root()?;
    if a.repeat == 0 {
        return Err("--repeat is at least 1".into());
    }
    probeconf::interrupt::install();
    let (cases, bad) = load_cases(&a.paths)?;
    let features = probing::host_features();
    let loaders = a.loaders.open()?;
    let loader_refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let header = RunHeader {
        kernel: features.kernel.clone(),
        libraries: loaders.iter().map(|l| (l.label(), l.library())).collect(),
        kfunc_variant: probing::kfunc_variant(),
    };
    let total = (cases.len() * loader_refs.len()) as u64;
    let bar = if a.format == Format::Table && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap());
        Some(b)
    } else {
        None
    };
    let opts = RunOptions {
        target_timeout: std::time::Duration::from_secs(a.target_timeout),
        attempts: probeconf::run::attempts::AttemptPolicy { repeat: a.repeat, reruns: a.reruns },
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
    match a.format {
        Format::Table => print!("{}", report::table(&header, &results, color)),
        Format::Json => println!("{}", report::json(&results)),
        Format::Junit => print!("{}", report::junit(&header, &results)),
    }
    if probeconf::interrupt::requested() {
        eprintln!("interrupted: {} of {total} runs done; everything attached was released", results.len());
        return Ok(ExitCode::from(130));
    }
    let mut failed = results.iter().any(|r| r.verdict.is_failure());
    if let Some(b) = &a.baseline {
        let runs = probeconf::judge::regression::parse(&report::json(&results))?;
        failed |= gate(b, &runs)?;
    }
    if bad > 0 {
        eprintln!("{bad} case file(s) could not be read");
    }
    Ok(if failed || bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[derive(clap::Args)]
pub struct AttemptArgs {
    case: PathBuf,
    /// The FeatureSet JSON of the kernel (probed by the parent).
    #[arg(long)]
    features: PathBuf,
    /// The loaders, as the parent describes them (JSON array of specs).
    #[arg(long)]
    loaders: String,
    #[arg(long, default_value_t = 20)]
    target_timeout: u64,
}

pub fn attempt(a: AttemptArgs) -> Result<ExitCode, String> {
    need_root()?;
    let case = Case::load(&a.case).map_err(|e| e.to_string())?;
    let text = std::fs::read(&a.features).map_err(|e| format!("{}: {e}", a.features.display()))?;
    let features: features::FeatureSet = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", a.features.display()))?;
    let specs: Vec<probeconf::loaders::registry::LoaderSpec> = serde_json::from_str(&a.loaders).map_err(|e| format!("--loaders: {e}"))?;
    let loaders = specs.iter().map(|s| s.open()).collect::<Result<Vec<_>, _>>()?;
    let opts = RunOptions { target_timeout: std::time::Duration::from_secs(a.target_timeout), ..RunOptions::default() };
    let results: Vec<_> = loaders.iter().map(|l| probeconf::run::run_case(&case, l.as_ref(), &features, &opts)).collect();
    println!("{}", report::json(&results));
    Ok(ExitCode::SUCCESS)
}

pub fn list(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let (cases, bad) = load_cases(paths)?;
    let w = cases.iter().map(|c| c.id.len()).max().unwrap_or(2);
    for c in &cases {
        let kinds: Vec<String> = c.probes.iter().map(|p| p.kind.to_string()).collect();
        println!("{:<w$}  {:<34}  {}", c.id, kinds.join(","), c.description.lines().next().unwrap_or(""));
    }
    Ok(if bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// Case id or file.
    case: String,
    #[command(flatten)]
    loaders: LoaderArgs,
}

fn find_case(name: &str) -> Result<Case, String> {
    let p = PathBuf::from(name);
    if p.exists() {
        return Case::load(&p).map_err(|e| e.to_string());
    }
    let (cases, _) = load_cases(&[])?;
    cases.into_iter().find(|c| c.id == name).ok_or_else(|| format!("no case with id `{name}` (see `probeconf list`)"))
}

pub fn show(a: ShowArgs) -> Result<ExitCode, String> {
    let case = find_case(&a.case)?;
    println!("# {}\n{}", case.path.display(), std::fs::read_to_string(&case.path).unwrap_or_default());
    let dir = probeconf::run::artifacts::RunDir::new().map_err(|e| e.to_string())?;
    let plan = probeconf::plan::plan(&case, &dir, probing::kfunc_variant());
    println!("# resolved plan\n{}", serde_json::to_string_pretty(&plan).unwrap());
    need_root()?;
    let features = probing::host_features();
    for l in a.loaders.open()? {
        let r = probeconf::run::run_case(&case, l.as_ref(), features, &RunOptions::default());
        println!("\n# trace via {} ({}): {}\n{}", r.loader, r.library, r.verdict, r.observed.as_deref().unwrap_or("(none)"));
        println!("# {}", r.detail);
        if let Some(d) = &r.diff {
            println!("{d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
