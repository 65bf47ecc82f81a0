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
/* Per-target behaviour (struct pc_targets; the layout is unchanged, old decoders ignore these): */
#define PC_F_CFG_FALLBACK (1u << 6)     /* per-target mode, but the attach cookie selected no table
                                         * entry: the probe-level knobs of pc_config applied */
#define PC_F_TAG (1u << 7)              /* plain recorders: cookie_out holds the selected entry's tag */

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

/*
 * Per-target behaviour within one link: the tetragon pattern. tetragon
 * (cilium/ebpf) attaches one kprobe.multi/uprobe.multi link over many
 * functions with each target's attach cookie set to the index of that hook's
 * config, and the program reads bpf_get_attach_cookie() and uses it as an
 * index into its config. Here the config is a small table set before load, in
 * its own section .rodata.pc_targets (a second const volatile global beside
 * pc_cfg), not appended to struct pc_config: pc_config's 32 bytes are written
 * by hand by tools outside the runner (examples/, the protocol conformance
 * runner, the Go harness's tests), a loader must hand over a section's exact
 * size, and a loader that is not given .rodata.pc_targets leaves it zero,
 * which is mode PC_TM_OFF: every existing request means what it meant.
 *
 * With mode PC_TM_BY_COOKIE, a hit whose attach cookie C is < n_entries (and
 * < PC_TARGETS_MAX, which the verifier needs as the bound) uses entry[C]; any
 * other cookie uses pc_config's own knobs and the event says so
 * (PC_F_CFG_FALLBACK). Never a read outside the table.
 *
 * What an entry decides: for a session recorder, what the entry writes into
 * its session cookie (cookie_mode, cookie_value) and whether it returns 1 to
 * skip the return (return_filter, filter_arg), as pc_config's knobs of the
 * same names do; for a plain recorder (entry or return, e.g. tetragon's
 * kprobe.multi + kretprobe.multi pair), a tag copied into the event
 * (PC_TB_TAG -> PC_F_TAG, cookie_out). The first 24 bytes of an entry have
 * the order of pc_config's knobs (return_filter, cookie_mode, filter_arg,
 * cookie_value).
 */
#define PC_TARGETS_MAX 8

/* pc_targets.mode */
#define PC_TM_OFF 0       /* every hit uses pc_config's knobs */
#define PC_TM_BY_COOKIE 1 /* a hit uses entry[bpf_get_attach_cookie()] (fallback above) */

/* pc_target_cfg.flags */
#define PC_TB_TAG (1u << 0) /* plain recorders copy tag into the event */

struct pc_target_cfg {
	__u32 return_filter;  /* PC_RF_* (sessions) */
	__u32 cookie_mode;    /* PC_CM_* (sessions) */
	__u64 filter_arg;
	__u64 cookie_value;
	__u64 tag;            /* plain recorders, with PC_TB_TAG */
	__u32 flags;          /* PC_TB_* */
	__u32 _pad;
};

struct pc_targets {
	__u32 mode;           /* PC_TM_* */
	__u32 n_entries;      /* entries in use, <= PC_TARGETS_MAX */
	struct pc_target_cfg entry[PC_TARGETS_MAX];
};

#endif /* PROBECONF_ABI_H */
