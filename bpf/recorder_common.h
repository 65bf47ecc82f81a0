/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every recorder object shares: its config, the maps every instance of a
 * case shares (the loaders reuse the first instance's fds), and the one event
 * emitter. Included once per object (recorders.bpf.c, usdt_recorder.bpf.c).
 */
#ifndef PROBECONF_RECORDER_COMMON_H
#define PROBECONF_RECORDER_COMMON_H

/* Behaviour of this instance. A named section so both loaders find it at offset 0. */
const volatile struct pc_config pc_cfg SEC(".rodata.pc_cfg") = {};

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

static __always_inline int pc_emit(struct pc_event *tmpl)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&seq_by_cpu, &zero);
	struct pc_event *e;
	__u64 id = bpf_get_current_pid_tgid();

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u64 *d = bpf_map_lookup_elem(&dropped, &zero);

		if (d)
			__sync_fetch_and_add(d, 1);
		return -1;
	}
	__builtin_memcpy(e, tmpl, sizeof(*e));
	if (!(tmpl->flags & PC_F_HAS_ARGCNT))
		e->arg_cnt = -1;
	e->seq = seq ? (*seq)++ : 0;
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
