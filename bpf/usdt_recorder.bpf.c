// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The USDT recorder. Its own object because libbpf's usdt.bpf.h brings maps
 * (__bpf_usdt_specs, __bpf_usdt_ip_to_spec_id) and a __kconfig extern that the
 * kprobe/uprobe recorders do not need. Argument specs are libbpf's format: the
 * libbpf loader fills them natively, the cilium side through the compatibility
 * layer (go-harness/compat), so both loaders run this very program.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "probeconf_abi.h"

char LICENSE[] SEC("license") = "GPL";

#include "recorder_common.h"

/*
 * The event is built in its ring-buffer reservation (see recorder_common.h):
 * bpf_usdt_arg() writes each argument straight into the record. It is a
 * subprogram with its own small frame; on error it stores 0, as the zeroed
 * reservation already holds.
 */
#define PC_USDT_ARG(i, field)                                  \
	do {                                                   \
		if (i < n)                                     \
			bpf_usdt_arg(ctx, i, (long *)&e->field); \
	} while (0)

SEC("usdt")
int pc_usdt(struct pt_regs *ctx)
{
	struct pc_event *e;
	int n;

	if (pc_skip_tgid())
		return 0;
	e = pc_reserve(PC_KIND_USDT, PC_PHASE_ENTRY, -1, PC_F_HAS_ARGS | PC_F_HAS_ARGCNT);
	if (!e)
		return 0;
	n = bpf_usdt_arg_cnt(ctx);
	e->arg_cnt = n;
	/* The user's cookie: bpf_get_attach_cookie() is libbpf's spec id here. */
	e->attach_cookie = bpf_usdt_cookie(ctx);
	e->func_ip = bpf_get_func_ip(ctx);
	PC_USDT_ARG(0, arg0);
	PC_USDT_ARG(1, arg1);
	PC_USDT_ARG(2, arg2);
	PC_USDT_ARG(3, arg3);
	PC_USDT_ARG(4, arg4);
	PC_USDT_ARG(5, arg5);
	pc_submit(e);
	return 0;
}

/* The pre-fix shape (event on the stack, then copied), for cases/findings/. */
#define PC_USDT_ARG_LARGE(i, slot)                    \
	do {                                          \
		long v;                               \
		if (i < n && !bpf_usdt_arg(ctx, i, &v)) \
			slot = v;                     \
	} while (0)

SEC("usdt")
int pc_usdt_large(struct pt_regs *ctx)
{
	struct pc_event t = {};
	int n;

	if (pc_skip_tgid())
		return 0;
	n = bpf_usdt_arg_cnt(ctx);
	t.kind = PC_KIND_USDT;
	t.phase = PC_PHASE_ENTRY;
	t.is_return = -1;
	t.flags = PC_F_HAS_ARGS | PC_F_HAS_ARGCNT;
	t.attach_cookie = bpf_usdt_cookie(ctx);
	t.func_ip = bpf_get_func_ip(ctx);
	t.arg_cnt = n;
	PC_USDT_ARG_LARGE(0, t.arg0);
	PC_USDT_ARG_LARGE(1, t.arg1);
	PC_USDT_ARG_LARGE(2, t.arg2);
	PC_USDT_ARG_LARGE(3, t.arg3);
	PC_USDT_ARG_LARGE(4, t.arg4);
	PC_USDT_ARG_LARGE(5, t.arg5);
	pc_emit_copy(&t);
	return 0;
}
