/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every recorder object shares: its config, the maps every instance of a
 * case shares (the loaders reuse the first instance's fds), and the event
 * emitters. Included once per object (recorders.bpf.c, sessions.bpf.c,
 * usdt_recorder.bpf.c, and the bench objects for the maps and config).
 *
 * Events are built in the ring-buffer reservation, never on the BPF stack.
 * Since 6.13 the x86-64 JIT gives a BPF_PROG_TYPE_KPROBE program (kprobes and
 * uprobes alike) a per-CPU private stack when a (sub)program's frame, rounded
 * up to 16 bytes, is at least 64 bytes (kernel/bpf/verifier.c
 * bpf_enable_priv_stack(), check_max_stack_depth_subprog(),
 * BPF_PRIV_STACK_MIN_SIZE). Uprobe programs run under migrate_disable() only,
 * so on a preemptible kernel two threads' runs of one program on one CPU then
 * share that stack, and an event built there can be overwritten half-way (seen
 * as one thread's event carrying another's fields). So: reserve first, fill
 * the reservation in place, submit; keep every frame far below 64 bytes.
 * src/probing/priv_stack.rs holds the rule; tests/stack_depth (conformance/) loads every
 * program with the verifier's stats log and fails when a frame reaches it.
 *
 * The deliberate exception is the *_large twin of each recorder (PC_LARGE_FRAME
 * below): the pre-fix shape, a struct pc_event on the stack copied into the
 * reservation, kept so that cases/findings/ can show the kernel bug.
 */
#ifndef PROBECONF_RECORDER_COMMON_H
#define PROBECONF_RECORDER_COMMON_H

/* Behaviour of this instance. A named section so both loaders find it at offset 0. */
const volatile struct pc_config pc_cfg SEC(".rodata.pc_cfg") = {};

/*
 * Per-target behaviour, indexed by the attach cookie (the tetragon pattern;
 * probeconf_abi.h, struct pc_targets). Its own section: a loader that is not
 * given it leaves it zero (PC_TM_OFF), and pc_cfg keeps its size.
 */
const volatile struct pc_targets pc_targets SEC(".rodata.pc_targets") = {};

/*
 * The event layout, kept in BTF (only inlined code uses the type otherwise) so
 * the decoders can check their offsets against the object, and the ABI version
 * in a place a loader can read before it loads anything.
 */
const volatile struct pc_event pc_event_layout SEC(".rodata.pc_abi") = { .abi_version = PC_ABI_VERSION };

/* Shared by every instance of a case: the loaders reuse the first instance's fds. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/*
 * A per-CPU sequence number for pc_event.seq. Incremented atomically: uprobe
 * programs are preemptible, so two runs on one CPU can interleave, and a plain
 * increment could hand out one number twice. Nothing downstream relies on it
 * (normalisation drops seq; the ring buffer's order is the event order).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seq_by_cpu SEC(".maps");

/* Dropped events (ring buffer full); the runner fails a case that has any. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline bool pc_skip_tgid(void)
{
	__u32 want = pc_cfg.filter_tgid;

	return want && (bpf_get_current_pid_tgid() >> 32) != want;
}

static __always_inline void pc_count_drop(void)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&dropped, &zero);

	if (d)
		__sync_fetch_and_add(d, 1);
}

/*
 * The table entry this hit's attach cookie selects, or NULL: pc_cfg's own
 * knobs apply. NULL when the per-target mode is off, or when the cookie is past
 * the table, which the event then records (PC_F_CFG_FALLBACK; e may be NULL
 * when the ring was full). The cookie is compared with PC_TARGETS_MAX as well
 * as with n_entries: that bound is what lets the verifier accept the indexed
 * read, whatever n_entries holds.
 */
static __always_inline const volatile struct pc_target_cfg *pc_target_entry(struct pc_event *e, __u64 cookie)
{
	if (pc_targets.mode != PC_TM_BY_COOKIE)
		return NULL;
	if (cookie < PC_TARGETS_MAX && cookie < pc_targets.n_entries)
		return &pc_targets.entry[cookie];
	if (e)
		e->flags |= PC_F_CFG_FALLBACK;
	return NULL;
}

/*
 * Plain (non-session) recorders: the selected entry's tag, into cookie_out
 * (unused by plain events) with PC_F_TAG. Reads the cookie back from the
 * event, so the caller's frame does not grow.
 */
static __always_inline void pc_target_tag(struct pc_event *e)
{
	const volatile struct pc_target_cfg *t = pc_target_entry(e, e->attach_cookie);

	if (t && (t->flags & PC_TB_TAG)) {
		e->cookie_out = t->tag;
		e->flags |= PC_F_TAG;
	}
}

/*
 * Reserves one event in the ring buffer, zeroed (padding included, so records
 * are byte-identical to the old build-on-stack ones), with its kind, phase,
 * is_return and flags set. NULL when the ring is full; the drop is counted.
 */
static __always_inline struct pc_event *pc_reserve(__u16 kind, __u8 phase, __s8 is_return, __u32 flags)
{
	struct pc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		pc_count_drop();
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->phase = phase;
	e->is_return = is_return;
	e->flags = flags;
	return e;
}

/* Fills the fields every event has and submits it. */
static __always_inline void pc_submit(struct pc_event *e)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&seq_by_cpu, &zero);
	__u64 id = bpf_get_current_pid_tgid();

	if (!(e->flags & PC_F_HAS_ARGCNT))
		e->arg_cnt = -1;
	e->seq = seq ? __sync_fetch_and_add(seq, 1) : 0;
	e->ktime_ns = bpf_ktime_get_ns();
	e->abi_version = PC_ABI_VERSION;
	e->probe_index = pc_cfg.probe_index;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(e, 0);
}

/*
 * The pre-fix emitter, for the *_large recorders only: copies an event built
 * on the BPF stack (a >= 64-byte frame, so a private stack from 6.13) into the
 * reservation. Same record bytes as pc_reserve/pc_submit.
 *
 * The empty asm takes the event's address: clang must then keep the whole
 * struct in stack memory. Without it clang (SROA) keeps the fields of the
 * simple recorders in registers and spill slots (the pre-fix uprobe recorder's
 * frame was 32-40 bytes, the session and USDT ones' 96 and 144), so the twin
 * would not reliably have the large frame it exists to have.
 */
static __always_inline int pc_emit_copy(struct pc_event *tmpl)
{
	__u32 zero = 0;
	__u64 *seq;
	struct pc_event *e;
	__u64 id;

	__asm__ volatile("" : : "r"(tmpl) : "memory");
	seq = bpf_map_lookup_elem(&seq_by_cpu, &zero);
	id = bpf_get_current_pid_tgid();

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		pc_count_drop();
		return -1;
	}
	__builtin_memcpy(e, tmpl, sizeof(*e));
	if (!(tmpl->flags & PC_F_HAS_ARGCNT))
		e->arg_cnt = -1;
	e->seq = seq ? __sync_fetch_and_add(seq, 1) : 0;
	e->ktime_ns = bpf_ktime_get_ns();
	e->abi_version = PC_ABI_VERSION;
	e->probe_index = pc_cfg.probe_index;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#endif
