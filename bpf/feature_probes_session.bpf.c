// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Feature probes that call the session kfuncs, built once per prototype
 * (session_kfuncs.h). See feature_probes.bpf.c.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "session_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

/* Only hits from this thread group count (kprobes fire for everyone). */
const volatile __u32 fp_tgid SEC(".rodata.fp_cfg") = 0;

/* What the program saw, read back by src/probing.rs (struct Seen): one struct so
 * the layout of .bss is fixed. */
struct fp_state {
	__u64 hits;           /* every run */
	__u64 returns;        /* session runs with bpf_session_is_return() */
	__u64 cookie;         /* last bpf_get_attach_cookie() */
	__u64 func_ip;        /* last bpf_get_func_ip() */
	__u64 session_cookie; /* session cookie read at return */
} fp;

static __always_inline bool fp_mine(void)
{
	return !fp_tgid || (bpf_get_current_pid_tgid() >> 32) == fp_tgid;
}

/* The kfuncs too: entry writes the cookie, return reads it back. */
SEC("uprobe.session")
int fp_uprobe_session_kfuncs(struct pt_regs *ctx)
{
	__u64 *cookie;

	if (!fp_mine())
		return 0;
	__sync_fetch_and_add(&fp.hits, 1);
	cookie = PC_SESSION_COOKIE(ctx);
	if (!cookie)
		return 0;
	if (PC_SESSION_IS_RETURN(ctx)) {
		__sync_fetch_and_add(&fp.returns, 1);
		fp.session_cookie = *cookie;
	} else {
		*cookie = 0x5e551011;
	}
	return 0;
}

/* The kfuncs in a kprobe session (6.10+; uprobe sessions came in 6.13). */
SEC("kprobe.session")
int fp_kprobe_session_kfuncs(struct pt_regs *ctx)
{
	__u64 *cookie;

	if (!fp_mine())
		return 0;
	__sync_fetch_and_add(&fp.hits, 1);
	cookie = PC_SESSION_COOKIE(ctx);
	if (!cookie)
		return 0;
	if (PC_SESSION_IS_RETURN(ctx)) {
		__sync_fetch_and_add(&fp.returns, 1);
		fp.session_cookie = *cookie;
	} else {
		*cookie = 0x5e551011;
	}
	return 0;
}

