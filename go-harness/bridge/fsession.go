package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// FsessionOptions are the options of LoadFsession. The zero value (or nil)
// resolves everything in the running kernel's BTF and asks the verifier for
// its log only when the load fails, as cilium does.
type FsessionOptions struct {
	// KernelTypes is the kernel BTF in which the target function and the
	// program's kfuncs are resolved. Nil: btf.LoadKernelSpec().
	KernelTypes *btf.Spec
	// LogLevel and LogSizeStart mean what they mean in ebpf.ProgramOptions:
	// with LogLevel 0 the program is loaded without a verifier log first and,
	// if that fails, again with ebpf.LogLevelBranch to capture the log.
	LogLevel     ebpf.LogLevel
	LogSizeStart uint32
}

// LoadFsession loads an fsession program (SEC("fsession") or
// SEC("fsession/FUNC")): one program that a kernel function runs at its entry
// and again at its return, with a session cookie per invocation
// (bpf_session_cookie(ctx), bpf_session_is_return(ctx)). The program is bound
// to its function at load: spec.AttachTo names it (cilium fills it from
// "fsession/FUNC"; set it for a bare "fsession"). maps are the maps the
// program references, by name, typically the Collection.Maps of the same
// CollectionSpec loaded without this program. Attach the result with
// AttachFsession.
//
// cilium/ebpf cannot load it: v0.22.0 types the section (Tracing, attach type
// 58) but resolves AttachTo only for the attach types it knows, so the
// kernel gets attach_btf_id 0 and refuses ("Tracing programs must provide
// btf_id"); earlier versions do not know the section and skip the program.
// ebpf.ProgramSpec has no field that carries a BTF id. LoadFsession
// therefore issues BPF_PROG_LOAD itself, from cilium's own pieces: a copy of
// spec's instructions, map references associated with maps
// (asm.Instruction.AssociateMap), kfunc calls resolved to their vmlinux BTF
// FUNC ids, func and line info (btf.MarshalExtInfos, btf.NewHandle), the
// expected attach type AttachTraceFSession and attach_btf_id = the target's
// FUNC id (KernelFuncID); it wraps the fd with ebpf.NewProgramFromFD. spec is
// not modified.
//
// What it cannot do, and refuses with an error rather than load a different
// program: CO-RE relocations, .kconfig and .ksyms references (including
// bpf_ksym_exists on a kfunc), kfuncs and targets in kernel modules, and the
// poisoning of a missing __weak kfunc (a kfunc the kernel lacks is an error
// wrapping ErrNotSupported, as cilium reports a missing non-weak one). The
// kfunc prototypes are not compared with the kernel's (cilium's fix-up
// does): the verifier checks the call's arguments.
//
// Errors: a target function the kernel BTF lacks wraps os.ErrNotExist; a
// verifier refusal is an *ebpf.VerifierError (errors.As), with the log; a
// kernel without fsession (before Linux 7.0: EINVAL for attach type 58) or a
// JIT without it (EOPNOTSUPP) wraps ErrNotSupported. Requires Linux 7.0.
func LoadFsession(spec *ebpf.ProgramSpec, maps map[string]*ebpf.Map, opts *FsessionOptions) (*ebpf.Program, error) {
	if spec == nil {
		return nil, invalidf("fsession: nil program spec")
	}
	if opts == nil {
		opts = &FsessionOptions{}
	}
	if !isFsessionSpec(spec) {
		return nil, invalidf("fsession: program %s (section %q, %s/%s) is not an fsession program",
			spec.Name, spec.SectionName, spec.Type, spec.AttachType)
	}
	kernel := opts.KernelTypes
	if kernel == nil {
		var err error
		if kernel, err = kernelSpec(); err != nil {
			return nil, fmt.Errorf("fsession %s: %w", spec.Name, &unsupportedError{feature: "kernel BTF", hint: tracingNeedsBTFReason, err: err})
		}
	}
	target := spec.AttachTo
	if target == "" {
		_, target = sectionBase(spec.SectionName)
	}
	if target == "" {
		return nil, invalidf("fsession %s: no target function: set ProgramSpec.AttachTo (or name it in the section, fsession/FUNC)", spec.Name)
	}
	targetID, err := kernelFuncID(kernel, target)
	if err != nil {
		return nil, fmt.Errorf("fsession %s: target: %w", spec.Name, err)
	}
	insns, err := linkInstructions(spec, maps, kernel)
	if err != nil {
		if errors.Is(err, ErrNotSupported) {
			// A missing kfunc: most likely a kernel without fsession at all
			// (the session kfuncs came before it), which is the better answer.
			if have := HaveFsession(); errors.Is(have, ErrNotSupported) {
				err = have
			}
		}
		return nil, fmt.Errorf("fsession %s: %w", spec.Name, err)
	}
	flags := spec.Flags
	if base, _ := sectionBase(spec.SectionName); base == "fsession.s" {
		flags |= unix.BPF_F_SLEEPABLE // as cilium v0.22.0 types the section
	}
	prog, err := loadTracingProgram(spec, insns, flags, attachTraceFSession, uint32(targetID), opts.LogLevel, opts.LogSizeStart)
	if err != nil {
		return nil, fmt.Errorf("fsession %s on %s: %w", spec.Name, target, fsessionError(err))
	}
	return prog, nil
}

