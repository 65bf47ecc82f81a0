/* SPDX-License-Identifier: Apache-2.0 */
#ifndef PROBE_TARGET_H
#define PROBE_TARGET_H
/* Lives in libprobetarget.so so that cases can probe a shared library. */
long pc_lib_add(long a, long b);

/* USDT sites (usdt_sites.c, nops.S). */
long pc_usdt_args(long a, long b);
long pc_usdt_sema(long a, long b);
long pc_usdt_sema_value(void);
long pc_usdt_rip(long a, long b);
long pc_usdt_nop5(long a, long b);
long pc_usdt_nop10(long a, long b);
#endif
