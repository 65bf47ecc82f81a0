package bridge

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// UprobeSessionOptions are the options of UprobeMultiSession. The first five
// fields mean what they mean in link.UprobeMultiOptions.
type UprobeSessionOptions struct {
	// Addresses are absolute file offsets, one per target. A non-zero entry
	// overrides the symbol of the same index, and the ELF file is then not
	// read for it (as in cilium). Nil, or of the same length as the symbols.
	Addresses []uint64
	// Offsets are added to the symbol's (or the address's) file offset, one
	// per target. Nil, or of the same length.
	Offsets []uint64
	// RefCtrOffsets are the file offsets of USDT-style semaphores the kernel
	// increments while the link exists, one per target. Nil, or of the same
	// length.
	RefCtrOffsets []uint64
	// Cookies are the BPF cookies (bpf_get_attach_cookie()), one per target:
	// the same value at entry and at return. Nil, or of the same length.
	Cookies []uint64
	// PID restricts the link to one process (its whole thread group from
	// Linux 6.10 on). Zero means every process: cilium's convention, not
	// libbpf's (where 0 is the calling process and -1 every process).
	PID uint32
	// Return sets BPF_F_UPROBE_MULTI_RETURN on the session link. libbpf
	// refuses session + retprobe before any syscall; the kernel accepts the
	// pair, and then (measured on 6.18) runs the program at return only:
	// bpf_session_is_return() is true, the session cookie reads 0. Leave it
	// false unless you want to measure exactly that.
	Return bool
}

// UprobeSession attaches a uprobe.session program to one function of ex: the
// program runs at the function's entry and again at its return, with one
// session cookie per invocation (bpf_session_cookie()), and an entry that
// returns 1 skips that invocation's return run.
//
// cilium/ebpf (up to v0.22.0 at least) cannot create this link:
// Executable.UprobeMulti always asks for attach type BPF_TRACE_UPROBE_MULTI
// and the kernel answers EINVAL for a session program. The bridge issues
// BPF_LINK_CREATE with attach type BPF_TRACE_UPROBE_SESSION (57) itself and
// wraps the new fd with link.NewFromFD, so the result is closed, pinned and
// inspected like any cilium link.
//
// symbol is resolved to a file offset exactly as cilium resolves it for
// Executable.Uprobe; opts (may be nil) are read as there: Address (an absolute
// file offset that replaces the symbol), Offset, RefCtrOffset, Cookie and PID
// (0 or less: every process). TraceFSPrefix is ignored.
//
// prog must have been loaded from a SEC("uprobe.session") program, which makes
// its expected attach type BPF_TRACE_UPROBE_SESSION: cilium v0.21.0 and later
// do that from the section name; with v0.17.3 or v0.20.0 load the spec with
// LoadCollectionSpec (or call PrepareUprobeSessionSpec), else cilium skips the
// program at load.
//
// Requires Linux 6.13 (BPF_TRACE_UPROBE_SESSION) and a 64-bit architecture;
// on an older kernel the error wraps ErrNotSupported.
func UprobeSession(ex *link.Executable, symbol string, prog *ebpf.Program, opts *link.UprobeOptions) (link.Link, error) {
	if opts == nil {
		opts = &link.UprobeOptions{}
	}
	if opts.PID < 0 {
		opts = &link.UprobeOptions{Address: opts.Address, Offset: opts.Offset, RefCtrOffset: opts.RefCtrOffset, Cookie: opts.Cookie}
	}
	mo := &UprobeSessionOptions{
		Addresses:     []uint64{opts.Address},
		Offsets:       []uint64{opts.Offset},
		RefCtrOffsets: []uint64{opts.RefCtrOffset},
		Cookies:       []uint64{opts.Cookie},
		PID:           uint32(opts.PID),
	}
	return UprobeMultiSession(ex, []string{symbol}, prog, mo)
}

