// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Two uprobe programs that record the same 80-byte struct record for every
 * call of the traced function, differing only in where the record is built:
 *
 *   rec_stack    builds it on the BPF stack (an 88-byte frame), then copies it
 *                into a ring-buffer reservation. From Linux 6.13 the x86-64 JIT
 *                runs this frame on a per-CPU private stack
 *                (kernel/bpf/verifier.c: bpf_enable_priv_stack(), a
 *                BPF_PROG_TYPE_KPROBE program, frame round_up(depth, 16) >=
 *                BPF_PRIV_STACK_MIN_SIZE = 64).
 *   rec_reserve  reserves first and fills the reservation in place (an 8-byte
 *                frame, the task's own kernel stack). The control.
 *   rec_sleep    rec_stack as a sleepable uprobe (uprobe.s) that reads 8 bytes
 *                of user memory (the traced call's fourth argument) between
 *                building and copying the record. User space makes that read
 *                fault into a userfaultfd and answers late, so the run sleeps
 *                mid-frame on any preemption model; other threads then run the
 *                program on the same CPU. bpf_enable_priv_stack() does not look
 *                at prog->sleepable.
 *
 * Every field of a record is derived from the traced call's arguments or the
 * current task, so user space can tell whether a record is self-consistent.
 * tid_at_submit is written into the reservation after the copy: it names the
 * task that really submitted the record.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define NPAD 5

struct record {
	__u64 tid_at_entry;  /* bpf_get_current_pid_tgid() as the record was started */
	__u64 arg0;          /* the traced call's first argument */
	__u64 arg1;          /* its second (the caller passes 3 * arg0 + 1) */
	__u64 pad[NPAD];     /* arg0 + 1 .. arg0 + NPAD */
	__u64 seq;           /* which call of the thread (its third argument) */
	__u64 tid_at_submit; /* bpf_get_current_pid_tgid() after the copy */
};

/* rec_sleep's user read: 0 ok, else the error of the last failed read. */
__u64 sleep_read_errors = 0;

/* Calls of bpf_ktime_get_ns() between building and copying the record, to
 * widen the window in which a run can be preempted (0 = none, the natural shape). */
const volatile __u32 spin = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* [0]: records the ring buffer could not take. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&dropped, &zero);

	if (d)
		__sync_fetch_and_add(d, 1);
}

static __always_inline __u64 window(void)
{
	__u64 sum = 0;

	for (__u32 i = 0; i < 256; i++) {
		if (i >= spin)
			break;
		sum += bpf_ktime_get_ns();
	}
	return sum;
}

SEC("uprobe")
int rec_stack(struct pt_regs *ctx)
{
	struct record r;
	struct record *e;
	__u64 a = PT_REGS_PARM1(ctx);

	r.tid_at_entry = bpf_get_current_pid_tgid();
	r.arg0 = a;
	r.arg1 = PT_REGS_PARM2(ctx);
	for (int i = 0; i < NPAD; i++)
		r.pad[i] = a + 1 + i;
	r.seq = PT_REGS_PARM3(ctx);
	r.tid_at_submit = 0;
	/* The record lives in stack memory from here on (clang would otherwise
	 * keep some fields in registers). */
	__asm__ volatile("" : : "r"(&r) : "memory");
	if (window() == 1)
		r.pad[0] = 0; /* never: keeps window() from being optimised away */

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	__builtin_memcpy(e, &r, sizeof(*e));
	e->tid_at_submit = bpf_get_current_pid_tgid();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("uprobe")
int rec_reserve(struct pt_regs *ctx)
{
	struct record *e;
	__u64 a;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	a = PT_REGS_PARM1(ctx);
	e->tid_at_entry = bpf_get_current_pid_tgid();
	e->arg0 = a;
	e->arg1 = PT_REGS_PARM2(ctx);
	for (int i = 0; i < NPAD; i++)
		e->pad[i] = a + 1 + i;
	e->seq = PT_REGS_PARM3(ctx);
	if (window() == 1)
		e->pad[0] = 0; /* never */
	e->tid_at_submit = bpf_get_current_pid_tgid();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("uprobe.s")
int rec_sleep(struct pt_regs *ctx)
{
	struct record r;
	struct record *e;
	__u64 a = PT_REGS_PARM1(ctx), v = 0;

	r.tid_at_entry = bpf_get_current_pid_tgid();
	r.arg0 = a;
	r.arg1 = PT_REGS_PARM2(ctx);
	for (int i = 0; i < NPAD; i++)
		r.pad[i] = a + 1 + i;
	r.seq = PT_REGS_PARM3(ctx);
	r.tid_at_submit = 0;
	__asm__ volatile("" : : "r"(&r) : "memory");
	/* May sleep: a page fault that user space answers late. */
	if (bpf_copy_from_user(&v, sizeof(v), (void *)PT_REGS_PARM4(ctx)))
		__sync_fetch_and_add(&sleep_read_errors, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	__builtin_memcpy(e, &r, sizeof(*e));
	e->tid_at_submit = bpf_get_current_pid_tgid();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The control for rec_sleep: the same sleep, the record built in the reservation. */
SEC("uprobe.s")
int rec_sleep_reserve(struct pt_regs *ctx)
{
	struct record *e;
	__u64 a, v = 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	a = PT_REGS_PARM1(ctx);
	e->tid_at_entry = bpf_get_current_pid_tgid();
	e->arg0 = a;
	e->arg1 = PT_REGS_PARM2(ctx);
	for (int i = 0; i < NPAD; i++)
		e->pad[i] = a + 1 + i;
	e->seq = PT_REGS_PARM3(ctx);
	if (bpf_copy_from_user(&v, sizeof(v), (void *)PT_REGS_PARM4(ctx)))
		__sync_fetch_and_add(&sleep_read_errors, 1);
	e->tid_at_submit = bpf_get_current_pid_tgid();
	bpf_ringbuf_submit(e, 0);
	return 0;
}
