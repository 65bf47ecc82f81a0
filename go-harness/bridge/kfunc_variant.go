package bridge

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// KfuncVariant names a prototype of the session kfuncs: the running kernel's
// (SessionKfuncPrototype), or the one an object build declares.
//
// A session program (kprobe.session, uprobe.session) calls
// bpf_session_is_return() and bpf_session_cookie(). Linux 6.10 to 6.19 declare
// them without arguments; 7.0 gave both a void *ctx parameter. cilium/ebpf
// checks a kfunc's prototype against the kernel's and refuses a mismatch
// ("function param mismatch"), even for a __weak declaration (libbpf treats
// that as a missing kfunc), so one object cannot serve both: build the BPF C
// twice (e.g. with -DSESSION_KFUNC_CTX choosing the declarations) and load the
// build ObjectVariant picks.
type KfuncVariant string

const (
	// KfuncNoArg: bool bpf_session_is_return(void), __u64 *bpf_session_cookie(void)
	// (Linux 6.10 to 6.19).
	KfuncNoArg KfuncVariant = "noarg"
	// KfuncCtx: bool bpf_session_is_return(void *ctx), __u64
	// *bpf_session_cookie(void *ctx) (Linux 7.0 on).
	KfuncCtx KfuncVariant = "ctx"
	// KfuncNone: the kernel has no session kfuncs (before 6.10), no BTF to
	// tell, or a prototype the bridge does not know.
	KfuncNone KfuncVariant = "none"
)

// SessionKfuncFunc is the kernel function whose prototype decides the variant.
const SessionKfuncFunc = "bpf_session_cookie"

// SessionKfuncPrototype reads the running kernel's BTF (btf.LoadKernelSpec,
// cached by cilium) and tells which session-kfunc prototype it has: KfuncNoArg
// (FUNC bpf_session_cookie with 0 parameters), KfuncCtx (1 parameter) or
// KfuncNone (absent, no kernel BTF, or another count). The reason says what
// was found, for logs, e.g. "kernel BTF: bpf_session_cookie(void)".
//
// Needs kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF); session
// kfuncs exist from Linux 6.10 (kprobe sessions; uprobe sessions 6.13). It
// makes the same decision as probeconf's Rust runner
// (probing::session_kfunc_prototype, through libbpf).
func SessionKfuncPrototype() (KfuncVariant, string) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return KfuncNone, fmt.Sprintf("no kernel BTF: %v", err)
	}
	return SessionKfuncPrototypeOf(spec)
}

// SessionKfuncPrototypeOf is SessionKfuncPrototype's decision on a given
// BTF spec (the kernel's, or a synthetic one in tests).
func SessionKfuncPrototypeOf(spec *btf.Spec) (KfuncVariant, string) {
	if spec == nil {
		return KfuncNone, "no kernel BTF"
	}
	var fn *btf.Func
	if err := spec.TypeByName(SessionKfuncFunc, &fn); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return KfuncNone, "kernel BTF has no " + SessionKfuncFunc + " kfunc"
		}
		return KfuncNone, fmt.Sprintf("kernel BTF: %s: %v", SessionKfuncFunc, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return KfuncNone, fmt.Sprintf("kernel BTF: %s has no FUNC_PROTO (%T)", SessionKfuncFunc, fn.Type)
	}
	switch n := len(proto.Params); n {
	case 0:
		return KfuncNoArg, "kernel BTF: " + SessionKfuncFunc + "(void)"
	case 1:
		return KfuncCtx, "kernel BTF: " + SessionKfuncFunc + "(void *ctx)"
	default:
		return KfuncNone, fmt.Sprintf("kernel BTF: %s has %d parameters, unknown prototype", SessionKfuncFunc, n)
	}
}

// ObjectVariant is the object build to load on a kernel whose session kfuncs
// look like kernel (SessionKfuncPrototype's answer): the matching build, and
// the no-argument build when the kernel has none (the builds' non-session
// programs are the same; a session program then fails to load with either,
// as an unsupported kfunc). It never returns KfuncNone.
func ObjectVariant(kernel KfuncVariant) KfuncVariant {
	if kernel == KfuncCtx {
		return KfuncCtx
	}
	return KfuncNoArg
}
