//! probeconf-libbpf-harness: the libbpf loader of probeconf as a separate
//! program, driven over stdin/stdout by go-harness/PROTOCOL.md, like the Go
//! harness (probeconf-harness) is for cilium/ebpf.

use std::io::Write;

const USAGE: &str = "usage: probeconf-libbpf-harness run|gaps [--all]|version

  run      one case over stdin/stdout (JSON lines, see go-harness/PROTOCOL.md)
  gaps     this build's side of the compatibility registry, as a JSON array
           (--all: every entry, whichever libbpf version it applies to)
  version  protocol, library and the exact libbpf / libbpf-rs linked, as a JSON object
";

fn print_json(v: &impl serde::Serialize) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut line = serde_json::to_vec(v).expect("JSON");
    line.push(b'\n');
    match out.write_all(&line).and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("write: {e}");
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = match args[..] {
        ["run"] => run(),
        ["gaps"] => print_json(&libbpf_harness::compat::registry(false)),
        ["gaps", "--all"] => print_json(&libbpf_harness::compat::registry(true)),
        ["version"] => print_json(&libbpf_harness::version::info()),
        ["-h"] | ["--help"] | ["help"] => {
            print!("{USAGE}");
            0
        }
        _ => {
            eprint!("{USAGE}");
            2
        }
    };
    std::process::exit(status);
}

fn run() -> i32 {
    libbpf_harness::log::install(true);
    if let Err(e) = libbpf_harness::session::install_signal_handlers() {
        eprintln!("signal handlers: {e}");
    }
    // A panic must end as an error line the runner can parse; what the
    // session holds is released while unwinding.
    let result = std::panic::catch_unwind(|| {
        let mut out = std::io::stdout().lock();
        libbpf_harness::session::run(0, &mut out)
    });
    match result {
        Ok(status) => status,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let line = serde_json::json!({"type": "error", "phase": "protocol", "class": "other",
                "detail": format!("internal error (panic): {msg}")});
            println!("{line}");
            1
        }
    }
}
