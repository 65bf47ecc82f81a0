//! `probeconf diff A B`: the regression gate between any two result files.

use super::Format;
use probeconf::judge::regression;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The earlier (baseline) result file.
    a: PathBuf,
    /// The later one.
    b: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn diff(a: DiffArgs) -> Result<ExitCode, String> {
    let c = regression::compare(&regression::read(&a.a)?, &regression::read(&a.b)?);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&c).unwrap()),
        _ => print!("{}", regression::text(&c, &a.a.display().to_string(), &a.b.display().to_string())),
    }
    Ok(if c.regressions() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
