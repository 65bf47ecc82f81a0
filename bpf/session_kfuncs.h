/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The session kfuncs, declared in one place because their prototypes changed:
 *   6.10 .. 6.19:  bool bpf_session_is_return(void);   __u64 *bpf_session_cookie(void);
 *   7.0 onwards:   bool bpf_session_is_return(void *ctx); __u64 *bpf_session_cookie(void *ctx);
 * libbpf's bpf_helpers.h (1.7) declares neither. The build compiles each object
 * that uses them once per prototype (PC_SESSION_KFUNC_CTX unset / set); the
 * runner picks the variant from the running kernel's BTF (src/probing/features.rs).
 *
 * Use PC_SESSION_IS_RETURN(ctx) / PC_SESSION_COOKIE(ctx) so one source serves both.
 */
#ifndef PROBECONF_SESSION_KFUNCS_H
#define PROBECONF_SESSION_KFUNCS_H

#ifdef PC_SESSION_KFUNC_CTX
extern bool bpf_session_is_return(void *ctx) __ksym __weak;
extern __u64 *bpf_session_cookie(void *ctx) __ksym __weak;
#define PC_SESSION_IS_RETURN(ctx) bpf_session_is_return(ctx)
#define PC_SESSION_COOKIE(ctx) bpf_session_cookie(ctx)
#else
extern bool bpf_session_is_return(void) __ksym __weak;
extern __u64 *bpf_session_cookie(void) __ksym __weak;
#define PC_SESSION_IS_RETURN(ctx) bpf_session_is_return()
#define PC_SESSION_COOKIE(ctx) bpf_session_cookie()
#endif

#endif
