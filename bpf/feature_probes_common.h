/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the feature-probe objects share: their filter and the state they
 * report back (struct fp_state, read by src/probing/mod.rs). */
#ifndef PROBECONF_FEATURE_PROBES_COMMON_H
#define PROBECONF_FEATURE_PROBES_COMMON_H

/* Only hits from this thread group count (kprobes fire for everyone). */
const volatile __u32 fp_tgid SEC(".rodata.fp_cfg") = 0;

/* What the program saw, read back by src/probing/mod.rs (struct Seen): one struct so
 * the layout of .bss is fixed. */
struct fp_state {
	__u64 hits;           /* every run */
	__u64 returns;        /* session runs with bpf_session_is_return() */
	__u64 cookie;         /* last bpf_get_attach_cookie() */
	__u64 func_ip;        /* last bpf_get_func_ip() */
	__u64 session_cookie; /* session cookie read at return */
	__u64 ret;            /* last bpf_get_func_ret() (fexit) */
} fp;

static __always_inline bool fp_mine(void)
{
	return !fp_tgid || (bpf_get_current_pid_tgid() >> 32) == fp_tgid;
}

#endif
