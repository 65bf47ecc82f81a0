//! Counts the BPF programs and links of probeconf in the kernel: programs whose
//! name starts with one of ours (`pc_`, `fp_`) and links to them. Tests compare
//! the census before and after runs, failures, panics and SIGINT.

use libbpf_rs::query::{LinkInfoIter, ProgInfoIter};
use std::collections::HashSet;

/// Prefixes of every program probeconf loads (bpf/*.bpf.c).
pub const OUR_PREFIXES: [&str; 2] = ["pc_", "fp_"];

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    pub programs: Vec<(u32, String)>,
    pub links: Vec<u32>,
    /// tracefs uprobe events naming our files (libbpf's legacy attach mode
    /// creates these; the perf PMU mode used normally does not).
    pub uprobe_events: Vec<String>,
}

impl Census {
    pub fn take() -> Census {
        let mut programs = Vec::new();
        for p in ProgInfoIter::default() {
            let name = p.name.to_string_lossy().into_owned();
            if OUR_PREFIXES.iter().any(|pre| name.starts_with(pre)) {
                programs.push((p.id, name));
            }
        }
        let ids: HashSet<u32> = programs.iter().map(|(id, _)| *id).collect();
        let links = LinkInfoIter::default().filter(|l| ids.contains(&l.prog_id)).map(|l| l.id).collect();
        let uprobe_events = ["/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("probe-target") || l.contains("probeconf") || l.contains("libprobetarget"))
            .map(str::to_string)
            .collect();
        Census { programs, links, uprobe_events }
    }

    /// Takes censuses until it equals `want` or `timeout` passes, and returns
    /// the last. The kernel frees a program some time after its last link:
    /// uprobe_multi links drop their program after an RCU (tasks trace) grace
    /// period, so a census taken at once can still see it.
    pub fn settle(want: &Census, timeout: std::time::Duration) -> Census {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let now = Census::take();
            if now == *want || std::time::Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty() && self.links.is_empty() && self.uprobe_events.is_empty()
    }
}
