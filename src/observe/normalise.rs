//! The one normaliser: raw events → a canonical trace, one line per event.
//! Both loaders' events go through here, and expectations, snapshots and diffs
//! all use its format:
//!
//! ```text
//! P0/T0 s1 entry pc_leaf(1, 0) cookie=0x11 is_return=false session_cookie=0x0 wrote=0x1001 prog_ret=0
//! P0/T0 s1 return pc_leaf => 10 cookie=0x11 is_return=true session_cookie=0x1001
//! ```
//!
//! * Processes are `P0` (the target), `P1` (the `run_other` process), then
//!   forked children `P2…` in order of their first event (P1 stays reserved). Threads are `T0` (the
//!   main thread, even when it recorded nothing) then the others, `T1…`,
//!   sorted by the text of their lines.
//! * Addresses become `symbol+offset`; time, CPU and sequence numbers go.
//! * **Order.** The kernel orders the events of one program on one thread; it
//!   defines no order between threads, nor between two programs on the same
//!   function. So the canonical order is: by process, by thread, by probe (in
//!   case order), then as the events happened.
//! * Fields that depend on the kind appear only where they apply: session fields
//!   for sessions; `session_cookie` at a kprobe session entry is `*` because the
//!   kernel does not promise it starts at 0.
//! * Per-target behaviour (a per-target table, the tetragon pattern): `tag=0xN`
//!   after `cookie=` when a plain recorder's hit selected an entry with a tag,
//!   and `cfg=fallback` when the hit's cookie selected no entry (the probe's
//!   own knobs applied).

use crate::observe::abi::{consts, Phase, RawEvent};
use crate::observe::symbolize::{KernelSymbols, Symbolizer};
use std::collections::{BTreeMap, HashMap};

/// The context needed to name things.
pub struct Names<'a> {
    /// Probe names by probe index.
    pub probes: &'a [String],
    /// Arguments shown at entry, by probe index (default 2).
    pub args: &'a [u8],
    /// Defined bits of the return value, by probe index (default 64).
    pub ret_width: &'a [u8],
    /// By probe index: the one symbol a single-target probe is attached to,
    /// named when the kernel's bpf_get_func_ip() gives 0 (uprobes before it
    /// was supported there; probed as `uprobe-func-ip`).
    pub single_target: &'a [Option<String>],
    /// Known processes and their labels, e.g. (target pid, "P0").
    pub processes: &'a [(u32, &'static str)],
    pub user: &'a Symbolizer,
    pub kernel: Option<&'a KernelSymbols>,
}

fn is_kernel_kind(kind: u16) -> bool {
    let k = u64::from(kind);
    [
        consts::KIND_KPROBE,
        consts::KIND_KRETPROBE,
        consts::KIND_KPROBE_MULTI,
        consts::KIND_KRETPROBE_MULTI,
        consts::KIND_KPROBE_SESSION,
        consts::KIND_FENTRY,
        consts::KIND_FEXIT,
        consts::KIND_FSESSION,
        consts::KIND_FENTRY_MULTI,
        consts::KIND_FEXIT_MULTI,
        consts::KIND_FSESSION_MULTI,
    ]
    .contains(&k)
}

/// A return value as the probe's `ret_width` shows it: `*` for 0 (the
/// function returns nothing to compare), the low 32 bits sign-extended for 32
/// (an int whose register's upper half the callee may leave as it is), else
/// the 64-bit value.
fn render_ret(raw: u64, names: &Names<'_>, probe_index: u32) -> String {
    match names.ret_width.get(probe_index as usize) {
        Some(&0) => "*".to_string(),
        Some(&32) => (raw as u32 as i32 as i64).to_string(),
        _ => (raw as i64).to_string(),
    }
}

