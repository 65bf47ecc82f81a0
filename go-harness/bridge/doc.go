// Package bridge fills gaps of cilium/ebpf that tool authors hit when they
// trace user space and the kernel: things libbpf (or the kernel) does and
// cilium/ebpf (v0.17.3 to v0.22.0) does not. It is written in the style of cilium's link package and works on
// cilium's own types (*ebpf.Program, *link.Executable, link.Link), so a tool
// keeps using cilium everywhere else.
//
// The bridges:
//
//   - Uprobe sessions (UprobeSession, UprobeMultiSession; Linux 6.13): one
//     SEC("uprobe.session") program runs at a function's entry and again at
//     its return, sharing a per-invocation session cookie. cilium parses the
//     section (v0.21.0 on) but cannot create the link; the bridge creates it
//     with BPF_LINK_CREATE and hands back a cilium link.
//   - USDT probes (LoadCollectionSpec, AttachUSDT): cilium has no USDT support
//     and cannot even load an object built on libbpf's usdt.bpf.h. The bridge
//     loads that same object and attaches it the way libbpf 1.7's usdt.c does
//     (.note.stapsdt sites, argument specs, semaphores, spec ids), so the
//     program's bpf_usdt_arg(), bpf_usdt_arg_cnt() and bpf_usdt_cookie() work
//     unchanged. x86_64 only.
//   - The session-kfunc prototype (SessionKfuncPrototype, ObjectVariant):
//     bpf_session_is_return() and bpf_session_cookie() take no argument on
//     Linux 6.10 to 6.19 and void *ctx from 7.0 on. cilium refuses an object
//     built for the other prototype (libbpf quietly treats such a __weak kfunc
//     as missing), so a portable tool ships two builds and picks one by the
//     running kernel's BTF.
//   - fsession (LoadFsession, AttachFsession; Linux 7.0): one BTF-based
//     tracing program run at a kernel function's entry and again at its
//     return. cilium v0.22.0 types the section but loads it without its target
//     (earlier versions skip it), and link.AttachTracing refuses its attach
//     type; the bridge loads the program itself, from the spec and the maps
//     cilium created, and links it with a cookie.
//   - The tracing multi link (PrepareTracingMultiSpec, TracingMulti,
//     TracingMultiError; in Linux 7.3): one fentry.multi, fexit.multi or
//     fsession.multi program on many kernel functions, a cookie each. cilium
//     knows neither the sections nor the link.
//   - Kernel BTF helpers for those: KernelFuncID, HaveFsession,
//     HaveTracingMulti.
//   - Smaller ones: PrefixSyscallSymbols (link.KprobeMulti does not add the
//     arch prefix to syscall symbols), KprobeError (an honest ErrNotSupported
//     from link.Kprobe on a kernel without kprobes), SetDataSection (setting a
//     data section's bytes the same way on every cilium version).
//
// # Errors
//
// Where the running kernel lacks what a call needs, the error wraps
// ErrNotSupported (which is ebpf.ErrNotSupported, so errors.Is works with
// either), and its message names the feature and the minimum kernel, like
// cilium's own. Kernel errnos stay in the chain (errors.As with a
// syscall.Errno); the USDT bridge returns libbpf's errnos for the same
// failures. Each function's doc comment states its minimum kernel.
//
// # Versions
//
// The module requires cilium/ebpf v0.17.3, the oldest version it is tested
// with; it is tested with v0.17.3, v0.20.0, v0.21.0 and v0.22.0 (see
// test-versions.sh). Your go.mod's cilium/ebpf version wins, as usual with Go
// modules. With v0.17.3 and v0.20.0, load objects with LoadCollectionSpec
// (or call PrepareUprobeSessionSpec): those versions do not know the
// uprobe.session section and would skip the program.
//
// # Using the module
//
// The module is not published; use it from a checkout of probeconf with a
// replace directive in your go.mod:
//
//	require probeconf/bridge v0.0.0
//	replace probeconf/bridge => /path/to/probeconf/go-harness/bridge
//
// (or `go mod edit -require=probeconf/bridge@v0.0.0
// -replace=probeconf/bridge=/path/to/probeconf/go-harness/bridge`). The
// package bridgetest in this module is probeconf's test support, not API.
package bridge
