package compat

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// UprobeTarget is one attach point of a uprobe session link.
type UprobeTarget struct {
	Symbol string // function symbol; "" when Offset is an absolute file offset
	Offset uint64 // relative to Symbol, or an absolute file offset
	Cookie uint64 // bpf_get_attach_cookie()
}

// PrepareUprobeSessionSpec makes a uprobe.session program spec loadable as
// one: program type Kprobe with expected attach type BPF_TRACE_UPROBE_SESSION.
// cilium derives this from the section name from v0.21.0 on; v0.17.3 and
// v0.20.0 do not know the section, leave the program UnspecifiedProgram and
// skip it at load (and with attach type 0 the kernel would refuse the session
// kfuncs anyway). It
// returns whether it changed the spec.
func PrepareUprobeSessionSpec(ps *ebpf.ProgramSpec) bool {
	if !strings.HasPrefix(ps.SectionName, "uprobe.session") {
		return false
	}
	if ps.Type == ebpf.Kprobe && ps.AttachType == ebpf.AttachType(AttachTraceUprobeSession) {
		return false
	}
	ps.Type = ebpf.Kprobe
	ps.AttachType = ebpf.AttachType(AttachTraceUprobeSession)
	return true
}

// UprobeSessionOptions are the knobs of the uprobe session bridge.
type UprobeSessionOptions struct {
	// PID filters the link to one process, in cilium's convention (0 = all
	// processes, see CiliumPID).
	PID uint32
	// Return sets BPF_F_UPROBE_MULTI_RETURN in link_create.uprobe_multi.flags.
	// libbpf refuses session together with retprobe before any syscall
	// (bpf_program__attach_uprobe_multi: -EINVAL); the bridge does not
	// emulate that refusal and lets the kernel decide.
	Return bool
}

// AttachUprobeSession attaches prog to every target in binary with one
// BPF_LINK_CREATE of attach type BPF_TRACE_UPROBE_SESSION (kernel >= 6.13):
// the link cilium/ebpf cannot create, as Executable.UprobeMulti always asks for
// attach type UPROBE_MULTI. The program is linked as loaded: the kernel checks
// its expected attach type against 57 and answers for itself.
//
// Like link.OpenExecutable, the bridge stats the binary first and parses its
// ELF symbols only when a target names a symbol, so a missing binary and a
// file that is not ELF fail as they would with cilium.
//
// The returned link is cilium's own wrapper (link.NewFromFD), so it is closed
// and inspected like any other link.
func AttachUprobeSession(prog *ebpf.Program, binary string, targets []UprobeTarget, opts UprobeSessionOptions) (link.Link, error) {
	if prog == nil {
		return nil, errors.New("uprobe session: nil program")
	}
	if len(targets) == 0 {
		return nil, invalidf("uprobe session: no targets")
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("uprobe session: stat executable: %w", err)
	}

	var syms *symbolTable
	offsets := make([]uint64, len(targets))
	cookies := make([]uint64, len(targets))
	for i, t := range targets {
		cookies[i] = t.Cookie
		if t.Symbol == "" {
			offsets[i] = t.Offset // an absolute file offset
			continue
		}
		if syms == nil {
			var err error
			if syms, err = loadSymbolTable(binary); err != nil {
				return nil, fmt.Errorf("uprobe session: %w", err)
			}
		}
		off, err := syms.fileOffset(t.Symbol, t.Offset)
		if err != nil {
			return nil, fmt.Errorf("uprobe session: %w", err)
		}
		offsets[i] = off
	}
	path, err := unix.ByteSliceFromString(binary)
	if err != nil {
		return nil, fmt.Errorf("uprobe session: binary path: %w", err)
	}

	var flags uint32
	if opts.Return {
		flags |= BPFFUprobeMultiReturn
	}
	attr := linkCreateUprobeMultiAttr{
		progFD:      uint32(prog.FD()),
		attachType:  AttachTraceUprobeSession,
		path:        pointerTo(path),
		offsets:     pointerTo(offsets),
		cookies:     pointerTo(cookies),
		cnt:         uint32(len(offsets)),
		uprobeFlags: flags,
		pid:         opts.PID,
	}
	fd, err := linkCreate(&attr)
	// The kernel has copied the arrays once BPF_LINK_CREATE returns.
	runtime.KeepAlive(path)
	runtime.KeepAlive(offsets)
	runtime.KeepAlive(cookies)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			// cilium reports a missing pid the same way for UprobeMulti.
			return nil, fmt.Errorf("uprobe session link_create: %w (pid %d not found?): %w", err, opts.PID, os.ErrNotExist)
		}
		return nil, fmt.Errorf("uprobe session link_create (attach type %d, flags %#x): %w", AttachTraceUprobeSession, flags, err)
	}

	l, err := link.NewFromFD(fd) // takes ownership of fd, closes it on error
	if err != nil {
		return nil, fmt.Errorf("uprobe session: wrap link fd: %w", err)
	}
	return l, nil
}

// linkCreate issues BPF_LINK_CREATE with attr and returns the new link fd.
func linkCreate(attr *linkCreateUprobeMultiAttr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkCreate,
			uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
		runtime.KeepAlive(attr)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}
