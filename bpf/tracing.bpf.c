// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The BTF-based tracing recorders: fentry, fexit (Linux 5.5) and their tracing
 * multi link forms, fentry.multi and fexit.multi (attach types 59 and 60). The
 * sessions, fsession and fsession.multi, are in sessions.bpf.c with the other
 * session programs (they call the session kfuncs).
 *
 * No per-case C: a loader names the target function before load (libbpf:
 * bpf_program__set_attach_target; cilium/ebpf: ProgramSpec.AttachTo), or, for
 * the multi forms, gives the BTF ids and cookies of every target at link time.
 * The program reads the target's arguments with bpf_get_func_arg() and its
 * return value with bpf_get_func_ret() (5.17), so one program serves any
 * prototype; a loader never needs the target's types.
 *
 * The bodies are the kprobe/uprobe ones (plain_recorders.h), reading the
 * function through the tracing context instead of pt_regs.
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
#define PC_TRACING_RECORDER(sec, name, how, kind)                                            \
	SEC(sec) int name(void *ctx) { return pc_record_##how(ctx, kind, true); }              \
	SEC(sec) int name##_large(void *ctx) { return pc_record_##how##_large(ctx, kind, true); }

PC_TRACING_RECORDER("fentry", pc_fentry, entry, PC_KIND_FENTRY)
PC_TRACING_RECORDER("fexit", pc_fexit, return, PC_KIND_FEXIT)
PC_TRACING_RECORDER("fentry.multi", pc_fentry_multi, entry, PC_KIND_FENTRY_MULTI)
PC_TRACING_RECORDER("fexit.multi", pc_fexit_multi, return, PC_KIND_FEXIT_MULTI)
