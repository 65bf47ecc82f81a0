// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Programs for `probeconf bench`: they only count, so a measurement is the
 * cost of the probe mechanism (trap or trampoline, dispatch, a program run),
 * not of recording. They share recorder_common.h so that both loaders load
 * them through the same code path as the recorders (same maps, same config
 * section, same event ABI), even though they emit no events.
 * The USDT one is in bench_usdt.bpf.c: usdt.bpf.h's weak maps would stop
 * cilium/ebpf from loading any program of this object.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "probeconf_abi.h"
#include "session_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

#include "recorder_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_hits SEC(".maps");

static __always_inline int bench_count(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&bench_hits, &zero);

	if (n)
		(*n)++;
	return 0;
}

SEC("uprobe")
int bench_uprobe(struct pt_regs *ctx) { return bench_count(); }

SEC("uretprobe")
int bench_uretprobe(struct pt_regs *ctx) { return bench_count(); }

SEC("uprobe.multi")
int bench_uprobe_multi(struct pt_regs *ctx) { return bench_count(); }

SEC("kprobe")
int bench_kprobe(struct pt_regs *ctx) { return bench_count(); }

SEC("kprobe.multi")
int bench_kprobe_multi(struct pt_regs *ctx) { return bench_count(); }

/* Entry returns 1 (skip the return) when pc_cfg.return_filter is ALWAYS. */
SEC("uprobe.session")
int bench_uprobe_session(struct pt_regs *ctx)
{
	bench_count();
	/* Constants, not `cond && !is_return()`: from 6.13 the verifier demands a
	 * session program return 0 or 1, and it cannot bound a negated kfunc bool. */
	if (pc_cfg.return_filter == PC_RF_ALWAYS && !PC_SESSION_IS_RETURN(ctx))
		return 1;
	return 0;
}

/* ---- kernel functions (a syscall loop under QEMU: probeconf bench --kernel) ---- */

/* Returns 0: both halves run (the session's full cost). */
SEC("kprobe.session")
int bench_kprobe_session(struct pt_regs *ctx) { return bench_count(); }

/* BTF-based tracing: the target is named before load (fentry, fexit,
 * fsession) or at link time (fentry.multi). An fsession that calls no kfunc
 * runs at entry and at return alike. */
SEC("fentry")
int bench_fentry(void *ctx) { return bench_count(); }

SEC("fexit")
int bench_fexit(void *ctx) { return bench_count(); }

SEC("fsession")
int bench_fsession(void *ctx) { return bench_count(); }

SEC("fentry.multi")
int bench_fentry_multi(void *ctx) { return bench_count(); }
