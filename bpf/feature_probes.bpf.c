// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Minimal programs for probing the running kernel by trying (src/probing/features.rs).
 * Each probe loads one of these, attaches it the way the feature needs, triggers
 * it, and reads what it saw back from .bss. A program that loads and attaches
 * but never fires does not count as support.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>


char LICENSE[] SEC("license") = "GPL";

#include "feature_probes_common.h"

static __always_inline int fp_count(void *ctx)
{
	if (!fp_mine())
		return 0;
	__sync_fetch_and_add(&fp.hits, 1);
	fp.cookie = bpf_get_attach_cookie(ctx);
	return 0;
}

SEC("uprobe")
int fp_uprobe(struct pt_regs *ctx)
{
	if (fp_mine())
		fp.func_ip = bpf_get_func_ip(ctx);
	return fp_count(ctx);
}

SEC("uretprobe")
int fp_uretprobe(struct pt_regs *ctx) { return fp_count(ctx); }

SEC("uprobe.multi")
int fp_uprobe_multi(struct pt_regs *ctx) { return fp_count(ctx); }

/* The link type alone: no kfuncs, so it loads whatever their prototype. */
SEC("uprobe.session")
int fp_uprobe_session_link(struct pt_regs *ctx) { return fp_count(ctx); }

SEC("kprobe")
int fp_kprobe(struct pt_regs *ctx) { return fp_count(ctx); }

SEC("kprobe.multi")
int fp_kprobe_multi(struct pt_regs *ctx) { return fp_count(ctx); }

SEC("kprobe.session")
int fp_kprobe_session_link(struct pt_regs *ctx) { return fp_count(ctx); }

/* BTF-based tracing: the target is named before load (fentry, fexit) or at
 * link time (fentry.multi). */
SEC("fentry")
int fp_fentry(void *ctx) { return fp_count(ctx); }

SEC("fexit")
int fp_fexit(void *ctx)
{
	__u64 ret = 0;

	if (fp_mine() && !bpf_get_func_ret(ctx, &ret))
		fp.ret = ret;
	return fp_count(ctx);
}

SEC("fentry.multi")
int fp_fentry_multi(void *ctx) { return fp_count(ctx); }
