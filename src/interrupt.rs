//! Ctrl-C: the first SIGINT/SIGTERM asks the runner to stop after the current
//! step; every attached probe and target is then released by its Drop. A
//! second one exits at once (the kernel still closes every fd-based link).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            REQUESTED.store(true, Ordering::SeqCst);
            if COUNT.fetch_add(1, Ordering::SeqCst) >= 1 {
                std::process::exit(130);
            }
        });
    });
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
