// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The session recorders (uprobe.session, kprobe.session): one program runs at
 * entry and at return. Built twice by build.rs from this one source:
 * sessions.bpf.o with the 6.10-6.19 session kfunc prototypes and
 * sessions.ctx.bpf.o with the 7.0 ones (session_kfuncs.h); the loaders get the
 * build matching the running kernel's BTF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "probeconf_abi.h"
#include "session_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

#include "recorder_common.h"

static __always_inline bool pc_want_skip_return(__u64 arg0)
{
	switch (pc_cfg.return_filter) {
	case PC_RF_ALWAYS:
		return true;
	case PC_RF_ODD_ARG0:
		return arg0 & 1;
	case PC_RF_EVEN_ARG0:
		return !(arg0 & 1);
	case PC_RF_ARG0_EQ:
		return arg0 == pc_cfg.filter_arg;
	case PC_RF_ARG0_LT:
		return arg0 < pc_cfg.filter_arg;
	default:
		return false;
	}
}

/*
 * A session program: entry and return are the same program. The entry may write
 * the per-invocation session cookie and returns 1 to skip this invocation's return.
 */
static __always_inline int pc_record_session(struct pt_regs *ctx, __u16 kind)
{
	struct pc_event t = {};
	__u64 *cookie;
	bool is_return;
	int skip = 0;

	/* A filtered-out entry returns 0: the return run happens and is filtered again. */
	if (pc_skip_tgid())
		return 0;
	is_return = PC_SESSION_IS_RETURN(ctx);
	cookie = PC_SESSION_COOKIE(ctx);
	t.kind = kind;
	t.is_return = is_return;
	t.flags = PC_F_SESSION;
	t.attach_cookie = bpf_get_attach_cookie(ctx);
	t.func_ip = bpf_get_func_ip(ctx);
	if (cookie)
		t.cookie_in = *cookie;
	if (!is_return) {
		__u64 arg0 = PT_REGS_PARM1(ctx);
		__u64 val = 0;

		t.phase = PC_PHASE_ENTRY;
		t.flags |= PC_F_HAS_ARGS;
		t.arg0 = arg0;
		t.arg1 = PT_REGS_PARM2(ctx);
		switch (pc_cfg.cookie_mode) {
		case PC_CM_CONST:
			val = pc_cfg.cookie_value;
			break;
		case PC_CM_ARG0:
			val = arg0;
			break;
		case PC_CM_CONST_PLUS_ARG0:
			val = pc_cfg.cookie_value + arg0;
			break;
		case PC_CM_ATTACH_COOKIE:
			val = t.attach_cookie;
			break;
		}
		if (pc_cfg.cookie_mode != PC_CM_NONE && cookie) {
			*cookie = val;
			t.cookie_out = val;
			t.flags |= PC_F_COOKIE_WRITTEN;
		}
		if (pc_want_skip_return(arg0)) {
			skip = 1;
			t.flags |= PC_F_SKIP_RETURN;
		}
	} else {
		t.phase = PC_PHASE_RETURN;
		t.flags |= PC_F_HAS_RET;
		t.ret = PT_REGS_RC(ctx);
	}
	pc_emit(&t);
	return skip;
}

SEC("uprobe.session")
int pc_uprobe_session(struct pt_regs *ctx) { return pc_record_session(ctx, PC_KIND_UPROBE_SESSION); }

SEC("kprobe.session")
int pc_kprobe_session(struct pt_regs *ctx) { return pc_record_session(ctx, PC_KIND_KPROBE_SESSION); }
