// Package compat is the Go side of probeconf's compatibility registry: what
// cilium/ebpf lacks or does differently from libbpf, and the bridges the
// harness uses so that a case runs the same way under both loaders.
//
// Every bridge has one registry entry; a probe attached through a bridge is
// reported with via "compat" and the entry's id, so a verdict can say which
// results depend on harness code rather than on the library alone.
package compat

// Status says how the harness covers a feature.
type Status string

const (
	// Native: the library does it; the entry documents a convention to normalise.
	Native Status = "native"
	// Compat: the library lacks it or gets it wrong; the harness bridges it.
	Compat Status = "compat"
	// Missing: neither the library nor the harness can do it.
	Missing Status = "missing"
)

// Entry is one row of the registry (printed by `probeconf-harness gaps`).
type Entry struct {
	ID         string `json:"id"`
	Library    string `json:"library"`
	Versions   string `json:"versions"`
	Feature    string `json:"feature"`
	Status     Status `json:"status"`
	Workaround string `json:"workaround"`
}

// Bridge ids, as reported in the `attached` line.
const (
	BridgeUprobeSession      = "cilium-uprobe-session"
	BridgePIDSemantics       = "cilium-pid-semantics"
	BridgeKprobeMultiSyscall = "cilium-kprobe-multi-syscall-prefix"
	BridgeDataSection        = "cilium-datasec-variables"
	BridgeWeakKfunc          = "cilium-weak-kfunc"
	BridgeUSDT               = "cilium-usdt"
	BridgeKprobeErrors       = "cilium-kprobe-unsupported-error"
	BridgeKprobeSessionRet   = "cilium-kprobe-session-return"
	BridgeSessionKfuncVar    = "cilium-session-kfunc-variant"
)

const library = "github.com/cilium/ebpf"