// isFsessionSpec reports whether ps is an fsession program: typed so by
// cilium (v0.22.0 on), or from an fsession section cilium did not type.
func isFsessionSpec(ps *ebpf.ProgramSpec) bool {
	if ps.Type == ebpf.Tracing && ps.AttachType == AttachTraceFSession {
		return true
	}
	base, _ := sectionBase(ps.SectionName)
	return ps.Type == ebpf.UnspecifiedProgram && (base == "fsession" || base == "fsession.s")
}

// fsessionError makes a load or link error of an fsession program say
// ErrNotSupported where the kernel lacks fsession (EINVAL for attach type 58
// before 7.0) or its JIT does (EOPNOTSUPP); other errors are returned as they
// are.
func fsessionError(err error) error { return fsessionKernel.error(err) }

// plainKernelError is err without its *ebpf.VerifierError: the same text and
// the kernel's errno, so that a caller who classifies "the verifier refused"
// by errors.As on *ebpf.VerifierError does not take a missing kernel feature
// for a refusal.
func plainKernelError(err error) error {
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) {
		return err
	}
	return &kernelError{msg: err.Error(), errno: kernelErrno(err)}
}

// kernelError is a kernel's answer as text, with its errno in the chain.
type kernelError struct {
	msg   string
	errno unix.Errno
}

func (e *kernelError) Error() string { return e.msg }
func (e *kernelError) Unwrap() error { return e.errno }

// linkInstructions returns a copy of spec's instructions ready to marshal:
// map references associated with maps, kfunc calls resolved in kernel, and
// everything else cilium would have to fix up refused.
func linkInstructions(spec *ebpf.ProgramSpec, maps map[string]*ebpf.Map, kernel *btf.Spec) (asm.Instructions, error) {
	insns := make(asm.Instructions, len(spec.Instructions))
	copy(insns, spec.Instructions)
	if len(insns) == 0 {
		return nil, invalidf("no instructions")
	}
	for i := range insns {
		ins := &insns[i]
		if btf.CORERelocationMetadata(ins) != nil {
			return nil, fmt.Errorf("instruction %d: a CO-RE relocation, which the bridge cannot apply", i)
		}
		switch {
		case ins.IsLoadFromMap():
			if ins.Map() != nil {
				continue // associated by the caller
			}
			name := ins.Reference()
			if name == "" {
				return nil, fmt.Errorf("instruction %d: a map load without a map name (.kconfig), which the bridge cannot resolve", i)
			}
			m, ok := maps[name]
			if !ok || m == nil {
				return nil, fmt.Errorf("instruction %d: map %q is not among the maps given: %w", i, name, asm.ErrUnsatisfiedMapReference)
			}
			if err := ins.AssociateMap(m); err != nil {
				return nil, fmt.Errorf("instruction %d: map %q: %w", i, name, err)
			}

		case ins.IsKfuncCall():
			name := ins.Reference()
			var fn *btf.Func
			err := kernel.TypeByName(name, &fn)
			if errors.Is(err, btf.ErrNotFound) {
				return nil, fmt.Errorf("kfunc %q: not in vmlinux BTF (kfuncs of modules are not supported by the bridge): %w", name, ErrNotSupported)
			}
			if err != nil {
				return nil, fmt.Errorf("kfunc %q: %w", name, err)
			}
			id, err := kernel.TypeID(fn)
			if err != nil {
				return nil, fmt.Errorf("kfunc %q: %w", name, err)
			}
			ins.Constant = int64(id)
			ins.Offset = 0 // vmlinux: no BTF fd in fd_array

		case ins.OpCode.IsDWordLoad() && !ins.IsLoadOfFunctionPointer() && ins.Reference() != "":
			return nil, fmt.Errorf("instruction %d: a load of %q (.ksyms), which the bridge cannot resolve", i, ins.Reference())
		}
	}
	return insns, nil
}

