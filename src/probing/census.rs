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

/// One BPF program a client (bpftrace) holds, from the kernel's view.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CensusProgram {
    pub id: u32,
    /// `kprobe`, `tracepoint`, … (the program type).
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
}

/// One BPF link a client holds: its type, the attach type where the kernel
/// says it (fdinfo `attach_type`, newer kernels), how many targets, and
/// whether it is a return probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CensusLink {
    pub id: u32,
    pub prog_id: u32,
    /// `kprobe_multi`, `uprobe_multi`, `perf_event`, …
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_type: Option<String>,
    /// What it is attached to: `kprobe`, `kretprobe`, `uprobe`, `uretprobe`
    /// for perf-event links; `kprobe_multi`/`kretprobe_multi` (RETURN flag) for
    /// multi links; empty when the kernel does not say.
    pub what: String,
    /// Number of targets (kprobe_multi / uprobe_multi count; 1 for a perf link).
    pub targets: u32,
}

/// What a client created in the kernel while attached (src/loaders/bpftrace.rs):
/// every BPF program and link among its file descriptors, and perf events
/// that carry a program without a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientCensus {
    pub programs: Vec<CensusProgram>,
    pub links: Vec<CensusLink>,
    /// perf_event file descriptors (a program attached by ioctl has no link).
    pub perf_events: u32,
}

impl ClientCensus {
    /// Whether an entry and a return were served by one kprobe session:
    /// a kprobe_multi link whose attach type is the session's (where the
    /// kernel says it: BPF_TRACE_KPROBE_SESSION, 56), or, where it does not,
    /// a kprobe_multi link without the RETURN flag while no link serves the
    /// return side at all, although the script has a kprobe/kretprobe pair
    /// (`script_has_pair`). `None`: the script has no such pair.
    pub fn kprobe_session(&self, script_has_pair: bool) -> Option<bool> {
        if !script_has_pair {
            return None;
        }
        let multi: Vec<&CensusLink> = self.links.iter().filter(|l| l.ty == "kprobe_multi").collect();
        if multi.iter().any(|l| l.attach_type.as_deref().is_some_and(|a| a.contains("session") || a == "56")) {
            return Some(true);
        }
        let returns = self.links.iter().any(|l| l.what == "kretprobe" || l.what == "kretprobe_multi");
        let entries = multi.iter().any(|l| l.what == "kprobe_multi");
        Some(entries && !returns && multi.iter().all(|l| l.attach_type.is_none()))
    }

    /// One line: `2 programs (kprobe ×2), 2 links (perf_event kprobe ×1, perf_event kretprobe ×1)`.
    pub fn summary(&self) -> String {
        let mut progs: std::collections::BTreeMap<String, u32> = Default::default();
        for p in &self.programs {
            *progs.entry(p.ty.clone()).or_default() += 1;
        }
        let mut links: std::collections::BTreeMap<String, u32> = Default::default();
        for l in &self.links {
            let at = l.attach_type.as_deref().map(|a| format!(" [{a}]")).unwrap_or_default();
            *links.entry(format!("{} {}{at} ({} targets)", l.ty, l.what, l.targets)).or_default() += 1;
        }
        let join = |m: std::collections::BTreeMap<String, u32>| m.into_iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ");
        let mut s = format!("{} programs ({}), {} links ({})", self.programs.len(), join(progs), self.links.len(), join(links));
        if self.perf_events > 0 {
            s.push_str(&format!(", {} perf events", self.perf_events));
        }
        s
    }
}

