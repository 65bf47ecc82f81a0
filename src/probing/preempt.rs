//! The kernel's dynamic preemption model (PREEMPT_DYNAMIC kernels):
//! /sys/kernel/debug/sched/preempt lists the models the kernel offers and
//! marks the current one, `(lazy)`; writing a name switches at once. Cases
//! that set `preempt:` run under that model and put the old one back
//! afterwards (on every exit path: the guard restores on drop).

use crate::case::PreemptMode;
use crate::probing::features::ProbeResult;

pub const SCHED_PREEMPT: &str = "/sys/kernel/debug/sched/preempt";

/// What the kernel offers and which is current, from the file's text
/// (`none voluntary full (lazy)`).
pub fn parse(text: &str) -> (Vec<PreemptMode>, Option<PreemptMode>) {
    let mut offered = Vec::new();
    let mut current = None;
    for w in text.split_whitespace() {
        let bare = w.trim_start_matches('(').trim_end_matches(')');
        if let Ok(m) = bare.parse::<PreemptMode>() {
            offered.push(m);
            if w.starts_with('(') {
                current = Some(m);
            }
        }
    }
    (offered, current)
}

fn read() -> std::io::Result<(Vec<PreemptMode>, Option<PreemptMode>)> {
    std::fs::read_to_string(SCHED_PREEMPT).map(|t| parse(&t))
}

/// The model in force now; `None` where it cannot be read (no debugfs,
/// not PREEMPT_DYNAMIC, lockdown).
pub fn current() -> Option<PreemptMode> {
    read().ok().and_then(|(_, c)| c)
}

fn write(mode: PreemptMode) -> std::io::Result<()> {
    std::fs::write(SCHED_PREEMPT, mode.as_str())
}

/// The `preempt-dynamic` probe: the current model can be read, and writing
/// it back is accepted (a no-op switch).
pub fn probe() -> ProbeResult {
    match read() {
        Err(e) => ProbeResult { supported: false, detail: format!("{SCHED_PREEMPT}: {e}") },
        Ok((_, None)) => ProbeResult { supported: false, detail: format!("{SCHED_PREEMPT}: no current model marked") },
        Ok((offered, Some(cur))) => match write(cur) {
            Ok(()) => ProbeResult {
                supported: true,
                detail: format!(
                    "current {cur}; offers {}",
                    offered.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
                ),
            },
            Err(e) => ProbeResult { supported: false, detail: format!("writing `{cur}` to {SCHED_PREEMPT}: {e}") },
        },
    }
}

/// While alive, the kernel runs under another model; dropping it restores
/// the one before.
pub struct Switched {
    previous: PreemptMode,
}

impl Drop for Switched {
    fn drop(&mut self) {
        let _ = write(self.previous);
    }
}

/// Switches to `mode`. Errors say why it cannot (the kernel does not offer
/// that model, or the file cannot be written): the case is then unsupported.
pub fn switch(mode: PreemptMode) -> Result<Switched, String> {
    let (offered, current) = read().map_err(|e| format!("{SCHED_PREEMPT}: {e}"))?;
    let previous = current.ok_or_else(|| format!("{SCHED_PREEMPT}: no current model marked"))?;
    if !offered.contains(&mode) {
        let list = offered.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        return Err(format!("the kernel does not offer preempt={mode} (it offers {list})"));
    }
    write(mode).map_err(|e| format!("writing `{mode}` to {SCHED_PREEMPT}: {e}"))?;
    Ok(Switched { previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_model_is_the_one_in_parentheses() {
        let (offered, current) = parse("none voluntary full (lazy)\n");
        assert_eq!(offered, PreemptMode::ALL);
        assert_eq!(current, Some(PreemptMode::Lazy));
        // 7.x kernels offer fewer models.
        let (offered, current) = parse("(full) lazy");
        assert_eq!(offered, [PreemptMode::Full, PreemptMode::Lazy]);
        assert_eq!(current, Some(PreemptMode::Full));
        assert_eq!(parse("garbage").1, None);
    }
}
