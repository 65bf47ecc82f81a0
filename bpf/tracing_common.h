/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the BTF-based tracing recorders share (tracing.bpf.c, and the fsession
 * programs in sessions.bpf.c): reading the traced function's arguments and
 * return value through the tracing context, whatever its prototype.
 *
 * bpf_get_func_arg()/bpf_get_func_ret() (5.17) take a pointer to a u64 that
 * older verifiers accept only on the stack (ARG_PTR_TO_LONG), not in a
 * ring-buffer reservation: hence the 8-byte local, far below the private-stack
 * threshold (recorder_common.h).
 */
#ifndef PROBECONF_TRACING_COMMON_H
#define PROBECONF_TRACING_COMMON_H

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

#endif
