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

#include "feature_probes_common.h"

/* Entry writes the cookie, return reads it back. */
static __always_inline int fp_session_roundtrip(void *ctx)
{
	__u64 *cookie;

	if (!fp_mine())
		return 0;
	__sync_fetch_and_add(&fp.hits, 1);
	fp.cookie = bpf_get_attach_cookie(ctx);
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

/* The kfuncs in a uprobe session (6.13+). */
SEC("uprobe.session")
int fp_uprobe_session_kfuncs(struct pt_regs *ctx) { return fp_session_roundtrip(ctx); }

/* The kfuncs in a kprobe session (6.10+; uprobe sessions came in 6.13). */
SEC("kprobe.session")
int fp_kprobe_session_kfuncs(struct pt_regs *ctx) { return fp_session_roundtrip(ctx); }

/* The kfuncs in an fsession (7.0+, where they take ctx: only the ctx build
 * can load it). */
SEC("fsession")
int fp_fsession_kfuncs(void *ctx) { return fp_session_roundtrip(ctx); }