// UprobeMultiSession attaches a uprobe.session program to several functions
// of ex with one link, as Executable.UprobeMulti attaches a uprobe.multi
// program: symbols[i] (or opts.Addresses[i] when non-zero) plus
// opts.Offsets[i], with opts.Cookies[i] and opts.RefCtrOffsets[i]. See
// UprobeSession for what a session program does and why cilium cannot attach
// it. opts may be nil when every target is a symbol.
//
// Symbols are resolved from the ELF file's .symtab and .dynsym like cilium
// v0.21.0 and later resolve them (STT_FUNC symbols, translated through the
// executable PT_LOAD segment; an offset beyond the symbol's size is refused,
// an undefined symbol wraps link.ErrNoSymbol). The ELF file is read only when
// some target needs a symbol.
//
// Requires Linux 6.13 (BPF_TRACE_UPROBE_SESSION); on an older kernel the error
// wraps ErrNotSupported. A pid that does not exist wraps os.ErrNotExist (and
// unix.ESRCH), as in cilium.
func UprobeMultiSession(ex *link.Executable, symbols []string, prog *ebpf.Program, opts *UprobeSessionOptions) (link.Link, error) {
	if prog == nil {
		return nil, errors.New("uprobe session: nil program")
	}
	if opts == nil {
		opts = &UprobeSessionOptions{}
	}
	binary, err := executablePath(ex)
	if err != nil {
		return nil, fmt.Errorf("uprobe session: %w", err)
	}
	offsets, err := fileOffsets(binary, symbols, opts.Addresses, opts.Offsets)
	if err != nil {
		return nil, fmt.Errorf("uprobe session: %w", err)
	}
	n := len(offsets)
	if len(opts.Cookies) != 0 && len(opts.Cookies) != n {
		return nil, invalidf("uprobe session: %d cookies for %d targets", len(opts.Cookies), n)
	}
	if len(opts.RefCtrOffsets) != 0 && len(opts.RefCtrOffsets) != n {
		return nil, invalidf("uprobe session: %d ref_ctr_offsets for %d targets", len(opts.RefCtrOffsets), n)
	}
	path, err := unix.ByteSliceFromString(binary)
	if err != nil {
		return nil, fmt.Errorf("uprobe session: binary path: %w", err)
	}

	var flags uint32
	if opts.Return {
		flags |= bpfFUprobeMultiReturn
	}
	attr := linkCreateUprobeMultiAttr{
		progFD:        uint32(prog.FD()),
		attachType:    attachTraceUprobeSession,
		path:          pointerTo(path),
		offsets:       pointerTo(offsets),
		refCtrOffsets: pointerTo(nonZero(opts.RefCtrOffsets)),
		cookies:       pointerTo(nonZero(opts.Cookies)),
		cnt:           uint32(n),
		uprobeFlags:   flags,
		pid:           opts.PID,
	}
	fd, err := linkCreate(&attr)
	// The kernel has copied the arrays once BPF_LINK_CREATE returns.
	runtime.KeepAlive(path)
	runtime.KeepAlive(offsets)
	runtime.KeepAlive(opts)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			// cilium reports a missing pid the same way for UprobeMulti.
			return nil, fmt.Errorf("uprobe session link_create: %w (pid %d not found?): %w", err, opts.PID, os.ErrNotExist)
		}
		if errors.Is(err, unix.EINVAL) && !haveUprobeSessionLink() {
			return nil, &unsupportedError{feature: "uprobe session links (BPF_TRACE_UPROBE_SESSION)", minKernel: "6.13",
				hint: "the kernel does not know attach type 57", err: fmt.Errorf("uprobe session link_create: %w", err)}
		}
		return nil, fmt.Errorf("uprobe session link_create (attach type %d, flags %#x): %w%s", attachTraceUprobeSession, flags, err, linkCreateHint(err))
	}

	l, err := link.NewFromFD(fd) // takes ownership of fd, closes it on error
	if err != nil {
		return nil, fmt.Errorf("uprobe session: wrap link fd: %w", err)
	}
	return l, nil
}

// linkCreateHint is a cilium-style guess at the cause of a session
// link_create error on a kernel that has session links.
func linkCreateHint(err error) string {
	switch {
	case errors.Is(err, unix.EINVAL):
		return " (program not loaded as uprobe.session, an offset off an instruction boundary, or an invalid pid?)"
	case errors.Is(err, unix.EBADF):
		return " (the binary is not a regular file?)"
	}
	return ""
}

