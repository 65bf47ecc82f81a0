// SPDX-License-Identifier: Apache-2.0
#include "probe_target.h"

/* lib_add(a, b) = a + b, in a shared library. */
__attribute__((noinline, used, visibility("default"))) long pc_lib_add(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}
