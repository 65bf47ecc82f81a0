//! libbpf's log, captured instead of printed: libbpf explains most failures
//! only in its log ("failed to resolve symbol", verifier output), so the lines
//! of a failing operation are appended to that failure's `detail`. The
//! harness binary also echoes them to stderr, for humans.

use libbpf_rs::PrintLevel;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

static ECHO: AtomicBool = AtomicBool::new(false);

static DEBUG: AtomicBool = AtomicBool::new(false);

fn capture(level: PrintLevel, msg: String) {
    if level == PrintLevel::Debug {
        if DEBUG.load(Ordering::Relaxed) {
            eprint!("libbpf debug: {msg}");
        }
        return;
    }
    if ECHO.load(Ordering::Relaxed) {
        eprint!("libbpf: {msg}");
    }
    LINES.with(|l| {
        let mut l = l.borrow_mut();
        // Verifier logs can be huge; the last lines carry the reason.
        if l.len() > 200 {
            l.remove(0);
        }
        l.push(msg.trim_end().to_string());
    });
}

/// Routes libbpf's output here (once per process). `echo`: also to stderr
/// (and libbpf's debug lines too when PROBECONF_LIBBPF_DEBUG=1).
pub fn install(echo: bool) {
    static ONCE: Once = Once::new();
    if echo {
        ECHO.store(true, Ordering::Relaxed);
        DEBUG.store(std::env::var_os("PROBECONF_LIBBPF_DEBUG").is_some_and(|v| v == "1"), Ordering::Relaxed);
    }
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
    });
}

/// Forgets what this thread captured so far.
pub fn clear() {
    install(false);
    LINES.with(|l| l.borrow_mut().clear());
}

/// What this thread captured since [`clear`], last `max` lines, joined.
pub fn take(max: usize) -> String {
    LINES.with(|l| {
        let l = std::mem::take(&mut *l.borrow_mut());
        let from = l.len().saturating_sub(max);
        l[from..].join(" | ")
    })
}

/// Appends libbpf's own log lines for the failed operation to the detail.
pub fn with_log(mut c: crate::classify::Classified) -> crate::classify::Classified {
    let log = take(6);
    if !log.is_empty() {
        c.detail = format!("{} [libbpf: {log}]", c.detail);
    }
    c
}
