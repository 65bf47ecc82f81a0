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
 * both index one config with the same cookies (plain_recorders.h). The
 * *_large twins have no per-target behaviour (the runner refuses the pair).
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
#include "probe_args.h"

#include "plain_recorders.h"

/* One program per kind and shape: NAME in SEC, and NAME_large beside it. */
#define PC_RECORDER(sec, name, how, kind)                                                          \
	SEC(sec) int name(struct pt_regs *ctx) { return pc_record_##how(ctx, kind, false); }           \
	SEC(sec) int name##_large(struct pt_regs *ctx) { return pc_record_##how##_large(ctx, kind, false); }

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
