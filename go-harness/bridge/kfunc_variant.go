package bridge

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// KfuncVariant names a build of the recorder objects by the prototype of the
// session kfuncs it declares, or the kernel's prototype of them.
type KfuncVariant string

const (
	// KfuncNoArg: bool bpf_session_is_return(void), __u64 *bpf_session_cookie(void)
	// (kernels 6.10 to 6.19; sessions.bpf.o).
	KfuncNoArg KfuncVariant = "noarg"
	// KfuncCtx: both take void *ctx (kernels 7.0 on; sessions.ctx.bpf.o).
	KfuncCtx KfuncVariant = "ctx"
	// KfuncNone: the kernel has no session kfuncs (or no BTF to tell).
	KfuncNone KfuncVariant = "none"
)

// SessionKfuncFunc is the kernel function whose prototype decides the variant.
const SessionKfuncFunc = "bpf_session_cookie"

// SessionKfuncPrototype reads the running kernel's BTF (btf.LoadKernelSpec)
// and tells which session-kfunc prototype it has: KfuncNoArg (FUNC
// bpf_session_cookie with 0 parameters), KfuncCtx (1 parameter) or KfuncNone
// (absent, no kernel BTF, or a prototype this harness does not know). The
// reason says what was found, for humans and for the attached line.
//
// It is the Go twin of the Rust runner's probing::session_kfunc_prototype,
// which reads the same FUNC with libbpf-rs; the two must agree.
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
// look like kernel: the matching one, and the no-argument build when the
// kernel has none (its non-session programs are identical in both builds; a
// session program then fails to load either way). The runner decides the
// same way (probing::kfunc_variant).
func ObjectVariant(kernel KfuncVariant) KfuncVariant {
	if kernel == KfuncCtx {
		return KfuncCtx
	}
	return KfuncNoArg
}
