//! The kernel's private-stack rule, in one place: when the x86-64 JIT runs a
//! BPF (sub)program on a per-CPU private stack instead of the task's stack.
//! Used by the stack-depth test (`conformance/stack_depth.rs`, which reads the
//! verifier's own `stack depth` figures) and by build.rs's static estimate
//! (which includes this file with `#[path]`, so it must stay dependency-free).
//!
//! From kernel 6.13 (commit 7d1cd70d4b16 "bpf, x86: Support private stack in
//! jit", and "bpf: Enable private stack for eligible subprogs" before it):
//!
//! - `kernel/bpf/verifier.c` `bpf_enable_priv_stack()`: a program of type
//!   BPF_PROG_TYPE_KPROBE (also TRACEPOINT, PERF_EVENT, RAW_TRACEPOINT) gets
//!   PRIV_STACK_ADAPTIVE when the JIT supports private stacks (x86-64 does,
//!   `bpf_jit_supports_private_stack()`). Uprobe, uprobe.multi, uprobe.session
//!   and USDT programs are all BPF_PROG_TYPE_KPROBE. `check_max_stack_depth()`
//!   turns it off for the whole program when any subprogram has a tail call.
//! - `check_max_stack_depth_subprog()`, for the main program and each
//!   subprogram reached from it: `subprog_depth = round_up_stack_depth(env,
//!   subprog[idx].stack_depth)`, which is `round_up(stack_depth, 16)` when the
//!   program is JITed, and `if (subprog_depth >= BPF_PRIV_STACK_MIN_SIZE)` the
//!   subprogram's `priv_stack_mode = PRIV_STACK_ADAPTIVE`. The comparison is per
//!   subprogram, on its **own** frame (not the call chain's sum), after
//!   rounding up to 16. `#define BPF_PRIV_STACK_MIN_SIZE 64`.
//! - `arch/x86/net/bpf_jit_comp.c` `do_jit()`: such a subprogram's frame
//!   pointer (BPF r10 → x86 r9) is `this_cpu_ptr(priv_stack_ptr)` plus the
//!   guard plus the depth (`emit_priv_frame_ptr()`), i.e. the frame lives in
//!   per-CPU memory, one copy per CPU for every run of the program.
//! - The verifier's stats log (log level BPF_LOG_STATS = 4) prints one raw
//!   `subprog_info[i].stack_depth` per subprogram (`print_verification_stats()`),
//!   after the fix-ups; that is the figure the rule rounds. 6.18 prints
//!   `stack depth D0+D1+…`; 7.3 prints `stack depth max M` and a
//!   `subprog I (name) … stack D` line each ([`parse_stack_depths`] reads both).
//!
//! So a raw depth D is on a private stack iff `round_up(D, 16) >= 64`, i.e.
//! D >= 49. A 48-byte frame still runs on the task's stack.
//!
//! Kernels differ in which KPROBE-type programs they give one (read from the
//! JIT images by conformance/stack_depth.rs and the reproducer in
//! docs/findings/uprobe-private-stack/): Debian's 6.18.15 and 7.3.4 give it to
//! every KPROBE-type program, uprobes included; this project's host kernel
//! (6.18.44, a vendor build) only to kprobe.multi and kprobe.session ones,
//! which cannot be uprobes. The check follows the source rule above, the
//! stricter one.

/// `BPF_PRIV_STACK_MIN_SIZE` in kernel/bpf/verifier.c.
pub const BPF_PRIV_STACK_MIN_SIZE: u32 = 64;

/// `round_up_stack_depth()` for a JITed program: `round_up(stack_depth, 16)`.
pub const fn round_up_stack_depth(depth: u32) -> u32 {
    depth.div_ceil(16) * 16
}

/// Whether a (sub)program whose verifier `stack_depth` is `depth` gets a
/// private stack (on a kernel and JIT that have them).
pub const fn uses_private_stack(depth: u32) -> bool {
    round_up_stack_depth(depth) >= BPF_PRIV_STACK_MIN_SIZE
}

/// The largest raw depth that stays on the task's stack (48).
pub const MAX_SHARED_SAFE_DEPTH: u32 = {
    let mut d = BPF_PRIV_STACK_MIN_SIZE;
    while uses_private_stack(d) {
        d -= 1;
    }
    d
};

/// The depth of each subprogram (main program first) from a verifier log at
/// BPF_LOG_STATS. Two formats exist:
///
/// - 6.18 (this host and Debian's 6.18): one line `stack depth 24+16+8`;
/// - 7.x (seen on 7.3): `stack depth max 96` (the deepest call chain, rounded),
///   then one line per subprogram, `subprog 0 (name) main insns_self 80
///   insns_total 80 stack 88`, whose `stack N` is the raw depth.
///
/// `None` when the log has neither (no BPF_LOG_STATS, or an unknown format).
pub fn parse_stack_depths(log: &str) -> Option<Vec<u32>> {
    let per_subprog: Vec<(u32, u32)> = log
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("subprog ")?;
            let index = rest.split_whitespace().next()?.parse().ok()?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let at = words.iter().rposition(|w| *w == "stack")?;
            Some((index, words.get(at + 1)?.parse().ok()?))
        })
        .collect();
    if !per_subprog.is_empty() {
        let mut v = per_subprog;
        v.sort_unstable();
        return Some(v.into_iter().map(|(_, d)| d).collect());
    }
    let line = log.lines().rev().find_map(|l| l.trim().strip_prefix("stack depth "))?;
    line.trim().split('+').map(|d| d.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_rounds_to_16_and_compares_with_64() {
        assert_eq!(MAX_SHARED_SAFE_DEPTH, 48);
        assert!(!uses_private_stack(0));
        assert!(!uses_private_stack(48));
        assert!(uses_private_stack(49), "49 rounds up to 64");
        assert!(uses_private_stack(64));
        assert!(uses_private_stack(144));
        assert_eq!(round_up_stack_depth(33), 48);
    }

    #[test]
    fn stats_lines_parse() {
        let log = "func#0 @0\nverification time 31 usec\nstack depth 152+24\nprocessed 48 insns (limit 1000000)\n";
        assert_eq!(parse_stack_depths(log), Some(vec![152, 24]));
        assert_eq!(parse_stack_depths("stack depth 0\n"), Some(vec![0]));
        assert_eq!(parse_stack_depths("processed 3 insns\n"), None);
        assert_eq!(parse_stack_depths("stack depth 8+x\n"), None);
        // 7.3's format: the chain maximum, then each subprogram's own depth.
        let log = "verification time 27326 usec\nstack depth max 96\n\
                   subprog 0 (rec_stack) main insns_self 80 insns_total 80 stack 88\n\
                   subprog 1 (bpf_usdt_arg) insns_self 9 insns_total 9 stack 48\n\
                   processed 80 insns (limit 1000000) max_states_per_insn 0 total_states 3\n";
        assert_eq!(parse_stack_depths(log), Some(vec![88, 48]));
    }
}