/// The event without its process/thread prefix.
pub fn render_event(e: &RawEvent, names: &Names<'_>) -> String {
    let probe = names.probes.get(e.probe_index as usize).cloned().unwrap_or_else(|| format!("probe#{}", e.probe_index));
    let fallback = names.single_target.get(e.probe_index as usize).cloned().flatten();
    let func = match (e.func_ip, fallback) {
        (0, Some(sym)) => sym,
        _ if is_kernel_kind(e.kind) => names.kernel.map(|k| k.describe(e.func_ip)).unwrap_or_else(|| format!("{:#x}", e.func_ip)),
        _ => names.user.describe(e.tgid, e.func_ip),
    };
    let args = names.args.get(e.probe_index as usize).copied().unwrap_or(2);
    if u64::from(e.kind) == consts::KIND_USDT {
        // A USDT site, named from its .note.stapsdt entry, with every argument.
        let site = match (e.func_ip, names.single_target.get(e.probe_index as usize).cloned().flatten()) {
            (0, Some(spec)) => spec,
            _ => names.user.describe_usdt(e.tgid, e.func_ip),
        };
        let all = [e.arg0, e.arg1, e.args_hi[0], e.args_hi[1], e.args_hi[2], e.args_hi[3]];
        let n = e.arg_cnt.unwrap_or(0).min(6) as usize;
        let shown: Vec<String> = all[..n].iter().map(|a| (*a as i64).to_string()).collect();
        return format!("{probe} usdt {site}({}) cookie={:#x}", shown.join(", "), e.attach_cookie);
    }
    let mut s = match e.phase {
        Phase::Entry if args == 0 => format!("{probe} entry {func}"),
        Phase::Entry if args == 1 => format!("{probe} entry {func}({})", e.arg0 as i64),
        Phase::Entry => format!("{probe} entry {func}({}, {})", e.arg0 as i64, e.arg1 as i64),
        Phase::Return => format!("{probe} return {func} => {}", render_ret(e.ret, names, e.probe_index)),
    };
    s.push_str(&format!(" cookie={:#x}", e.attach_cookie));
    // Per-target behaviour (the tetragon pattern): a plain recorder's entry
    // tag, and a cookie that selected no table entry. Only events of probes
    // with a per-target table carry these flags, so other traces are unchanged.
    if e.has(consts::F_TAG) {
        s.push_str(&format!(" tag={:#x}", e.cookie_out));
    }
    if e.has(consts::F_CFG_FALLBACK) {
        s.push_str(" cfg=fallback");
    }
    if e.has(consts::F_SESSION) {
        let is_return = e.is_return.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let unspecified_start = e.phase == Phase::Entry && u64::from(e.kind) == consts::KIND_KPROBE_SESSION;
        let cookie = if unspecified_start { "*".to_string() } else { format!("{:#x}", e.cookie_in) };
        s.push_str(&format!(" is_return={is_return} session_cookie={cookie}"));
        if e.phase == Phase::Entry {
            if e.has(consts::F_COOKIE_WRITTEN) {
                s.push_str(&format!(" wrote={:#x}", e.cookie_out));
            }
            s.push_str(if e.has(consts::F_SKIP_RETURN) { " prog_ret=1" } else { " prog_ret=0" });
        }
    }
    s
}

/// A canonical trace.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Trace {
    pub lines: Vec<String>,
}

impl Trace {
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// Extra facts about a run that belong in its trace.
#[derive(Default)]
pub struct RunFacts {
    /// Per-probe counters read from the kernel, e.g. ("ks", "recursion_misses=2").
    pub counters: Vec<(String, String)>,
    /// `inspect` observations of known processes, e.g. ("P0", "nop5 first=call trampoline=yes").
    pub observations: Vec<(String, String)>,
    /// Abnormal ends of known processes, e.g. ("P0", "killed by SIGSYS").
    pub abnormal_exits: Vec<(String, String)>,
    pub dropped: u64,
}

/// One event, rendered without its process/thread prefix, with what the
/// canonical order needs.
struct Rendered {
    tgid: u32,
    tid: u32,
    probe_index: u32,
    line: String,
}

pub fn normalise(events: &[RawEvent], names: &Names<'_>, facts: &RunFacts) -> Trace {
    let rendered: Vec<Rendered> =
        events.iter().map(|e| Rendered { tgid: e.tgid, tid: e.tid, probe_index: e.probe_index, line: render_event(e, names) }).collect();
    normalise_rendered(&rendered, names, facts)
}

/// What a client that prints its own events (bpftrace) said happened: one
/// printed line per event, already decoded into its fields. The fields are
/// only those such a client can know: no attach cookie, no session state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientEvent {
    pub tgid: u32,
    pub tid: u32,
    /// The probe, by its index in the case's `probes`.
    pub probe_index: u32,
    pub phase: ClientPhase,
    /// The function as the client named it (`func`), or an address (`0x…`)
    /// when it could not, which is symbolised here like a recorder's func_ip.
    /// For a USDT site, `provider:name`.
    pub func: String,
    /// Entry: the arguments printed; return: the return value, then any
    /// arguments the script saved at entry (`r return f(1, 2) => 12`).
    pub values: Vec<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientPhase {
    Entry,
    Return,
    Usdt,
}

/// A client event without its process/thread prefix, in the recorders'
/// format less the fields the client cannot know:
/// `e entry pc_leaf(1, 0)`, `r return pc_leaf => 10`, `u usdt probeconf:args(1, 2)`.
pub fn render_client_event(e: &ClientEvent, names: &Names<'_>) -> String {
    let probe = names.probes.get(e.probe_index as usize).cloned().unwrap_or_else(|| format!("probe#{}", e.probe_index));
    let func = match e.func.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()) {
        Some(addr) if addr >= 0xffff_0000_0000_0000 => names.kernel.map(|k| k.describe(addr)).unwrap_or_else(|| e.func.clone()),
        Some(addr) => names.user.describe(e.tgid, addr),
        None => e.func.clone(),
    };
    let list = |v: &[i64]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
    match e.phase {
        ClientPhase::Entry if e.values.is_empty() => format!("{probe} entry {func}"),
        ClientPhase::Entry => format!("{probe} entry {func}({})", list(&e.values)),
        ClientPhase::Usdt => format!("{probe} usdt {func}({})", list(&e.values)),
        ClientPhase::Return => {
            let ret = render_ret(e.values.first().copied().unwrap_or(0) as u64, names, e.probe_index);
            match &e.values[..] {
                // The arguments the script saved at entry and printed at return.
                [_, saved @ ..] if !saved.is_empty() => format!("{probe} return {func}({}) => {ret}", list(saved)),
                _ => format!("{probe} return {func} => {ret}"),
            }
        }
    }
}

