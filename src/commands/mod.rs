//! The commands of the `probeconf` binary, one module each; this one holds
//! the command line's shape and what the commands share (output formats,
//! loading cases, opening loaders, the root check, the regression gate).

mod bench;
mod diff;
mod info;
mod matrix;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use probeconf::case::{discover, Case};
use probeconf::loaders::registry::{self, LoaderRequest};
use probeconf::loaders::Loader;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "probeconf", version, about = "Conformance suite for Linux BPF probes across libbpf and cilium/ebpf")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Junit,
}

/// `--loader`, repeatable, for every command that runs cases.
#[derive(clap::Args, Clone)]
pub struct LoaderArgs {
    /// A loader: all (the default pair), libbpf[@1.5|@1.6|@1.7|@PATH],
    /// cilium[@vX.Y.Z|@PATH], or NAME=COMMAND (a program that speaks
    /// go-harness/PROTOCOL.md). Repeat for several, side by side.
    #[arg(long = "loader", value_name = "LOADER")]
    loaders: Vec<String>,
    /// Another cilium/ebpf release (e.g. v0.20.0): the same as
    /// `--loader cilium@VERSION`. Repeatable.
    #[arg(long, value_name = "VERSION")]
    cilium_version: Vec<String>,
}

impl LoaderArgs {
    /// The loaders asked for, in order; `all` when none.
    pub fn requests(&self) -> Result<Vec<LoaderRequest>, String> {
        let mut items = self.loaders.clone();
        if items.is_empty() && !self.cilium_version.is_empty() {
            // The old `--cilium-version` alone meant: libbpf and those releases.
            items.push("libbpf".into());
        }
        items.extend(self.cilium_version.iter().map(|v| format!("cilium@{v}")));
        registry::parse_list(&items)
    }

    /// Builds (where needed) and opens every loader asked for.
    pub fn open(&self) -> Result<Vec<Box<dyn Loader>>, String> {
        self.requests()?
            .iter()
            .map(|r| {
                if !matches!(r, LoaderRequest::Libbpf(None) | LoaderRequest::Cilium(None) | LoaderRequest::Command { .. }) {
                    eprintln!("preparing loader {} (built once, cached per version)…", r.label());
                }
                registry::open(r).map_err(|e| format!("loader {}: {e}", r.label()))
            })
            .collect()
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run cases (default: every case under cases/) against the host kernel.
    Run(run::RunArgs),
    /// Compare two result files (`run --format json` outputs or matrix.json):
    /// regressions (new fail/flaky/error, a changed trace, a run that
    /// disappeared) and improvements. Exit 1 on regressions.
    Diff(diff::DiffArgs),
    /// One attempt of one case through the given loaders, in this fresh
    /// process; prints the results as JSON (used by the runner for reruns).
    #[command(hide = true)]
    Attempt(run::AttemptArgs),
    /// List the cases.
    List { paths: Vec<PathBuf> },
    /// Show a case, its resolved plan and its trace from each loader.
    Show(run::ShowArgs),
    /// Run the cases in real Debian kernels under QEMU, every loader, and
    /// write matrix.json, matrix.md and matrix.html.
    Matrix(matrix::MatrixCmd),
    /// Debian kernel images for the matrix.
    Kernels {
        #[command(subcommand)]
        cmd: info::KernelsCmd,
    },
    /// Measure the cost of a probe hit per kind and loader, side by side.
    Bench(bench::BenchArgs),
    /// Does this QEMU run the kernel's cross-modifying code correctly? Boots
    /// kernels that flip static keys while both vCPUs context-switch, per
    /// TCG threading mode, and counts the boots that crashed.
    TcgStress(matrix::TcgStressArgs),
    /// Write the embedded artefacts (BPF objects, probe-target) into a directory.
    Artifacts { out: PathBuf },
    /// The compatibility registry: library gaps and how they are bridged.
    Gaps(info::GapsArgs),
    /// Probe the running kernel's features (by trying).
    Features {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

pub fn dispatch(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Diff(a) => diff::diff(a),
        Cmd::Attempt(a) => run::attempt(a),
        Cmd::List { paths } => run::list(&paths),
        Cmd::Show(a) => run::show(a),
        Cmd::Matrix(a) => matrix::matrix(a),
        Cmd::Kernels { cmd } => info::kernels(cmd),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::TcgStress(a) => matrix::tcg_stress(a),
        Cmd::Artifacts { out } => probeconf::run::artifacts::write_all(&out).map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string()),
        Cmd::Gaps(a) => info::gaps(a),
        Cmd::Features { format } => info::features(format),
    }
}

pub fn default_cases_dir() -> PathBuf {
    let local = PathBuf::from("cases");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Loads every case; a malformed one (or two with one id) is reported
/// (file:line:col) and counted.
pub fn load_cases(paths: &[PathBuf]) -> Result<(Vec<Case>, usize), String> {
    let paths = if paths.is_empty() { vec![default_cases_dir()] } else { paths.to_vec() };
    let files = discover(&paths).map_err(|e| e.to_string())?;
    let (cases, errors) = probeconf::case::load_set(&files);
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok((cases, errors.len()))
}

pub fn need_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("probeconf loads BPF programs and needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)".into());
    }
    Ok(())
}

/// Prints the comparison of `current` with the baseline file; true when
/// there are regressions.
pub fn gate(baseline: &std::path::Path, current: &[probeconf::judge::regression::Run]) -> Result<bool, String> {
    let before = probeconf::judge::regression::read(baseline)?;
    let c = probeconf::judge::regression::compare(&before, current);
    eprint!("{}", probeconf::judge::regression::text(&c, &baseline.display().to_string(), "this run"));
    Ok(c.regressions() > 0)
}
