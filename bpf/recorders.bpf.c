// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Generic recorder programs, one per probe kind. They hold no case-specific
 * logic: a case configures an instance through .rodata.pc_cfg (struct
 * pc_config) before load, and every hit becomes one struct pc_event in the
 * shared ring buffer. Adding a case never needs new BPF C.
 *
 * Built twice by build.rs: recorders.bpf.o with the 6.10-6.19 session kfunc
 * prototypes and recorders.ctx.bpf.o with the 7.0 ones (session_kfuncs.h).
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

/* ---- uprobe family ---- */

SEC("uprobe")
int pc_uprobe(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_UPROBE); }

SEC("uretprobe")
int pc_uretprobe(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_URETPROBE); }

SEC("uprobe.multi")
int pc_uprobe_multi(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_UPROBE_MULTI); }

SEC("uretprobe.multi")
int pc_uretprobe_multi(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_URETPROBE_MULTI); }

SEC("uprobe.session")
int pc_uprobe_session(struct pt_regs *ctx) { return pc_record_session(ctx, PC_KIND_UPROBE_SESSION); }

/* ---- kprobe family (kernel functions; the runner sets filter_tgid) ---- */

SEC("kprobe")
int pc_kprobe(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_KPROBE); }

SEC("kretprobe")
int pc_kretprobe(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_KRETPROBE); }

SEC("kprobe.multi")
int pc_kprobe_multi(struct pt_regs *ctx) { return pc_record_entry(ctx, PC_KIND_KPROBE_MULTI); }

SEC("kretprobe.multi")
int pc_kretprobe_multi(struct pt_regs *ctx) { return pc_record_return(ctx, PC_KIND_KRETPROBE_MULTI); }

SEC("kprobe.session")
int pc_kprobe_session(struct pt_regs *ctx) { return pc_record_session(ctx, PC_KIND_KPROBE_SESSION); }
