// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The session recorders (uprobe.session, kprobe.session, and the BTF-based
 * fsession and fsession.multi of 7.0+): one program runs at entry and at return. Built twice by build.rs from this one source:
 * sessions.bpf.o with the 6.10-6.19 session kfunc prototypes and
 * sessions.ctx.bpf.o with the 7.0 ones (session_kfuncs.h); the loaders get the
 * build matching the running kernel's BTF.
 *
 * Per-target behaviour (the tetragon pattern, probeconf_abi.h struct
 * pc_targets): with the table on, a session entry's attach cookie selects the
 * entry that says what it writes into its session cookie and whether it skips
 * its return, so one link can treat each of its functions differently. The
 * return run reads nothing from the table (it only records).
 *
 * Events are built in the ring-buffer reservation (see recorder_common.h);
 * the *_large twins keep the pre-fix shape for cases/findings/.
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
#include "probe_args.h"

/*
 * The session knobs come from `t`, the per-target table entry the attach
 * cookie selected (pc_target_entry()), or from pc_cfg when `t` is NULL. The
 * *_large twins always pass NULL, so their code is what it was.
 */
static __always_inline bool pc_want_skip_return(const volatile struct pc_target_cfg *t, __u64 arg0)
{
	__u64 filter_arg = t ? t->filter_arg : pc_cfg.filter_arg;

	switch (t ? t->return_filter : pc_cfg.return_filter) {
	case PC_RF_ALWAYS:
		return true;
	case PC_RF_ODD_ARG0:
		return arg0 & 1;
	case PC_RF_EVEN_ARG0:
		return !(arg0 & 1);
	case PC_RF_ARG0_EQ:
		return arg0 == filter_arg;
	case PC_RF_ARG0_LT:
		return arg0 < filter_arg;
	default:
		return false;
	}
}

static __always_inline __u32 pc_cookie_mode(const volatile struct pc_target_cfg *t)
{
	return t ? t->cookie_mode : pc_cfg.cookie_mode;
}

/* What a session entry writes into its cookie (cookie_mode). */
static __always_inline __u64 pc_cookie_value(const volatile struct pc_target_cfg *t, void *ctx, __u64 arg0)
{
	__u64 value = t ? t->cookie_value : pc_cfg.cookie_value;

	switch (pc_cookie_mode(t)) {
	case PC_CM_CONST:
		return value;
	case PC_CM_ARG0:
		return arg0;
	case PC_CM_CONST_PLUS_ARG0:
		return value + arg0;
	case PC_CM_ATTACH_COOKIE:
		return bpf_get_attach_cookie(ctx);
	default:
		return 0;
	}
}

/*
 * A session program: entry and return are the same program. The entry may write
 * the per-invocation session cookie and returns 1 to skip this invocation's return.
 * When the ring is full the event is dropped (and counted), but the entry still
 * writes its cookie and returns what the case asked for: recording never changes
 * the behaviour under test.
 */
static __always_inline int pc_record_session(void *ctx, __u16 kind, bool tracing)
{
	const volatile struct pc_target_cfg *t;
	struct pc_event *e;
	__u64 *cookie;
	__u64 arg0;
	bool is_return;
	int skip = 0;

	/* A filtered-out entry returns 0: the return run happens and is filtered again. */
	if (pc_skip_tgid())
		return 0;
	is_return = PC_SESSION_IS_RETURN(ctx);
	cookie = PC_SESSION_COOKIE(ctx);
	e = pc_reserve(kind, is_return ? PC_PHASE_RETURN : PC_PHASE_ENTRY, is_return, PC_F_SESSION);
	if (e) {
		e->attach_cookie = bpf_get_attach_cookie(ctx);
		e->func_ip = bpf_get_func_ip(ctx);
		/* Read before any write: the entry shows the cookie it found. */
		if (cookie)
			e->cookie_in = *cookie;
	}
	if (is_return) {
		if (e) {
			e->flags |= PC_F_HAS_RET;
			e->ret = pc_probe_ret(ctx, tracing);
			pc_submit(e);
		}
		return 0;
	}
	arg0 = pc_probe_arg(ctx, tracing, 0);
	if (e) {
		e->flags |= PC_F_HAS_ARGS;
		e->arg0 = arg0;
		e->arg1 = pc_probe_arg(ctx, tracing, 1);
	}
	/* Per-target behaviour: the entry the attach cookie selects, or pc_cfg. */
	t = pc_target_entry(e, bpf_get_attach_cookie(ctx));
	if (pc_cookie_mode(t) != PC_CM_NONE && cookie) {
		__u64 val = pc_cookie_value(t, ctx, arg0);

		*cookie = val;
		if (e) {
			e->cookie_out = val;
			e->flags |= PC_F_COOKIE_WRITTEN;
		}
	}
	if (pc_want_skip_return(t, arg0)) {
		skip = 1;
		if (e)
			e->flags |= PC_F_SKIP_RETURN;
	}
	if (e)
		pc_submit(e);
	return skip;
}

/* The pre-fix shape: the event built on the stack (144 bytes), then copied. */
static __always_inline int pc_record_session_large(void *ctx, __u16 kind, bool tracing)
{
	struct pc_event t = {};
	__u64 *cookie;
	bool is_return;
	int skip = 0;

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
		__u64 arg0 = pc_probe_arg(ctx, tracing, 0);

		t.phase = PC_PHASE_ENTRY;
		t.flags |= PC_F_HAS_ARGS;
		t.arg0 = arg0;
		t.arg1 = pc_probe_arg(ctx, tracing, 1);
		if (pc_cookie_mode(NULL) != PC_CM_NONE && cookie) {
			__u64 val = pc_cookie_value(NULL, ctx, arg0);

			*cookie = val;
			t.cookie_out = val;
			t.flags |= PC_F_COOKIE_WRITTEN;
		}
		if (pc_want_skip_return(NULL, arg0)) {
			skip = 1;
			t.flags |= PC_F_SKIP_RETURN;
		}
	} else {
		t.phase = PC_PHASE_RETURN;
		t.flags |= PC_F_HAS_RET;
		t.ret = pc_probe_ret(ctx, tracing);
	}
	pc_emit_copy(&t);
	return skip;
}

/* One program per kind and shape: NAME in SEC, and NAME_large beside it. */
#define PC_SESSION_RECORDER(sec, name, ctx_type, kind, tracing)                                         \
	SEC(sec) int name(ctx_type *ctx) { return pc_record_session(ctx, kind, tracing); }               \
	SEC(sec) int name##_large(ctx_type *ctx) { return pc_record_session_large(ctx, kind, tracing); }

PC_SESSION_RECORDER("uprobe.session", pc_uprobe_session, struct pt_regs, PC_KIND_UPROBE_SESSION, false)
PC_SESSION_RECORDER("kprobe.session", pc_kprobe_session, struct pt_regs, PC_KIND_KPROBE_SESSION, false)
/* fsession exists from 7.0, where the session kfuncs take ctx: on an older
 * kernel this program (in either build) is refused at load, as it should be. */
PC_SESSION_RECORDER("fsession", pc_fsession, void, PC_KIND_FSESSION, true)
PC_SESSION_RECORDER("fsession.multi", pc_fsession_multi, void, PC_KIND_FSESSION_MULTI, true)