// Verifier log sizes, as cilium's: the first size, and the largest buffer the
// kernel takes.
const (
	minVerifierLogSize = 64 * 1024
	maxVerifierLogSize = (1<<32 - 1) >> 2
)

// loadTracingProgram issues BPF_PROG_LOAD for a tracing program of spec with
// insns (linked by linkInstructions), prog_flags flags, expected attach type attachType and
// attach_btf_id targetID, and wraps the fd with ebpf.NewProgramFromFD. A
// refusal is an *ebpf.VerifierError (inside verifierError) carrying the log.
func loadTracingProgram(spec *ebpf.ProgramSpec, insns asm.Instructions, flags, attachType, targetID uint32, logLevel ebpf.LogLevel, logSizeStart uint32) (*ebpf.Program, error) {
	attr := progLoadAttr{
		progType:           progTypeTracing,
		progFlags:          flags,
		progName:           objName(spec.Name),
		expectedAttachType: attachType,
		attachBTFID:        targetID,
	}
	license, err := unix.ByteSliceFromString(spec.License)
	if err != nil {
		return nil, invalidf("license %q: %v", spec.License, err)
	}
	attr.license = pointerTo(license)

	// Func and line info, so that the verifier log shows source lines and
	// BPF-to-BPF calls are checked as cilium would have them checked.
	var b btf.Builder
	funcInfos, lineInfos, err := btf.MarshalExtInfos(insns, &b)
	if err != nil {
		return nil, fmt.Errorf("marshal ext_infos: %w", err)
	}
	if !b.Empty() {
		handle, err := btf.NewHandle(&b)
		switch {
		case errors.Is(err, ErrNotSupported):
			// A kernel without program BTF: load without ext infos, as cilium does.
			funcInfos, lineInfos = nil, nil
		case err != nil:
			return nil, fmt.Errorf("load program BTF: %w", err)
		default:
			defer handle.Close() // the kernel holds its own reference once loaded
			attr.progBTFFD = uint32(handle.FD())
			attr.funcInfoRecSize, attr.funcInfo = btf.FuncInfoSize, pointerTo(funcInfos)
			attr.funcInfoCnt = uint32(len(funcInfos)) / btf.FuncInfoSize
			attr.lineInfoRecSize, attr.lineInfo = btf.LineInfoSize, pointerTo(lineInfos)
			attr.lineInfoCnt = uint32(len(lineInfos)) / btf.LineInfoSize
		}
	}

	var buf bytes.Buffer
	if err := insns.Marshal(&buf, nativeEndian()); err != nil {
		return nil, fmt.Errorf("marshal instructions: %w", err)
	}
	bytecode := buf.Bytes()
	attr.insns = pointerTo(bytecode)
	attr.insnCnt = uint32(len(bytecode) / asm.InstructionSize)

	var logBuf []byte
	if logLevel != 0 {
		attr.logLevel = uint32(logLevel)
		attr.logSize = between(logSizeStart, minVerifierLogSize, maxVerifierLogSize)
	}
	for {
		if attr.logLevel != 0 {
			logBuf = make([]byte, attr.logSize)
			attr.logBuf = pointerTo(logBuf)
		}
		fd, err := bpfCall(bpfProgLoad, &attr)
		runtime.KeepAlive(license)
		runtime.KeepAlive(bytecode)
		runtime.KeepAlive(funcInfos)
		runtime.KeepAlive(lineInfos)
		runtime.KeepAlive(insns) // the maps' fds
		if err == nil {
			prog, err := ebpf.NewProgramFromFD(fd) // owns fd, closes it on error
			if err != nil {
				return nil, fmt.Errorf("wrap program fd: %w", err)
			}
			return prog, nil
		}
		switch {
		case errors.Is(err, unix.ENOSPC) && attr.logLevel != 0 && attr.logSize < maxVerifierLogSize:
			// The log did not fit: grow it (to the size the kernel says it
			// needs, from 6.4 on) and load again.
			if attr.logTrueSize > attr.logSize {
				attr.logSize = attr.logTrueSize
			} else {
				attr.logSize = between(attr.logSize*2, minVerifierLogSize, maxVerifierLogSize)
			}
			continue
		case attr.logLevel == 0:
			// Load again with the log, to say why.
			attr.logLevel = uint32(ebpf.LogLevelBranch)
			attr.logSize = between(logSizeStart, minVerifierLogSize, maxVerifierLogSize)
			continue
		}
		verr := newVerifierError(kernelErrno(err), logBuf)
		if len(verr.v.Log) == 0 {
			// Refused before the verifier said anything (attr checks, EPERM):
			// the errno alone.
			return nil, fmt.Errorf("%s: %w", verifierSource, err)
		}
		return nil, verr
	}
}