/// The `key:\tvalue` lines of an fdinfo file.
pub fn parse_fdinfo(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// Takes the census of process `pid`'s BPF objects through /proc/PID/fd and
/// fdinfo, and the kernel's program and link info; taken again until two
/// censuses `settle` apart agree (a client may still be attaching).
pub fn client_census(pid: u32, settle: std::time::Duration) -> ClientCensus {
    let mut last = client_census_once(pid);
    for _ in 0..20 {
        std::thread::sleep(settle);
        let now = client_census_once(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn client_census_once(pid: u32) -> ClientCensus {
    use libbpf_rs::query::{LinkTypeInfo, PerfEventType};
    let mut prog_ids = Vec::new();
    let mut link_fdinfo: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
    let mut perf_events = 0;
    let dir = format!("/proc/{pid}/fd");
    let mut fds: Vec<String> = std::fs::read_dir(&dir).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    fds.sort();
    for fd in fds {
        let Ok(target) = std::fs::read_link(format!("{dir}/{fd}")) else { continue };
        let target = target.to_string_lossy().into_owned();
        let info = || parse_fdinfo(&std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default());
        if target == "anon_inode:bpf-prog" {
            if let Some(id) = info().get("prog_id").and_then(|v| v.parse::<u32>().ok()) {
                prog_ids.push(id);
            }
        } else if target == "anon_inode:bpf_link" {
            link_fdinfo.push(info());
        } else if target == "anon_inode:[perf_event]" {
            perf_events += 1;
        }
    }
    let link_ids: Vec<u32> = link_fdinfo.iter().filter_map(|i| i.get("link_id").and_then(|v| v.parse().ok())).collect();
    let mut links: Vec<CensusLink> = Vec::new();
    let mut wanted_progs: Vec<u32> = prog_ids.clone();
    for l in LinkInfoIter::default().filter(|l| link_ids.contains(&l.id)) {
        let fd = link_fdinfo.iter().find(|i| i.get("link_id").and_then(|v| v.parse::<u32>().ok()) == Some(l.id));
        let fd_type = fd.and_then(|i| i.get("link_type").cloned()).unwrap_or_default();
        let attach_type = fd.and_then(|i| i.get("attach_type").cloned());
        let (ty, what, targets) = match &l.info {
            LinkTypeInfo::KprobeMulti(k) => {
                ("kprobe_multi".to_string(), if k.flags & 1 != 0 { "kretprobe_multi" } else { "kprobe_multi" }.to_string(), k.count)
            }
            LinkTypeInfo::UprobeMulti(u) => {
                ("uprobe_multi".to_string(), if u.flags & 1 != 0 { "uretprobe_multi" } else { "uprobe_multi" }.to_string(), u.count)
            }
            LinkTypeInfo::PerfEvent(p) => {
                let what = match &p.event_type {
                    PerfEventType::Kprobe { is_retprobe, .. } => if *is_retprobe { "kretprobe" } else { "kprobe" }.to_string(),
                    PerfEventType::Uprobe { is_retprobe, .. } => if *is_retprobe { "uretprobe" } else { "uprobe" }.to_string(),
                    PerfEventType::Tracepoint { .. } => "tracepoint".to_string(),
                    _ => String::new(),
                };
                ("perf_event".to_string(), what, 1)
            }
            _ => (if fd_type.is_empty() { "other".into() } else { fd_type.clone() }, String::new(), 1),
        };
        if !wanted_progs.contains(&l.prog_id) {
            wanted_progs.push(l.prog_id);
        }
        links.push(CensusLink { id: l.id, prog_id: l.prog_id, ty, attach_type, what, targets });
    }
    links.sort_by_key(|l| l.id);
    let mut programs: Vec<CensusProgram> = ProgInfoIter::default()
        .filter(|p| wanted_progs.contains(&p.id))
        .map(|p| CensusProgram { id: p.id, ty: format!("{:?}", p.ty).to_lowercase(), name: p.name.to_string_lossy().into_owned() })
        .collect();
    programs.sort_by_key(|p| p.id);
    ClientCensus { programs, links, perf_events }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ty: &str, what: &str, attach_type: Option<&str>) -> CensusLink {
        CensusLink { id: 1, prog_id: 1, ty: ty.into(), attach_type: attach_type.map(str::to_string), what: what.into(), targets: 1 }
    }

    #[test]
    fn a_session_is_one_multi_link_serving_both_sides() {
        let c = |links: Vec<CensusLink>| ClientCensus { programs: vec![], links, perf_events: 0 };
        // bpftrace 0.27 on a kernel with sessions: one kprobe_multi link, no return link.
        assert_eq!(c(vec![link("kprobe_multi", "kprobe_multi", None)]).kprobe_session(true), Some(true));
        // The kernel says the attach type.
        assert_eq!(c(vec![link("kprobe_multi", "kprobe_multi", Some("kprobe_session"))]).kprobe_session(true), Some(true));
        assert_eq!(c(vec![link("kprobe_multi", "kprobe_multi", Some("kprobe_multi"))]).kprobe_session(true), Some(false));
        // A wildcard pair without merging: two multi links, one with RETURN.
        assert_eq!(c(vec![link("kprobe_multi", "kprobe_multi", None), link("kprobe_multi", "kretprobe_multi", None)]).kprobe_session(true), Some(false));
        // Exact names without merging: two perf links.
        assert_eq!(c(vec![link("perf_event", "kprobe", None), link("perf_event", "kretprobe", None)]).kprobe_session(true), Some(false));
        // No pair in the script: not asked.
        assert_eq!(c(vec![link("perf_event", "uprobe", None)]).kprobe_session(false), None);
        let s = c(vec![link("perf_event", "kprobe", None), link("perf_event", "kprobe", None)]).summary();
        assert!(s.contains("perf_event kprobe (1 targets) ×2"), "{s}");
    }

    #[test]
    fn fdinfo_lines() {
        let m = parse_fdinfo("pos:\t0\nflags:\t02000002\nlink_type:\tkprobe_multi\nlink_id:\t7\nprog_id:\t12\n");
        assert_eq!(m["link_type"], "kprobe_multi");
        assert_eq!(m["link_id"], "7");
    }
}
