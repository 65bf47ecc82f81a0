/* SPDX-License-Identifier: Apache-2.0 */
#ifndef PROBE_TARGET_H
#define PROBE_TARGET_H
/* Lives in libprobetarget.so so that cases can probe a shared library. */
long pc_lib_add(long a, long b);
#endif
