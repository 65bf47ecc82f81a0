package bridge

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Attach types of the BTF-based tracing programs that cilium/ebpf (up to
// v0.22.0) has no name for. cilium's own AttachTraceFEntry (24) and
// AttachTraceFExit (25) cover fentry and fexit.
const (
	// AttachTraceFSession is the expected attach type of an fsession program
	// (enum bpf_attach_type BPF_TRACE_FSESSION, Linux 7.0): one program run at
	// a kernel function's entry and again at its return.
	AttachTraceFSession = ebpf.AttachType(attachTraceFSession)
	// AttachTraceFEntryMulti, AttachTraceFExitMulti and
	// AttachTraceFSessionMulti are the expected attach types of programs
	// linked to many kernel functions at once by a tracing multi link
	// (BPF_TRACE_FENTRY_MULTI, BPF_TRACE_FEXIT_MULTI, BPF_TRACE_FSESSION_MULTI;
	// present in Linux 7.3's BTF: use HaveTracingMulti rather than a version).
	AttachTraceFEntryMulti   = ebpf.AttachType(attachTraceFEntryMulti)
	AttachTraceFExitMulti    = ebpf.AttachType(attachTraceFExitMulti)
	AttachTraceFSessionMulti = ebpf.AttachType(attachTraceFSessionMulti)
)

// The enumerators of enum bpf_attach_type that say a kernel has fsession and
// the tracing multi link.
const (
	enumAttachType        = "bpf_attach_type"
	enumFSession          = "BPF_TRACE_FSESSION"
	enumFEntryMulti       = "BPF_TRACE_FENTRY_MULTI"
	tracingMultiSeenIn    = "7.3"
	fsessionMinKernel     = "7.0"
	tracingMultiFeature   = "tracing multi links (BPF_TRACE_FENTRY_MULTI/FEXIT_MULTI/FSESSION_MULTI)"
	fsessionFeature       = "fsession programs (BPF_TRACE_FSESSION)"
	tracingNeedsBTFReason = "BTF-based tracing needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF)"
)

// HaveFsession reports whether the running kernel knows fsession programs
// (Linux 7.0): nil if it does, an error wrapping ErrNotSupported if it does
// not. It reads the kernel's BTF (btf.LoadKernelSpec, cached by cilium): the
// kernel's own enum bpf_attach_type names BPF_TRACE_FSESSION from 7.0 on. The
// answer is computed once per process.
//
// The JIT must support fsession too (x86_64 in 7.0); where it does not, the
// program's load fails with EOPNOTSUPP, which LoadFsession reports as
// ErrNotSupported.
func HaveFsession() error {
	fsessionOnce.Do(func() { fsessionErr = haveAttachType(kernelSpec, enumFSession, fsessionFeature, fsessionMinKernel) })
	return fsessionErr
}

// HaveTracingMulti reports whether the running kernel knows tracing multi
// links (attach types AttachTraceFEntryMulti, AttachTraceFExitMulti and
// AttachTraceFSessionMulti): nil if it does, an error wrapping
// ErrNotSupported if it does not. It reads the kernel's BTF (enum
// bpf_attach_type names BPF_TRACE_FENTRY_MULTI; Debian's 7.2 and 7.3 have
// it, 7.1 does not). The answer is computed once per process.
//
// The link also needs ftrace direct calls with single ops support
// (x86_64); where those are missing, TracingMulti fails with EOPNOTSUPP,
// reported as ErrNotSupported.
func HaveTracingMulti() error {
	tracingMultiOnce.Do(func() {
		tracingMultiErr = haveAttachType(kernelSpec, enumFEntryMulti, tracingMultiFeature, "")
	})
	return tracingMultiErr
}

var (
	fsessionOnce, tracingMultiOnce sync.Once
	fsessionErr, tracingMultiErr   error
)

// kernelFeature is a kernel feature a bridge's syscall needs, and how to tell
// that a kernel lacks it.
type kernelFeature struct {
	name      string       // what, for messages
	minKernel string       // the first release with it, "" when not known for sure
	have      func() error // nil if the running kernel has it
	missing   string       // the hint when have says the kernel lacks it
	opNotSupp string       // the hint for EOPNOTSUPP/ENOTSUPP
}

var (
	fsessionKernel = kernelFeature{
		name: fsessionFeature, minKernel: fsessionMinKernel, have: HaveFsession,
		missing:   "the kernel does not know attach type 58",
		opNotSupp: "the kernel (or its JIT: x86_64 only in 7.0) does not support fsession",
	}
	tracingMultiKernel = kernelFeature{
		name: tracingMultiFeature, have: HaveTracingMulti,
		missing:   "the kernel's enum " + enumAttachType + " has no " + enumFEntryMulti + " (Linux " + tracingMultiSeenIn + " has it)",
		opNotSupp: "the kernel lacks ftrace direct calls with single ops (x86_64 only)",
	}
)

// error makes err (of a syscall that needs f) wrap ErrNotSupported where the
// kernel lacks f: the kernel answered EOPNOTSUPP or ENOTSUPP, or EINVAL and
// f.have says the kernel lacks f. The text and the errno are kept, but not a
// *ebpf.VerifierError: a missing feature is not a refusal of the program. Any
// other error, and nil, is returned as it is.
func (f kernelFeature) error(err error) error {
	switch {
	case err == nil:
		return nil
	case notSupportedErrno(err):
		return &unsupportedError{feature: f.name, minKernel: f.minKernel, hint: f.opNotSupp, err: plainKernelError(err)}
	case kernelErrno(err) == unix.EINVAL && errors.Is(f.have(), ErrNotSupported):
		return &unsupportedError{feature: f.name, minKernel: f.minKernel, hint: f.missing, err: plainKernelError(err)}
	}
	return err
}

// kernelSpec is btf.LoadKernelSpec, replaceable in tests.
var kernelSpec = btf.LoadKernelSpec

// haveAttachType answers HaveFsession and HaveTracingMulti from the kernel
// BTF that load returns: nil when enum bpf_attach_type has the enumerator.
func haveAttachType(load func() (*btf.Spec, error), enumerator, feature, minKernel string) error {
	spec, err := load()
	if err != nil {
		return &unsupportedError{feature: feature, minKernel: minKernel, hint: "no kernel BTF to tell: " + tracingNeedsBTFReason, err: err}
	}
	ok, err := attachTypeKnown(spec, enumerator)
	if err != nil {
		return fmt.Errorf("%s: kernel BTF: %w", feature, err)
	}
	if !ok {
		hint := "the kernel's enum " + enumAttachType + " has no " + enumerator
		if minKernel == "" {
			hint += " (Linux " + tracingMultiSeenIn + " has it)"
		}
		return &unsupportedError{feature: feature, minKernel: minKernel, hint: hint}
	}
	return nil
}

// attachTypeKnown reports whether spec's enum bpf_attach_type has the
// enumerator name.
func attachTypeKnown(spec *btf.Spec, name string) (bool, error) {
	var enum *btf.Enum
	if err := spec.TypeByName(enumAttachType, &enum); err != nil {
		return false, err
	}
	for _, v := range enum.Values {
		if v.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// KernelFuncID returns the BTF type id of the kernel function name: its FUNC
// in vmlinux BTF (btf.LoadKernelSpec), the id a tracing program is bound to
// at load (attach_btf_id) or a tracing multi link names. A function vmlinux
// BTF does not have (absent from the kernel, or a function pahole emitted no
// FUNC for, or one in a module) is an error wrapping os.ErrNotExist (and
// ENOENT); without kernel BTF the error wraps ErrNotSupported. Needs kernel
// BTF (CONFIG_DEBUG_INFO_BTF, Linux 5.4).
func KernelFuncID(name string) (btf.TypeID, error) {
	spec, err := kernelSpec()
	if err != nil {
		return 0, &unsupportedError{feature: "kernel BTF", hint: tracingNeedsBTFReason, err: err}
	}
	return kernelFuncID(spec, name)
}

// kernelFuncID is KernelFuncID in a given BTF spec (the kernel's, or a
// synthetic one in tests).
func kernelFuncID(spec *btf.Spec, name string) (btf.TypeID, error) {
	if name == "" {
		return 0, invalidf("no kernel function named")
	}
	if strings.Contains(name, ":") {
		return 0, invalidf("kernel function %q: module:function targets are not supported (vmlinux only)", name)
	}
	var fn *btf.Func
	switch err := spec.TypeByName(name, &fn); {
	case errors.Is(err, btf.ErrNotFound):
		return 0, fmt.Errorf("kernel BTF has no function %q (not in the kernel, no BTF FUNC for it, or in a module): %w", name, unix.ENOENT)
	case errors.Is(err, btf.ErrMultipleMatches):
		// As cilium refuses fentry on an ambiguous name (cilium/ebpf#894).
		return 0, invalidf("kernel BTF has several functions %q: attaching to an ambiguous kernel symbol is not supported", name)
	case err != nil:
		return 0, fmt.Errorf("kernel function %q: %w", name, err)
	}
	return spec.TypeID(fn)
}

// kernelFuncIDs is kernelFuncID for each name, as the u32 ids a tracing multi
// link takes.
func kernelFuncIDs(spec *btf.Spec, names []string) ([]uint32, error) {
	ids := make([]uint32, len(names))
	for i, name := range names {
		id, err := kernelFuncID(spec, name)
		if err != nil {
			return nil, err
		}
		ids[i] = uint32(id)
	}
	return ids, nil
}

// sectionBase is an ELF section name without libbpf's optional-program mark
// and without its "/extra" part: "fsession" for "?fsession/do_sys_openat2".
func sectionBase(section string) (base, extra string) {
	base, extra, _ = strings.Cut(strings.TrimPrefix(section, "?"), "/")
	return base, extra
}

// kernelErrno is the errno in err's chain, 0 when there is none.
func kernelErrno(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

// enotsupp is the kernel-internal ENOTSUPP (524) that leaks out of BPF paths.
const enotsupp = unix.Errno(524)

// notSupportedErrno reports whether the kernel's errno says "not supported":
// EOPNOTSUPP or the kernel-internal ENOTSUPP.
func notSupportedErrno(err error) bool {
	e := kernelErrno(err)
	return e == unix.EOPNOTSUPP || e == enotsupp
}
