// SPDX-License-Identifier: Apache-2.0
/* A USDT site guarded by a semaphore (sys/sdt.h enables semaphores per file). */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#include "probe_target.h"

/* The semaphore of probeconf:sema: the kernel increments it while a uprobe
 * with this ref_ctr_offset is attached, so the site costs nothing otherwise. */
unsigned short probeconf_sema_semaphore __attribute__((unused, section(".probes")));

/* probeconf:sema, guarded by its semaphore; returns the semaphore's value. */
__attribute__((noinline, used)) long pc_usdt_sema(long a, long b)
{
	if (probeconf_sema_semaphore)
		STAP_PROBE1(probeconf, sema, a);
	__asm__ volatile("" ::: "memory");
	(void)b;
	return probeconf_sema_semaphore;
}

/* The semaphore's current value, read without touching the site. */
long pc_usdt_sema_value(void)
{
	return *(volatile unsigned short *)&probeconf_sema_semaphore;
}
