// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Generic recorder programs, one per probe kind. They hold no case-specific
 * logic: a case configures an instance through .rodata.pc_cfg (struct
 * pc_config) before load, and every hit becomes one struct pc_event in the
 * shared ring buffer. Adding a case never needs new BPF C.
 *
 * The session recorders are in sessions.bpf.c: their kfunc externs make a
 * loader parse the kernel's whole BTF on every load, which these programs
 * do not need (and which costs seconds per load under QEMU TCG).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "probeconf_abi.h"

char LICENSE[] SEC("license") = "GPL";

#include "recorder_common.h"

static __always_inline int pc_record_entry(struct pt_regs *ctx, __u16 kind)
{
	struct pc_event t = {};

	if (pc_skip_tgid())
		return 0;
	t.kind = kind;
	t.phase = PC_PHASE_ENTRY;
	t.is_return = -1;
	t.flags = PC_F_HAS_ARGS;
	t.attach_cookie = bpf_get_attach_cookie(ctx);
	t.func_ip = bpf_get_func_ip(ctx);
	t.arg0 = PT_REGS_PARM1(ctx);
	t.arg1 = PT_REGS_PARM2(ctx);
	pc_emit(&t);
	return 0;
}

static __always_inline int pc_record_return(struct pt_regs *ctx, __u16 kind)
{
	struct pc_event t = {};

	if (pc_skip_tgid())
		return 0;
	t.kind = kind;
	t.phase = PC_PHASE_RETURN;
	t.is_return = -1;
	t.flags = PC_F_HAS_RET;
	t.attach_cookie = bpf_get_attach_cookie(ctx);
	t.func_ip = bpf_get_func_ip(ctx);
	t.ret = PT_REGS_RC(ctx);
	pc_emit(&t);
	return 0;
}

/* ---- uprobe family ---- */

SEC("uprobe")
int pc_uprobe(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_UPROBE); }

SEC("uretprobe")
int pc_uretprobe(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_URETPROBE); }

SEC("uprobe.multi")
int pc_uprobe_multi(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_UPROBE_MULTI); }

SEC("uretprobe.multi")
int pc_uretprobe_multi(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_URETPROBE_MULTI); }

/* ---- kprobe family (kernel functions; the runner sets filter_tgid) ---- */

SEC("kprobe")
int pc_kprobe(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_KPROBE); }

SEC("kretprobe")
int pc_kretprobe(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_KRETPROBE); }

SEC("kprobe.multi")
int pc_kprobe_multi(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_KPROBE_MULTI); }

SEC("kretprobe.multi")
int pc_kretprobe_multi(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_KRETPROBE_MULTI); }

