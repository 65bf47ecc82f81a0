//! `probeconf kernels`, `gaps` and `features`: what is available where.

use super::{need_root, Format};
use clap::{Subcommand, ValueEnum};
use probeconf::probing::{self, features};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KernelsCmd {
    /// Cached kernels, and the versions the archive serves.
    List {
        /// Refresh the package lists first.
        #[arg(long)]
        refresh: bool,
    },
    /// Download and cache kernels (e.g. 6.1 6.12 7.3).
    Fetch { versions: Vec<String> },
}

pub fn kernels(cmd: KernelsCmd) -> Result<ExitCode, String> {
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GapsFormat {
    Table,
    Json,
    Markdown,
}

#[derive(clap::Args)]
pub struct GapsArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: GapsFormat,
    /// Rewrite the gaps table between the markers of this README.
    #[arg(long)]
    update_readme: Option<PathBuf>,
}

fn all_gaps() -> Result<Vec<probeconf::loaders::compat::Gap>, String> {
    let harness = probeconf::loaders::go_build::ensure_harness(None)?;
    let mut gaps = probeconf::loaders::compat::rust_registry();
    gaps.extend(probeconf::loaders::compat::go_registry(&harness)?);
    Ok(gaps)
}

pub fn gaps(a: GapsArgs) -> Result<ExitCode, String> {
    use probeconf::loaders::compat;
    let gaps = all_gaps()?;
    if let Some(readme) = a.update_readme {
        let text = std::fs::read_to_string(&readme).map_err(|e| format!("{}: {e}", readme.display()))?;
        let new = compat::readme_with(&text, &compat::markdown(&gaps))?;
        std::fs::write(&readme, new).map_err(|e| format!("{}: {e}", readme.display()))?;
        eprintln!("updated the gaps table in {}", readme.display());
        return Ok(ExitCode::SUCCESS);
    }
    match a.format {
        GapsFormat::Table => print!("{}", compat::table(&gaps)),
        GapsFormat::Json => println!("{}", serde_json::to_string_pretty(&gaps).unwrap()),
        GapsFormat::Markdown => print!("{}", compat::markdown(&gaps)),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn features(format: Format) -> Result<ExitCode, String> {
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
