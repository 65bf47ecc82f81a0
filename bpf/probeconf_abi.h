/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * probeconf event ABI: the one layout shared by the BPF recorders, the Rust
 * decoder (src/observe/abi.rs) and the Go harness (go-harness/protocol). Every field
 * has a fixed width and explicit padding so that clang -target bpf, gcc on the
 * host and Go's encoding/binary all agree. The decoders check their layout
 * against the BTF of the compiled object (struct pc_event), so a change here
 * that is not mirrored there fails a test instead of corrupting traces.
 *
 * Bump PC_ABI_VERSION on every layout change; append fields, never move them.
 * v2 appended arg2..arg5 and arg_cnt (USDT sites carry up to six arguments).
 */
#ifndef PROBECONF_ABI_H
#define PROBECONF_ABI_H

#define PC_ABI_VERSION 2

/* pc_event.phase */
#define PC_PHASE_ENTRY 0
#define PC_PHASE_RETURN 1

/* pc_event.kind: which recorder program emitted the event */
#define PC_KIND_UPROBE 1
#define PC_KIND_URETPROBE 2
#define PC_KIND_UPROBE_MULTI 3
#define PC_KIND_URETPROBE_MULTI 4
#define PC_KIND_UPROBE_SESSION 5
#define PC_KIND_KPROBE 6
#define PC_KIND_KRETPROBE 7
#define PC_KIND_KPROBE_MULTI 8
#define PC_KIND_KRETPROBE_MULTI 9
#define PC_KIND_KPROBE_SESSION 10
#define PC_KIND_USDT 11
/* BTF-based tracing programs (kernel functions, bpf_get_func_arg/ret) */
#define PC_KIND_FENTRY 12
#define PC_KIND_FEXIT 13
#define PC_KIND_FSESSION 14
#define PC_KIND_FENTRY_MULTI 15
#define PC_KIND_FEXIT_MULTI 16
#define PC_KIND_FSESSION_MULTI 17

/* pc_event.flags */
#define PC_F_SESSION (1u << 0)          /* is_return and session cookie fields are valid */
#define PC_F_COOKIE_WRITTEN (1u << 1)   /* the entry wrote cookie_out into the session cookie */
#define PC_F_SKIP_RETURN (1u << 2)      /* the entry returned 1: the kernel must skip this return */
#define PC_F_HAS_RET (1u << 3)          /* ret is valid (return phase) */
#define PC_F_HAS_ARGS (1u << 4)         /* arg0/arg1 are valid (entry phase) */
#define PC_F_HAS_ARGCNT (1u << 5)       /* arg_cnt and arg2..arg5 are valid (USDT) */

/* pc_config.return_filter: when a session entry returns 1 (skip the return) */
#define PC_RF_NEVER 0
#define PC_RF_ALWAYS 1
#define PC_RF_ODD_ARG0 2
#define PC_RF_EVEN_ARG0 3
#define PC_RF_ARG0_EQ 4  /* arg0 == filter_arg */
#define PC_RF_ARG0_LT 5  /* arg0 <  filter_arg */

/* pc_config.cookie_mode: what a session entry writes into its session cookie */
#define PC_CM_NONE 0          /* do not write */
#define PC_CM_CONST 1         /* cookie_value */
#define PC_CM_ARG0 2          /* arg0 */
#define PC_CM_CONST_PLUS_ARG0 3 /* cookie_value + arg0 */
#define PC_CM_ATTACH_COOKIE 4 /* bpf_get_attach_cookie() */

/*
 * One recorded probe hit. 144 bytes, naturally aligned, no implicit padding.
 */
struct pc_event {
	__u64 seq;            /* per-CPU sequence number (seq_by_cpu map) */
	__u64 ktime_ns;       /* bpf_ktime_get_ns(); dropped by normalisation */
	__u32 abi_version;    /* PC_ABI_VERSION */
	__u32 probe_index;    /* pc_config.probe_index: which attachment of the case */
	__u32 tgid;
	__u32 tid;
	__u32 cpu;
	__u16 kind;           /* PC_KIND_* */
	__u8 phase;           /* PC_PHASE_* */
	__s8 is_return;       /* bpf_session_is_return(), or -1 when not a session */
	__u32 flags;          /* PC_F_* */
	__u32 _pad0;
	__u64 attach_cookie;  /* bpf_get_attach_cookie() */
	__u64 func_ip;        /* bpf_get_func_ip() */
	__u64 arg0;
	__u64 arg1;
	__u64 ret;            /* return value (return phase) */
	__u64 cookie_in;      /* session cookie as read (entry: before any write) */
	__u64 cookie_out;     /* value the entry wrote (PC_F_COOKIE_WRITTEN) */
	/* v2 */
	__u64 arg2;           /* USDT arguments 2..5 (arg0/arg1 above) */
	__u64 arg3;
	__u64 arg4;
	__u64 arg5;
	__s32 arg_cnt;        /* USDT: bpf_usdt_arg_cnt(); -1 for other kinds */
	__u32 _pad1;
};

/*
 * Behaviour of one recorder instance, set in .rodata.pc_cfg before load. Each
 * attachment of a case loads its own instance, so each has its own config.
 */
struct pc_config {
	__u32 probe_index;
	__u32 filter_tgid;    /* record only this thread group; 0 = record all */
	__u32 return_filter;  /* PC_RF_* */
	__u32 cookie_mode;    /* PC_CM_* */
	__u64 filter_arg;
	__u64 cookie_value;
};

#endif /* PROBECONF_ABI_H */