// Registry is the Go side of the compatibility registry.
var Registry = []Entry{
	{
		ID:       BridgeUprobeSession,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0; the section is typed from v0.21.0, unknown before)",
		Feature: "uprobe session links (BPF_TRACE_UPROBE_SESSION = 57, kernel >= 6.13): kind uprobe.session, " +
			"and session: true on uprobe.multi / uretprobe.multi; with retprobe: true, the RETURN flag on a session link",
		Status: Compat,
		Workaround: "Executable.UprobeMulti always links with attach type UPROBE_MULTI (48) and the kernel " +
			"answers EINVAL for a session program. The harness issues BPF_LINK_CREATE (cmd 28) itself with " +
			"attach type 57 and the uprobe_multi part of bpf_attr, resolving symbols to file offsets as cilium " +
			"does (like v0.21.0 on: stat first, ELF parsed only for symbol targets), and wraps the fd with link.NewFromFD. Where " +
			"cilium does not know the section, the program spec is retyped to Kprobe with expected attach type 57 " +
			"before load. Every uprobe-family probe whose session flag is true goes through it, whatever its kind: the program " +
			"keeps the expected attach type it was loaded with and the kernel judges the pair (a uprobe.multi " +
			"program on a session link: EINVAL on 6.18). With retprobe: true the bridge sets " +
			"BPF_F_UPROBE_MULTI_RETURN (1) in uprobe_multi.flags. libbpf refuses session+retprobe itself " +
			"(bpf_program__attach_uprobe_multi: -EINVAL before any syscall); the bridge does not emulate that " +
			"refusal, so such a probe measures the kernel, not libbpf: on 6.18 the link is created and the " +
			"session program runs at return only (bpf_session_is_return() = 1, session cookie 0, no entry run).",
	},
	{
		ID:       BridgePIDSemantics,
		Library:  library,
		Versions: "all",
		Feature:  "pid filter of uprobe / uprobe_multi attachments",
		Status:   Native,
		Workaround: `cilium: PID 0 = all processes, N = that process. libbpf: -1 = all, 0 = the calling ` +
			`process. The protocol says {"scope":"all"} or {"scope":"pid","pid":N}; the harness maps ` +
			`all to PID 0 and pid N to PID N (compat.CiliumPID).`,
	},
	{
		ID:       BridgeKprobeMultiSyscall,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.22.0 source)",
		Feature:  "syscall symbols in kprobe.multi / kretprobe.multi / kprobe.session",
		Status:   Compat,
		Workaround: "link.Kprobe retries a symbol with the arch prefix (__x64_sys_...) but link.KprobeMulti " +
			"does not. For these kinds the harness rewrites a symbol sys_xxx that is not in /proc/kallsyms " +
			"to __x64_sys_xxx (the running arch's prefix) when that one is.",
	},
	{
		ID:       BridgeKprobeErrors,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.22.0)",
		Feature:  "error for kprobe/kretprobe on a kernel without CONFIG_KPROBES",
		Status:   Compat,
		Workaround: "link.Kprobe falls back to tracefs when the kprobe PMU is missing and reports the tracefs " +
			"failure (\"neither debugfs nor tracefs are mounted\", or ENOENT on kprobe_events), which classifies " +
			"as other/not-found. When /sys/bus/event_source/devices/kprobe is absent the harness wraps the error " +
			"with ebpf.ErrNotSupported (message and errno kept), so it classifies as unsupported like libbpf's.",
	},
	{
		ID:       BridgeKprobeSessionRet,
		Library:  library,
		Versions: "checked v0.17.3, v0.20.0, v0.21.0, v0.22.0 (KprobeMultiOptions.Session in each)",
		Feature:  "kprobe session link with the RETURN flag (kprobe.session with retprobe: true, or kretprobe.multi with session: true)",
		Status:   Native,
		Workaround: "libbpf refuses session together with retprobe before any syscall (bpf_program__attach_kprobe_multi_opts: " +
			"-EINVAL). cilium expresses the pair: KretprobeMulti with KprobeMultiOptions.Session creates attach type " +
			"KPROBE_SESSION (56) with BPF_F_KPROBE_MULTI_RETURN. The harness passes it as asked (no bridge, via native) " +
			"and reports what the kernel says; the result measures the kernel, not libbpf. Not measured on a kernel with " +
			"kprobe_multi yet (the 6.18 test host has none).",
	},
	{
		ID:       BridgeDataSection,
		Library:  library,
		Versions: ">= v0.21.0 (checked v0.21.0, v0.22.0; v0.17.3 and v0.20.0 keep Contents)",
		Feature:  "setting a data section's bytes before load",
		Status:   Compat,
		Workaround: "v0.22.0 rebuilds a data section's contents from CollectionSpec.Variables at load time " +
			"(MapSpec.updateDataSection), so bytes written only into MapSpec.Contents are silently replaced " +
			"by the ELF's values. The harness writes the bytes into Contents and into every VariableSpec of " +
			"the section (offsets from the section's BTF Datasec), and reads the map back after load to check.",
	},
	{
		ID:       BridgeWeakKfunc,
		Library:  library,
		Versions: "all (measured with v0.22.0 on kernel 7.3, per docs/domain.md; not re-measured here)",
		Feature:  "__weak kfuncs whose prototype differs from the kernel's; ___flavor suffixes on kfuncs",
		Status:   Missing,
		Workaround: "libbpf treats an incompatible __weak kfunc as missing and strips ___flavor suffixes; " +
			"cilium does neither and fails the load (\"function param mismatch\" for the session kfuncs on " +
			">= 7.0; the classifier marks it invalid). The harness does not bridge this: the runner loads the object " +
			"built for the running kernel's session kfunc prototypes (recorders.ctx.bpf.o on >= 7.0), or sends " +
			"both builds and lets the harness pick (cilium-session-kfunc-variant).",
	},
	{
		ID:       BridgeSessionKfuncVar,
		Library:  library,
		Versions: "all (checked v0.22.0: btf.LoadKernelSpec, Spec.TypeByName with *btf.Func)",
		Feature: "choosing the object build for the running kernel's session-kfunc prototype " +
			"(bpf_session_is_return / bpf_session_cookie: no argument on 6.10-6.19, void *ctx from 7.0)",
		Status: Compat,
		Workaround: "cilium cannot load one object for both prototypes (see cilium-weak-kfunc) and has no " +
			"way to pick among builds. With \"objects\": {\"noarg\": PATH, \"ctx\": PATH} in the request the " +
			"harness reads the kernel BTF itself (compat.SessionKfuncPrototype: btf.LoadKernelSpec, FUNC " +
			"bpf_session_cookie: 0 params = noarg, 1 = ctx, absent = none) and loads the ctx build on ctx " +
			"kernels, the noarg build otherwise (also when the kernel has no session kfuncs). The attached line " +
			"and later error lines say object_variant and object_reason. The same decision as the Rust runner's " +
			"(probing::session_kfunc_prototype, libbpf-rs BTF). With a plain \"object\" the harness loads what " +
			"it is told, so the runner can still load the wrong build on purpose.",
	},
	{
		ID:         BridgeUSDT,
		Library:    library,
		Versions:   "all",
		Feature:    "USDT probes (usdt/ sections, bpf_usdt_cookie, .note.stapsdt)",
		Status:     Missing,
		Workaround: "cilium/ebpf has no USDT support and the protocol has no usdt kind; USDT cases run with libbpf only.",
	},
}