/// The canonical trace of a client's events: the same labels, order and
/// facts as [`normalise`].
pub fn normalise_client(events: &[ClientEvent], names: &Names<'_>, facts: &RunFacts) -> Trace {
    let rendered: Vec<Rendered> =
        events.iter().map(|e| Rendered { tgid: e.tgid, tid: e.tid, probe_index: e.probe_index, line: render_client_event(e, names) }).collect();
    normalise_rendered(&rendered, names, facts)
}

fn normalise_rendered(events: &[Rendered], names: &Names<'_>, facts: &RunFacts) -> Trace {
    // Process labels: known roles first, then others by first appearance.
    let mut plabel: HashMap<u32, String> = names.processes.iter().map(|(p, l)| (*p, l.to_string())).collect();
    // P0 and P1 are roles (target, other); children count from P2 either way.
    let mut next = 2;
    for e in events {
        plabel.entry(e.tgid).or_insert_with(|| {
            next += 1;
            format!("P{}", next - 1)
        });
    }
    // Group rendered events: process → thread → (probe index, order) lines.
    let mut by_proc: BTreeMap<usize, (String, BTreeMap<u32, Vec<(u32, usize, String)>>)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let label = plabel[&e.tgid].clone();
        let pnum: usize = label[1..].parse().unwrap_or(usize::MAX);
        let entry = by_proc.entry(pnum).or_insert_with(|| (label, BTreeMap::new()));
        entry.1.entry(e.tid).or_default().push((e.probe_index, i, e.line.clone()));
    }
    let mut lines = Vec::new();
    for (_, (plabel, threads)) in by_proc {
        // Main thread (tid == tgid) first, the rest sorted by their content.
        let tgid = plabel_pid(&plabel, names, events);
        let mut blocks: Vec<(bool, Vec<String>)> = threads
            .into_iter()
            .map(|(tid, mut evs)| {
                evs.sort_by_key(|(probe, order, _)| (*probe, *order));
                (Some(tid) != tgid, evs.into_iter().map(|(_, _, l)| l).collect())
            })
            .collect();
        blocks.sort();
        // T0 is always the main thread, even when it recorded nothing.
        let first_worker = if blocks.first().is_some_and(|(worker, _)| !worker) { 0 } else { 1 };
        for (i, (_, block)) in blocks.into_iter().enumerate() {
            let t = if i == 0 && first_worker == 0 { 0 } else { i + first_worker };
            for l in block {
                lines.push(format!("{plabel}/T{t} {l}"));
            }
        }
    }
    for (probe, what) in &facts.counters {
        lines.push(format!("{probe} {what}"));
    }
    for (p, what) in &facts.observations {
        lines.push(format!("{p} observe {what}"));
    }
    for (p, what) in &facts.abnormal_exits {
        lines.push(format!("{p} {what}"));
    }
    if facts.dropped > 0 {
        lines.push(format!("!! {} events dropped: the ring buffer was full", facts.dropped));
    }
    Trace { lines }
}

