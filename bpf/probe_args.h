/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading the probed function's arguments and return value, for every
 * recorder (recorders.bpf.c, tracing.bpf.c, sessions.bpf.c): from pt_regs
 * for kprobes and uprobes, through the tracing context for the BTF-based
 * kinds (bpf_get_func_arg/ret), whatever the function's prototype.
 *
 * bpf_get_func_arg()/bpf_get_func_ret() (5.17) take a pointer to a u64 that
 * older verifiers accept only on the stack (ARG_PTR_TO_LONG), not in a
 * ring-buffer reservation: hence the 8-byte local, far below the private-stack
 * threshold (recorder_common.h).
 */
#ifndef PROBECONF_PROBE_ARGS_H
#define PROBECONF_PROBE_ARGS_H

/* Argument n of the traced function, 0 when it has fewer (the helper answers -EINVAL). */
static __always_inline __u64 pc_func_arg(void *ctx, __u32 n)
{
	__u64 v = 0;

	if (bpf_get_func_arg(ctx, n, &v))
		return 0;
	return v;
}

/* The traced function's return value (fexit and the return half of a session). */
static __always_inline __u64 pc_func_ret(void *ctx)
{
	__u64 v = 0;

	bpf_get_func_ret(ctx, &v);
	return v;
}

/*
 * The probed function's argument n (0 or 1) and return value, from pt_regs or
 * the tracing context. `tracing` is a constant at every call site, so only one
 * branch is compiled into each program.
 */
static __always_inline __u64 pc_probe_arg(void *ctx, bool tracing, __u32 n)
{
	if (tracing)
		return pc_func_arg(ctx, n);
	return n == 0 ? PT_REGS_PARM1((struct pt_regs *)ctx) : PT_REGS_PARM2((struct pt_regs *)ctx);
}

static __always_inline __u64 pc_probe_ret(void *ctx, bool tracing)
{
	if (tracing)
		return pc_func_ret(ctx);
	return PT_REGS_RC((struct pt_regs *)ctx);
}

#endif
