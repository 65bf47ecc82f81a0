package bridge

import (
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// tracingMultiSections maps the sections of tracing multi programs (libbpf's
// development tree: "fentry.multi+", "fexit.multi+", "fsession.multi+" and
// their sleepable ".s" forms) to their attach types.
var tracingMultiSections = map[string]struct {
	attachType ebpf.AttachType
	sleepable  bool
}{
	"fentry.multi":     {AttachTraceFEntryMulti, false},
	"fexit.multi":      {AttachTraceFExitMulti, false},
	"fsession.multi":   {AttachTraceFSessionMulti, false},
	"fentry.multi.s":   {AttachTraceFEntryMulti, true},
	"fexit.multi.s":    {AttachTraceFExitMulti, true},
	"fsession.multi.s": {AttachTraceFSessionMulti, true},
}

// PrepareTracingMultiSpec makes a tracing multi program spec
// (SEC("fentry.multi"), "fexit.multi", "fsession.multi", their ".s" forms,
// with or without "/PATTERN") loadable with cilium: program type Tracing, the
// matching expected attach type (AttachTraceFEntryMulti,
// AttachTraceFExitMulti, AttachTraceFSessionMulti), BPF_F_SLEEPABLE for ".s",
// and no AttachTo. cilium (up to v0.22.0) does not know these sections: it
// keeps the program as UnspecifiedProgram, which NewCollection skips. With
// AttachTo empty, cilium loads the program with attach_btf_id 0, which is
// what the kernel wants for these attach types (it binds the program to its
// bpf_multi_func placeholder; the functions are named at link time, see
// TracingMulti). It reports whether it changed ps; other sections are left
// alone. Call it before loading the collection; LoadCollectionSpec does not
// (a whole collection with such a program would then fail to load on a kernel
// without tracing multi links).
//
// A tracing multi program reads the traced functions' arguments with
// bpf_get_func_arg() (its context has no typed arguments) and runs on Linux
// with tracing multi links (HaveTracingMulti; 7.3 has them).
func PrepareTracingMultiSpec(ps *ebpf.ProgramSpec) bool {
	base, _ := sectionBase(ps.SectionName)
	sec, ok := tracingMultiSections[base]
	if !ok {
		return false
	}
	changed := ps.Type != ebpf.Tracing || ps.AttachType != sec.attachType || ps.AttachTo != ""
	ps.Type, ps.AttachType, ps.AttachTo = ebpf.Tracing, sec.attachType, ""
	if sec.sleepable && ps.Flags&unix.BPF_F_SLEEPABLE == 0 {
		ps.Flags |= unix.BPF_F_SLEEPABLE
		changed = true
	}
	return changed
}

// TracingMultiOptions are the options of TracingMulti.
type TracingMultiOptions struct {
	// AttachType is the program's expected attach type:
	// AttachTraceFEntryMulti, AttachTraceFExitMulti or
	// AttachTraceFSessionMulti (cilium does not report a loaded program's
	// expected attach type, so it is given here).
	AttachType ebpf.AttachType
	// Symbols are the kernel functions to attach to, each resolved to its
	// FUNC in vmlinux BTF (KernelFuncID). At least one.
	Symbols []string
	// Cookies are the BPF cookies (bpf_get_attach_cookie(ctx)), one per
	// symbol, in the same order; nil for none. For fsession.multi both halves
	// see the function's cookie.
	Cookies []uint64
	// KernelTypes is the kernel BTF the symbols are resolved in. Nil:
	// btf.LoadKernelSpec().
	KernelTypes *btf.Spec
}

// TracingMulti attaches a tracing multi program (prepared with
// PrepareTracingMultiSpec and loaded by cilium) to every function of
// opts.Symbols with one link: BPF_LINK_CREATE with the program's attach type
// and the functions' BTF ids and cookies (link_create.tracing_multi). The
// result is a cilium link (link.NewFromFD; a plain *link.RawLink, as cilium
// has no type for this link kind).
//
// cilium/ebpf (up to v0.22.0) has no API for this link; no released libbpf
// has one either (libbpf's development tree adds
// bpf_program__attach_tracing_multi).
//
// Only vmlinux functions: a program linked to a module's functions must be
// loaded with the module's BTF fd (attach_btf_obj_fd), which cilium cannot
// set. The kernel attaches all functions or none; it refuses a function
// listed twice (EINVAL) and one it cannot trace through ftrace (ENOENT, e.g.
// a notrace function or a name kallsyms has twice).
//
// Errors: a function the kernel BTF lacks wraps os.ErrNotExist (and ENOENT),
// before any link is attempted; a kernel without tracing multi links
// (EINVAL) or without the ftrace support they need (EOPNOTSUPP) wraps
// ErrNotSupported. Requires a kernel with tracing multi links
// (HaveTracingMulti; present in Linux 7.3).
func TracingMulti(prog *ebpf.Program, opts TracingMultiOptions) (link.Link, error) {
	if prog == nil {
		return nil, invalidf("tracing multi: nil program")
	}
	switch opts.AttachType {
	case AttachTraceFEntryMulti, AttachTraceFExitMulti, AttachTraceFSessionMulti:
	default:
		return nil, invalidf("tracing multi: attach type %s is not one of the tracing multi attach types (%d, %d, %d)",
			opts.AttachType, attachTraceFEntryMulti, attachTraceFExitMulti, attachTraceFSessionMulti)
	}
	if len(opts.Symbols) == 0 {
		return nil, invalidf("tracing multi: no symbols")
	}
	if len(opts.Cookies) != 0 && len(opts.Cookies) != len(opts.Symbols) {
		return nil, invalidf("tracing multi: %d cookies for %d symbols", len(opts.Cookies), len(opts.Symbols))
	}
	kernel := opts.KernelTypes
	if kernel == nil {
		var err error
		if kernel, err = kernelSpec(); err != nil {
			return nil, fmt.Errorf("tracing multi: %w", &unsupportedError{feature: "kernel BTF", hint: tracingNeedsBTFReason, err: err})
		}
	}
	ids, err := kernelFuncIDs(kernel, opts.Symbols)
	if err != nil {
		return nil, fmt.Errorf("tracing multi: %w", err)
	}
	cookies := nonZero(opts.Cookies)
	attr := linkCreateTracingMultiAttr{
		progFD:     uint32(prog.FD()),
		attachType: uint32(opts.AttachType),
		ids:        pointerTo(ids),
		cookies:    pointerTo(cookies),
		cnt:        uint32(len(ids)),
	}
	fd, err := linkCreate(&attr)
	// The kernel has copied the arrays once BPF_LINK_CREATE returns.
	runtime.KeepAlive(ids)
	runtime.KeepAlive(cookies)
	runtime.KeepAlive(prog)
	if err != nil {
		err = fmt.Errorf("tracing multi link_create (attach type %d, %d functions): %w", opts.AttachType, len(ids), err)
		return nil, TracingMultiError(err)
	}
	l, err := link.NewFromFD(fd) // owns fd, closes it on error
	if err != nil {
		return nil, fmt.Errorf("tracing multi: wrap link fd: %w", err)
	}
	return l, nil
}

// TracingMultiError makes an error of loading or linking a tracing multi
// program say ErrNotSupported where the kernel lacks tracing multi links
// (EINVAL, and HaveTracingMulti says so: cilium reports the refused load as a
// verifier error, which this error no longer wraps) or the ftrace support
// they need (EOPNOTSUPP). The text and the errno are kept; any other error,
// and nil, is returned as it is. Call it on the error of a NewCollection that
// loads a program prepared by PrepareTracingMultiSpec.
func TracingMultiError(err error) error {
	return tracingMultiKernel.error(err)
}
