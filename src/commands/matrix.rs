//! `probeconf matrix` (and `matrix merge`), and `probeconf tcg-stress`.

use super::{default_cases_dir, gate, need_root, Format, LoaderArgs};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MatrixArgs {
    /// Case files or directories (default: cases/).
    paths: Vec<PathBuf>,
    /// Comma-separated kernels. Each is a Debian kernel version (6.1, 6.12.117,
    /// 6.12.117+deb13-amd64, 7) or a kernel image file: image:PATH, or the
    /// path of an existing file that does not read as a version.
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Every kernel the archive serves (newest of each major.minor).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    loaders: LoaderArgs,
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
    /// TCG's vCPU threading: single (the default; multi-threaded TCG crashes
    /// kernels, see README "TCG and kernel crashes") or multi.
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
    /// The QEMU binary: a path or a name on PATH, or `debian:VERSION` /
    /// `debian:SUITE` for a Debian QEMU run from a private root (e.g.
    /// `debian:11.1.3`, `debian:trixie-backports`; src/debian/root.rs).
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
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
pub struct MatrixCmd {
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

pub fn matrix(a: MatrixCmd) -> Result<ExitCode, String> {
    match a.sub {
        Some(MatrixSub::Merge { dirs, out, format }) => merge(&dirs, &out, format),
        None => run(a.run),
    }
}

/// Writes matrix.{json,md,html}, prints the chosen rendering, and gives the
/// exit status: 1 when any cell failed, was flaky or errored.
fn write_matrix(m: &probeconf::matrix::Matrix, out: &Path, format: Format) -> Result<ExitCode, String> {
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

fn merge(dirs: &[PathBuf], out: &Path, format: Format) -> Result<ExitCode, String> {
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

fn run(a: MatrixArgs) -> Result<ExitCode, String> {
    need_root()?;
    let mut kernels = a.kernels;
    if a.all {
        kernels = probeconf::kernels::available(false).map_err(|e| e.to_string())?.into_iter().map(|a| a.request).collect();
    }
    if kernels.is_empty() {
        return Err("give --kernels 6.1,6.12,… or --all (see `probeconf kernels list`)".into());
    }
    if a.repeat == 0 {
        return Err("--repeat is at least 1".into());
    }
    let paths = if a.paths.is_empty() { vec![default_cases_dir()] } else { a.paths };
    let mut opts = probeconf::matrix::run::MatrixOptions::new(kernels, paths, a.loaders.requests()?, a.out.clone());
    opts.timeout = std::time::Duration::from_secs(a.timeout);
    opts.parallel = a.jobs;
    opts.attempts = probeconf::run::attempts::AttemptPolicy { repeat: a.repeat, reruns: a.reruns };
    opts.tcg_threads = a.tcg_thread;
    opts.crash = a.inject_crash.as_deref().map(probeconf::vm::cmdline::CrashPlan::parse).transpose()?;
    opts.preempt = a.preempt;
    opts.shard = a.shard;
    opts.qemu = qemu_program(&a.qemu)?;
    let start = std::time::Instant::now();
    let m = probeconf::matrix::run::run(&opts, |line| eprintln!("{line}"))?;
    let mut code = write_matrix(&m, &a.out, a.format)?;
    eprintln!("{} columns in {:.0} s; wrote {}/matrix.{{json,md,html}}", m.kernels.len(), start.elapsed().as_secs_f64(), a.out.display());
    if let Some(b) = &a.baseline {
        if gate(b, &probeconf::judge::regression::parse(&probeconf::matrix::json(&m))?)? {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

#[derive(clap::Args)]
pub struct TcgStressArgs {
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
    /// The QEMU to test: a path, a name on PATH, or `debian:VERSION` /
    /// `debian:SUITE` (a Debian QEMU from a private root).
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn tcg_stress(a: TcgStressArgs) -> Result<ExitCode, String> {
    let mut images = Vec::new();
    for (req, r) in a.kernels.iter().zip(probeconf::kernels::fetch(&a.kernels)) {
        images.push((req.clone(), r.map_err(|e| format!("{req}: {e}"))?.vmlinuz));
    }
    let opts = probeconf::vm::stress::StressOptions {
        kernels: images,
        threads: a.tcg_thread,
        boots: a.boots,
        secs: a.secs,
        smp: a.smp,
        parallel: a.jobs,
        timeout: std::time::Duration::from_secs(300),
        work_dir: a.out,
        qemu: qemu_program(&a.qemu)?,
    };
    let boots = probeconf::vm::stress::run(&opts, |b| {
        eprintln!(
            "{} tcg={} {}: {:.0} s{}",
            b.kernel,
            b.threads.as_str(),
            b.outcome,
            b.wall_secs,
            b.crash.as_deref().map(|c| format!(" — {c}")).unwrap_or_default()
        )
    })?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&boots).unwrap()),
        _ => print!("{}", probeconf::vm::stress::table(&boots)),
    }
    let broken = boots.iter().any(|b| b.outcome != "ok");
    Ok(if broken { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `--qemu`: a program as given, or `debian:WANT`, QEMU's Debian package
/// (`qemu-system-x86`) at a version or the newest of a suite, fetched with its
/// dependency closure into a private root (cached) and run through the
/// root's wrapper script, which passes the root's firmware and module paths.
fn qemu_program(arg: &str) -> Result<PathBuf, String> {
    let Some(want) = arg.strip_prefix("debian:") else { return Ok(PathBuf::from(arg)) };
    let root = probeconf::debian::root::Root::ensure_with_log("qemu-system-x86", want, &mut |l| eprintln!("qemu root: {l}"))
        .map_err(|e| format!("--qemu {arg}: {e}"))?;
    let wrapper = root.qemu_wrapper().map_err(|e| format!("--qemu {arg}: {e}"))?;
    eprintln!("qemu: {} {} ({}) from {}", root.package, root.version, root.suite, wrapper.display());
    Ok(wrapper)
}
