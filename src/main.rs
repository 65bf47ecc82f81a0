//! The probeconf command line (src/commands/, one module per command). As
//! `/init` of a VM image it is the guest instead (src/vm/guest.rs).

mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    if probeconf::vm::guest::is_guest_init() {
        probeconf::vm::guest::guest_main()
    }
    commands::dispatch(commands::Cli::parse()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}
