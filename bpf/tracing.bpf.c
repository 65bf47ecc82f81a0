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
 * Events are built in the ring-buffer reservation (recorder_common.h); the
 * *_large twins keep the pre-fix shape, like every other kind's.
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
#include "tracing_common.h"

static __always_inline int pc_record_fentry(void *ctx, __u16 kind)
{
	struct pc_event *e;

	if (pc_skip_tgid())
		return 0;
	e = pc_reserve(kind, PC_PHASE_ENTRY, -1, PC_F_HAS_ARGS);
	if (!e)
		return 0;
	e->attach_cookie = bpf_get_attach_cookie(ctx);
	e->func_ip = bpf_get_func_ip(ctx);
	e->arg0 = pc_func_arg(ctx, 0);
	e->arg1 = pc_func_arg(ctx, 1);
	pc_submit(e);
	return 0;
}

static __always_inline int pc_record_fexit(void *ctx, __u16 kind)
{
	struct pc_event *e;

	if (pc_skip_tgid())
		return 0;
	e = pc_reserve(kind, PC_PHASE_RETURN, -1, PC_F_HAS_RET);
	if (!e)
		return 0;
	e->attach_cookie = bpf_get_attach_cookie(ctx);
	e->func_ip = bpf_get_func_ip(ctx);
	e->ret = pc_func_ret(ctx);
	pc_submit(e);
	return 0;
}

/* ---- the pre-fix shape (a 144-byte event on the stack), for findings only ---- */

static __always_inline int pc_record_fentry_large(void *ctx, __u16 kind)
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
	t.arg0 = pc_func_arg(ctx, 0);
	t.arg1 = pc_func_arg(ctx, 1);
	pc_emit_copy(&t);
	return 0;
}

static __always_inline int pc_record_fexit_large(void *ctx, __u16 kind)
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
	t.ret = pc_func_ret(ctx);
	pc_emit_copy(&t);
	return 0;
}

/* One program per kind and shape: NAME in SEC, and NAME_large beside it. */
#define PC_TRACING_RECORDER(sec, name, how, kind)                                      \
	SEC(sec) int name(void *ctx) { return pc_record_##how(ctx, kind); }              \
	SEC(sec) int name##_large(void *ctx) { return pc_record_##how##_large(ctx, kind); }

PC_TRACING_RECORDER("fentry", pc_fentry, fentry, PC_KIND_FENTRY)
PC_TRACING_RECORDER("fexit", pc_fexit, fexit, PC_KIND_FEXIT)
PC_TRACING_RECORDER("fentry.multi", pc_fentry_multi, fentry, PC_KIND_FENTRY_MULTI)
PC_TRACING_RECORDER("fexit.multi", pc_fexit_multi, fexit, PC_KIND_FEXIT_MULTI)
