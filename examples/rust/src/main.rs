//! session-tracer: prints the events of a uprobe.session (and optionally a
//! kprobe.session) program attached to one process, one JSON object a line.
//!
//! ```text
//! session-tracer --objects DIR [--session pc_leaf] [--session-cookie-base 0x1000]
//!                [--kprobe-session SYMBOL [--kprobe-cookie N] [--kprobe-cookie-base N]
//!                 [--kprobe-skip never|always|odd-arg0|even-arg0]]
//!                -- PROGRAM ARGS...
//! ```
//!
//! See the library part (src/lib.rs) for what it does. Exit status: 0, 1 on
//! an error, 2 on a usage error, 3 when the kernel lacks a feature asked for
//! (a bridge error of class `unsupported`, e.g. no kprobe_multi links).

use session_tracer::{trace, Options, SkipReturn};
use std::process::ExitCode;

const USAGE: &str = "usage: session-tracer --objects DIR [--session SYMBOL] [--session-cookie-base N] \
[--kprobe-session SYMBOL [--kprobe-cookie N] [--kprobe-cookie-base N] [--kprobe-skip never|always|odd-arg0|even-arg0]] \
-- PROGRAM ARGS...";

fn number(flag: &str, v: &str) -> Result<u64, String> {
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|e| format!("{flag} {v:?}: {e}"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        objects: ".".into(),
        session: "pc_leaf".into(),
        session_cookie_base: 0x1000,
        kprobe_session: None,
        kprobe_cookie: 0,
        kprobe_cookie_base: 0x100,
        kprobe_skip: SkipReturn::Never,
        command: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--" {
            o.command = it.cloned().collect();
            break;
        }
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--objects" => o.objects = value()?.into(),
            "--session" => o.session = value()?,
            "--session-cookie-base" => o.session_cookie_base = number(flag, &value()?)?,
            "--kprobe-session" => o.kprobe_session = Some(value()?),
            "--kprobe-cookie" => o.kprobe_cookie = number(flag, &value()?)?,
            "--kprobe-cookie-base" => o.kprobe_cookie_base = number(flag, &value()?)?,
            "--kprobe-skip" => {
                let v = value()?;
                o.kprobe_skip = SkipReturn::parse(&v).ok_or(format!("--kprobe-skip {v:?}: never, always, odd-arg0 or even-arg0"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    if o.command.is_empty() {
        return Err(USAGE.into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match trace(&opts) {
        Ok(events) => {
            for e in events {
                println!("{}", serde_json::to_string(&e).expect("events serialise"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("session-tracer: {e}");
            // 3: the kernel lacks the feature (the test skips on it).
            ExitCode::from(if e.is_not_supported() { 3 } else { 1 })
        }
    }
}