// verifierError is a program load the kernel refused, with the verifier's log:
// errors.As finds the *ebpf.VerifierError inside (Cause: the errno, Log: the
// lines), so callers handle it as they handle cilium's. Its text is cilium's
// for a refused load: "load program: ERRNO: LAST LOG LINE(S)"; %+v prints the
// whole log, one line each. (cilium's constructor is internal: the inner
// error's own text has an empty source, which the prefix here fills.)
type verifierError struct{ v *ebpf.VerifierError }

func newVerifierError(errno unix.Errno, log []byte) *verifierError {
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	const whitespace = "\t\r\v\n "
	var lines []string
	if log = bytes.Trim(log, whitespace); len(log) > 0 {
		for _, l := range bytes.Split(log, []byte{'\n'}) {
			lines = append(lines, string(bytes.TrimRight(l, whitespace)))
		}
	}
	return &verifierError{&ebpf.VerifierError{Cause: errno, Log: lines}}
}

func (e *verifierError) Unwrap() error { return e.v }

func (e *verifierError) Error() string { return verifierSource + e.v.Error() }

// Format is the inner VerifierError's, after the source.
func (e *verifierError) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, verifierSource)
	e.v.Format(f, verb)
}

const verifierSource = "load program"

// AttachFsession links an fsession program (loaded with LoadFsession) to the
// kernel function it was loaded for: BPF_LINK_CREATE with attach type
// AttachTraceFSession and cookie as its BPF cookie, which
// bpf_get_attach_cookie(ctx) returns in both halves. The result is a cilium
// link (link.NewFromFD): closed, pinned and inspected like any other.
//
// cilium's link.AttachTracing refuses attach type 58 ("invalid attach type:
// AttachType(58)"), and with ebpf.AttachNone it falls back to
// BPF_RAW_TRACEPOINT_OPEN, which takes no cookie.
//
// Requires Linux 7.0; on an older kernel (or a JIT without fsession) the
// error wraps ErrNotSupported.
func AttachFsession(prog *ebpf.Program, cookie uint64) (link.Link, error) {
	if prog == nil {
		return nil, invalidf("fsession link: nil program")
	}
	attr := linkCreateTracingAttr{
		progFD:     uint32(prog.FD()),
		attachType: attachTraceFSession,
		cookie:     cookie,
	}
	fd, err := linkCreate(&attr)
	runtime.KeepAlive(prog)
	if err != nil {
		err = fsessionError(fmt.Errorf("fsession link_create (attach type %d, cookie %#x): %w", attachTraceFSession, cookie, err))
		return nil, err
	}
	l, err := link.NewFromFD(fd) // owns fd, closes it on error
	if err != nil {
		return nil, fmt.Errorf("fsession: wrap link fd: %w", err)
	}
	return l, nil
}

// nativeEndian is the host's byte order as cilium's marshalling takes it
// (binary.LittleEndian or binary.BigEndian: it does not know
// binary.NativeEndian).
func nativeEndian() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// objName is a program name as the kernel takes it: at most 15 characters of
// [A-Za-z0-9_.] (cilium strips the others too).
func objName(name string) [16]byte {
	var out [16]byte
	n := 0
	for _, c := range []byte(name) {
		if n == len(out)-1 {
			break
		}
		if c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			out[n] = c
			n++
		}
	}
	return out
}

func between(v, lo, hi uint32) uint32 {
	return max(lo, min(v, hi))
}
