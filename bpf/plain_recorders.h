/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The entry and return recorders of every non-session kind: kprobes and
 * uprobes (recorders.bpf.c, pt_regs) and fentry/fexit and their multi forms
 * (tracing.bpf.c, the tracing context). `tracing` is a constant at every call
 * site (probe_args.h). Each has a *_large twin with the pre-fix shape (the
 * event built on the stack, then copied) for cases/findings/.
 */
#ifndef PROBECONF_PLAIN_RECORDERS_H
#define PROBECONF_PLAIN_RECORDERS_H

static __always_inline int pc_record_entry(void *ctx, __u16 kind, bool tracing)
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
	e->arg0 = pc_probe_arg(ctx, tracing, 0);
	e->arg1 = pc_probe_arg(ctx, tracing, 1);
	pc_submit(e);
	return 0;
}

static __always_inline int pc_record_return(void *ctx, __u16 kind, bool tracing)
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
	e->ret = pc_probe_ret(ctx, tracing);
	pc_submit(e);
	return 0;
}

/* ---- the pre-fix shape (a 144-byte event on the stack), for findings only ---- */

static __always_inline int pc_record_entry_large(void *ctx, __u16 kind, bool tracing)
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
	t.arg0 = pc_probe_arg(ctx, tracing, 0);
	t.arg1 = pc_probe_arg(ctx, tracing, 1);
	pc_emit_copy(&t);
	return 0;
}

static __always_inline int pc_record_return_large(void *ctx, __u16 kind, bool tracing)
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
	t.ret = pc_probe_ret(ctx, tracing);
	pc_emit_copy(&t);
	return 0;
}

#endif
