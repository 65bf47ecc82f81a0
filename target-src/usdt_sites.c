// SPDX-License-Identifier: Apache-2.0
/*
 * Classic USDT sites (sys/sdt.h: a 1-byte nop and a .note.stapsdt entry whose
 * argument specs the compiler chooses: constant, register or memory operand).
 * The semaphore-guarded site is in usdt_sema.c: sys/sdt.h turns semaphores on
 * per file.
 */
#include <sys/sdt.h>

#include "probe_target.h"

/* A global: the compiler describes it as a RIP-relative memory operand. */
volatile long pc_usdt_global = 4321;

/* probeconf:args with six arguments of different kinds, signs and sizes:
 * a constant, a 64-bit register, a 64-bit stack memory operand (base register
 * + offset), a signed byte, an unsigned 16-bit value, a signed 32-bit value. */
__attribute__((noinline, used)) long pc_usdt_args(long a, long b)
{
	volatile long on_stack = 1234;
	signed char s8 = (signed char)(a - 10);
	unsigned short u16 = (unsigned short)(b + 65000);
	int s32 = (int)(-a * 1000);

	STAP_PROBE6(probeconf, args, 42, a, on_stack, s8, u16, s32);
	__asm__ volatile("" ::: "memory");
	return a + b;
}


/* probeconf:rip: one argument that is a RIP-relative memory operand
 * (`-8@pc_usdt_global(%rip)`). The displacement is relative to the next
 * instruction, which the note does not record. */
__attribute__((noinline, used)) long pc_usdt_rip(long a, long b)
{
	STAP_PROBE1(probeconf, rip, pc_usdt_global);
	__asm__ volatile("" ::: "memory");
	return a + b;
}