// nonZero returns s, or nil when every element is zero (the kernel then gets
// no array at all, as from cilium).
func nonZero(s []uint64) []uint64 {
	for _, v := range s {
		if v != 0 {
			return s
		}
	}
	return nil
}

// fileOffsets is cilium's Executable.addresses: target i is addresses[i]
// when non-zero, else symbols[i] resolved through the ELF file, plus
// offsets[i]. The file is parsed only when a symbol is needed.
func fileOffsets(binary string, symbols []string, addresses, offsets []uint64) ([]uint64, error) {
	n := len(symbols)
	if n == 0 {
		n = len(addresses)
	}
	switch {
	case n == 0:
		return nil, invalidf("neither symbols nor addresses given")
	case symbols != nil && len(symbols) != n:
		return nil, invalidf("have %d symbols but want %d", len(symbols), n)
	case addresses != nil && len(addresses) != n:
		return nil, invalidf("have %d addresses but want %d", len(addresses), n)
	case offsets != nil && len(offsets) != n:
		return nil, invalidf("have %d offsets but want %d", len(offsets), n)
	}
	var syms *symbolTable
	out := make([]uint64, n)
	for i := range out {
		var sym string
		var addr, off uint64
		if symbols != nil {
			sym = symbols[i]
		}
		if addresses != nil {
			addr = addresses[i]
		}
		if offsets != nil {
			off = offsets[i]
		}
		if addr != 0 {
			out[i] = addr + off
			continue
		}
		if syms == nil {
			var err error
			if syms, err = loadSymbolTable(binary); err != nil {
				return nil, err
			}
		}
		o, err := syms.fileOffset(sym, off)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// PrepareUprobeSessionSpec makes a SEC("uprobe.session") program spec
// loadable as one: program type Kprobe with expected attach type
// BPF_TRACE_UPROBE_SESSION. cilium does this itself from v0.21.0 on; v0.17.3
// and v0.20.0 do not know the section, leave the program UnspecifiedProgram
// and skip it at load. LoadCollectionSpec calls it for every program. It
// reports whether it changed ps; other sections are left alone.
func PrepareUprobeSessionSpec(ps *ebpf.ProgramSpec) bool {
	if !strings.HasPrefix(ps.SectionName, "uprobe.session") {
		return false
	}
	if ps.Type == ebpf.Kprobe && ps.AttachType == AttachTraceUprobeSession {
		return false
	}
	ps.Type = ebpf.Kprobe
	ps.AttachType = AttachTraceUprobeSession
	return true
}

var (
	uprobeSessionOnce sync.Once
	uprobeSessionOK   bool
)

// haveUprobeSessionLink probes, once per process, whether the kernel knows
// uprobe session links: a kprobe program with expected attach type 57 linked
// with attach type 57 to "/" fails with EBADF (not a regular file) where the
// link type exists and EINVAL where it does not. The same probe as libbpf's
// and cilium's for uprobe_multi, with the session attach type.
func haveUprobeSessionLink() bool {
	uprobeSessionOnce.Do(func() {
		err := probeUprobeMultiKind(attachTraceUprobeSession, 0)
		uprobeSessionOK = errors.Is(err, unix.EBADF)
	})
	return uprobeSessionOK
}

// probeUprobeMultiKind loads a trivial kprobe program with the given expected
// attach type and links it with that attach type to "/" at offset 0 for pid,
// returning the kernel's answer (nil if, against all odds, it linked).
func probeUprobeMultiKind(attachType uint32, pid uint32) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:       "bridge_probe",
		Type:       ebpf.Kprobe,
		AttachType: ebpf.AttachType(attachType),
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		return err
	}
	defer prog.Close()
	path := []byte("/\x00")
	offsets := []uint64{0}
	attr := linkCreateUprobeMultiAttr{
		progFD:     uint32(prog.FD()),
		attachType: attachType,
		path:       pointerTo(path),
		offsets:    pointerTo(offsets),
		cnt:        1,
		pid:        pid,
	}
	fd, err := linkCreate(&attr)
	runtime.KeepAlive(path)
	runtime.KeepAlive(offsets)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// linkCreate issues BPF_LINK_CREATE with attr and returns the new link fd.
func linkCreate[T bpfAttr](attr *T) (int, error) {
	return bpfCall(bpfLinkCreate, attr)
}
