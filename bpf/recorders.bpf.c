// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Generic recorder programs, one per probe kind. They hold no case-specific
 * logic: a case configures an instance through .rodata.pc_cfg (struct
 * pc_config) before load, and every hit becomes one struct pc_event in the
 * shared ring buffer. Adding a case never needs new BPF C.
 *
 * Per-target behaviour (the tetragon pattern, probeconf_abi.h struct
 * pc_targets): with the table on, each hit's attach cookie selects an entry
 * whose tag the event carries (PC_F_TAG), entry and return programs alike, so
 * a kprobe.multi + kretprobe.multi pair given identical tables shows that
 * both index one config with the same cookies. The *_large twins have no
 * per-target behaviour (the runner refuses the pair).
 *
 * Each event is built in its ring-buffer reservation (recorder_common.h says
 * why: the private stack of 6.13+ is shared by preempted uprobe runs). Each
 * program has a *_large twin with the pre-fix shape (the event built on the
 * stack, then copied), selected by a case's `record: {stack_frame: large}`:
 * the finding cases in cases/findings/ use it.
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
	struct pc_event *e;

	if (pc_skip_tgid())
		return 0;
	e = pc_reserve(kind, PC_PHASE_ENTRY, -1, PC_F_HAS_ARGS);
	if (!e)
		return 0;
	e->attach_cookie = bpf_get_attach_cookie(ctx);
	pc_target_tag(e);
	e->func_ip = bpf_get_func_ip(ctx);
	e->arg0 = PT_REGS_PARM1(ctx);
	e->arg1 = PT_REGS_PARM2(ctx);
	pc_submit(e);
	return 0;
}

static __always_inline int pc_record_return(struct pt_regs *ctx, __u16 kind)
{
	struct pc_event *e;

	if (pc_skip_tgid())
		return 0;
	e = pc_reserve(kind, PC_PHASE_RETURN, -1, PC_F_HAS_RET);
	if (!e)
		return 0;
	e->attach_cookie = bpf_get_attach_cookie(ctx);
	pc_target_tag(e);
	e->func_ip = bpf_get_func_ip(ctx);
	e->ret = PT_REGS_RC(ctx);
	pc_submit(e);
	return 0;
}

/* ---- the pre-fix shape (a 144-byte event on the stack), for findings only ---- */

static __always_inline int pc_record_entry_large(struct pt_regs *ctx, __u16 kind)
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
	pc_emit_copy(&t);
	return 0;
}

static __always_inline int pc_record_return_large(struct pt_regs *ctx, __u16 kind)
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
	pc_emit_copy(&t);
	return 0;
}

/* One program per kind and shape: NAME in SEC, and NAME_large beside it. */
#define PC_RECORDER(sec, name, how, kind)                                                   \
	SEC(sec) int name(struct pt_regs *ctx) { return pc_record_##how(ctx, kind); }       \
	SEC(sec) int name##_large(struct pt_regs *ctx) { return pc_record_##how##_large(ctx, kind); }

/* ---- uprobe family ---- */
PC_RECORDER("uprobe", pc_uprobe, entry, PC_KIND_UPROBE)
PC_RECORDER("uretprobe", pc_uretprobe, return, PC_KIND_URETPROBE)
PC_RECORDER("uprobe.multi", pc_uprobe_multi, entry, PC_KIND_UPROBE_MULTI)
PC_RECORDER("uretprobe.multi", pc_uretprobe_multi, return, PC_KIND_URETPROBE_MULTI)

/* ---- kprobe family (kernel functions; the runner sets filter_tgid) ---- */
PC_RECORDER("kprobe", pc_kprobe, entry, PC_KIND_KPROBE)
PC_RECORDER("kretprobe", pc_kretprobe, return, PC_KIND_KRETPROBE)
PC_RECORDER("kprobe.multi", pc_kprobe_multi, entry, PC_KIND_KPROBE_MULTI)
PC_RECORDER("kretprobe.multi", pc_kretprobe_multi, return, PC_KIND_KRETPROBE_MULTI)