fn plabel_pid(label: &str, names: &Names<'_>, events: &[Rendered]) -> Option<u32> {
    names
        .processes
        .iter()
        .find(|(_, l)| *l == label)
        .map(|(p, _)| *p)
        .or_else(|| {
            // An unknown process: its main thread is the one whose tid == tgid.
            events.iter().find(|e| e.tid == e.tgid && !names.processes.iter().any(|(p, _)| *p == e.tgid)).map(|e| e.tgid)
        })
}

/// Canonical form of expected text: trimmed lines, single spaces, no blanks or `#` comments.
/// A line ending in ` ×N` stands for N copies of the line without it (threads
/// that call one function many times record many identical lines).
pub fn canonical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.rsplit_once(" ×").and_then(|(line, n)| n.parse::<usize>().ok().map(|n| (line, n))) {
            Some((line, n)) => out.extend(std::iter::repeat_n(line.to_string(), n)),
            None => out.push(l),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn ev(tgid: u32, tid: u32, probe: u32, phase: Phase, arg0: u64, ret: u64) -> RawEvent {
        RawEvent {
            seq: 0,
            ktime_ns: 0,
            probe_index: probe,
            tgid,
            tid,
            cpu: 0,
            kind: consts::KIND_UPROBE as u16,
            phase,
            is_return: None,
            flags: 0,
            attach_cookie: 0x11,
            func_ip: 0,
            arg0,
            arg1: 0,
            ret,
            cookie_in: 0,
            cookie_out: 0,
            args_hi: [0; 4],
            arg_cnt: None,
        }
    }

    fn names<'a>(probes: &'a [String], sym: &'a Symbolizer) -> Names<'a> {
        static PROCS: [(u32, &str); 2] = [(100, "P0"), (200, "P1")];
        Names { probes, args: &[], ret_width: &[], single_target: &[], processes: &PROCS, user: sym, kernel: None }
    }

    #[test]
    fn client_events_get_the_same_labels_order_and_widths() {
        let probes = vec!["k".to_string(), "kr".to_string(), "u".to_string()];
        let sym = Symbolizer::default();
        let mut n = names(&probes, &sym);
        let widths = [64u8, 32, 64];
        n.ret_width = &widths;
        let ce = |tgid, tid, probe, phase, func: &str, values: Vec<i64>| ClientEvent { tgid, tid, probe_index: probe, phase, func: func.into(), values };
        let events = vec![
            // A worker thread first, the return before the entry in arrival order.
            ce(100, 101, 0, ClientPhase::Entry, "f", vec![1]),
            ce(100, 100, 1, ClientPhase::Return, "f", vec![0xffff_fffe, 7]),
            ce(100, 100, 0, ClientPhase::Entry, "f", vec![7]),
            ce(100, 100, 2, ClientPhase::Usdt, "probeconf:args", vec![42, -1]),
            ce(300, 300, 0, ClientPhase::Entry, "g", vec![]),
        ];
        let t = normalise_client(&events, &n, &RunFacts { dropped: 2, ..Default::default() });
        assert_eq!(
            t.lines,
            [
                "P0/T0 k entry f(7)",
                // ret_width 32: an int whose register's upper half was not extended.
                "P0/T0 kr return f(7) => -2",
                "P0/T0 u usdt probeconf:args(42, -1)",
                "P0/T1 k entry f(1)",
                "P2/T0 k entry g",
                "!! 2 events dropped: the ring buffer was full",
            ]
        );
        // An address bpftrace could not name goes through the symboliser, as a recorder's func_ip (unknown here).
        let e = ce(100, 100, 1, ClientPhase::Return, "0x1234", vec![-3]);
        assert_eq!(render_client_event(&e, &n), format!("kr return {} => -3", sym.describe(100, 0x1234)));
    }

    #[test]
    fn threads_and_probes_get_a_canonical_order() {
        let probes = vec!["a".to_string(), "b".to_string()];
        let sym = Symbolizer::default();
        // Two runs of the same workload with different interleavings.
        let run1 = vec![
            ev(100, 100, 1, Phase::Entry, 1, 0),
            ev(100, 100, 0, Phase::Entry, 1, 0),
            ev(100, 102, 0, Phase::Entry, 7, 0),
            ev(100, 101, 0, Phase::Entry, 8, 0),
        ];
        let run2 = vec![
            ev(100, 105, 0, Phase::Entry, 8, 0),
            ev(100, 100, 0, Phase::Entry, 1, 0),
            ev(100, 106, 0, Phase::Entry, 7, 0),
            ev(100, 100, 1, Phase::Entry, 1, 0),
        ];
        let t1 = normalise(&run1, &names(&probes, &sym), &RunFacts::default());
        let t2 = normalise(&run2, &names(&probes, &sym), &RunFacts::default());
        assert_eq!(t1, t2);
        assert_eq!(
            t1.lines,
            vec![
                "P0/T0 a entry 0(1, 0) cookie=0x11",
                "P0/T0 b entry 0(1, 0) cookie=0x11",
                "P0/T1 a entry 0(7, 0) cookie=0x11",
                "P0/T2 a entry 0(8, 0) cookie=0x11",
            ]
        );
    }

    #[test]
    fn forked_children_are_labelled_after_known_processes() {
        let probes = vec!["a".to_string()];
        let sym = Symbolizer::default();
        let evs = vec![ev(300, 300, 0, Phase::Return, 0, (-5i64) as u64), ev(100, 100, 0, Phase::Return, 0, 3)];
        let t = normalise(
            &evs,
            &names(&probes, &sym),
            &RunFacts {
                counters: vec![],
                observations: vec![("P0".into(), "nop5 first=call trampoline=yes".into())],
                abnormal_exits: vec![("P0".into(), "killed by SIGSYS".into())],
                dropped: 2,
            },
        );
        assert_eq!(
            t.lines,
            vec![
                "P0/T0 a return 0 => 3 cookie=0x11",
                "P2/T0 a return 0 => -5 cookie=0x11",
                "P0 observe nop5 first=call trampoline=yes",
                "P0 killed by SIGSYS",
                "!! 2 events dropped: the ring buffer was full",
            ]
        );
    }

    #[test]
    fn per_target_fields() {
        let probes = vec!["km".to_string(), "s".to_string()];
        let sym = Symbolizer::default();
        let mut e = ev(100, 100, 0, Phase::Return, 0, 7);
        e.attach_cookie = 2;
        e.flags = consts::F_HAS_RET as u32;
        // No per-target flags: the line is what it always was.
        assert_eq!(render_event(&e, &names(&probes, &sym)), "km return 0 => 7 cookie=0x2");
        e.flags |= consts::F_TAG as u32;
        e.cookie_out = 0xb2;
        assert_eq!(render_event(&e, &names(&probes, &sym)), "km return 0 => 7 cookie=0x2 tag=0xb2");
        e.flags = (consts::F_HAS_RET | consts::F_CFG_FALLBACK) as u32;
        e.attach_cookie = 0x99;
        assert_eq!(render_event(&e, &names(&probes, &sym)), "km return 0 => 7 cookie=0x99 cfg=fallback");
        let mut s = ev(100, 100, 1, Phase::Entry, 3, 0);
        s.kind = consts::KIND_UPROBE_SESSION as u16;
        s.attach_cookie = 0x99;
        s.is_return = Some(false);
        s.flags = (consts::F_SESSION | consts::F_CFG_FALLBACK) as u32;
        assert_eq!(
            render_event(&s, &names(&probes, &sym)),
            "s entry 0(3, 0) cookie=0x99 cfg=fallback is_return=false session_cookie=0x0 prog_ret=0"
        );
    }

    #[test]
    fn session_fields() {
        let probes = vec!["s".to_string()];
        let sym = Symbolizer::default();
        let mut e = ev(100, 100, 0, Phase::Entry, 3, 0);
        e.kind = consts::KIND_UPROBE_SESSION as u16;
        e.flags = (consts::F_SESSION | consts::F_COOKIE_WRITTEN | consts::F_SKIP_RETURN) as u32;
        e.is_return = Some(false);
        e.cookie_out = 0x1003;
        assert_eq!(
            render_event(&e, &names(&probes, &sym)),
            "s entry 0(3, 0) cookie=0x11 is_return=false session_cookie=0x0 wrote=0x1003 prog_ret=1"
        );
        e.kind = consts::KIND_KPROBE_SESSION as u16;
        assert!(render_event(&e, &names(&probes, &sym)).contains("session_cookie=* "));
    }

    #[test]
    fn canonical_lines_ignore_layout() {
        assert_eq!(canonical_lines("  # c\n P0/T0   a  entry\n\n"), vec!["P0/T0 a entry"]);
        assert_eq!(canonical_lines("P0/T1 a entry f(1, 0)  ×3\nP0/T1 b ×x\nP0/T2 c ×0\n"), vec![
            "P0/T1 a entry f(1, 0)",
            "P0/T1 a entry f(1, 0)",
            "P0/T1 a entry f(1, 0)",
            "P0/T1 b ×x"
        ]);
    }
}
