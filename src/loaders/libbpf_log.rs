//! libbpf's log, captured instead of printed: libbpf explains most failures
//! only in its log ("failed to resolve symbol", verifier output), so the lines
//! of a failing operation are appended to that failure's `detail`.

use libbpf_rs::PrintLevel;
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn capture(level: PrintLevel, msg: String) {
    if level == PrintLevel::Debug {
        return;
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

/// Routes libbpf's output here (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Info, capture)));
    });
}

/// Forgets what this thread captured so far.
pub fn clear() {
    install();
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
