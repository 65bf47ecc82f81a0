package bridge

// Tests of the BTF-based tracing bridges against the running kernel. The
// loading and linking ones need root, PROBECONF_BPF_OBJECT (tracing.bpf.o and
// the sessions builds beside it) and a kernel whose BPF trampolines work
// (Linux 7.0 for fsession, tracing multi links for TracingMulti); they skip,
// saying why, elsewhere: the 6.18 test host refuses fentry programs at load
// (EPERM: no ftrace direct calls). There the tests of what a kernel without
// fsession or tracing multi links answers run instead.

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"probeconf/bridge/bridgetest"
)

// The getpgid and close syscalls' functions (x86_64): both have a BTF FUNC on
// Debian's kernels, and getpgid(-1) / dup(-1) only fail. (Not close: closing
// a link's fd is a close() the link still sees.)
const (
	getpgidFunc = "__x64_sys_getpgid"
	dupFunc     = "__x64_sys_dup"
)

// sessionsBuild is the sessions build ObjectVariant picks for this kernel.
func sessionsBuild(t *testing.T) string {
	kernel, _ := SessionKfuncPrototype()
	if ObjectVariant(kernel) == KfuncCtx {
		return bridgetest.SessionsObjectFile(t, bridgetest.SessionsCtxObjectName)
	}
	return bridgetest.SessionsObjectFile(t, bridgetest.SessionsObjectName)
}

// specOf parses object (LoadCollectionSpec) and keeps only program name in
// it, returning both.
func specOf(t *testing.T, object, name string) (*ebpf.CollectionSpec, *ebpf.ProgramSpec) {
	t.Helper()
	spec, err := LoadCollectionSpec(object, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, ok := spec.Programs[name]
	if !ok {
		t.Fatalf("no program %s in %s", name, object)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	return spec, ps
}

// requireTrampolines skips unless the kernel loads an fentry program (cilium,
// natively) on getpgid's function.
func requireTrampolines(t *testing.T) {
	t.Helper()
	bridgetest.RequireObject(t)
	bridgetest.RequireAMD64(t)
	spec, ps := specOf(t, bridgetest.TracingObjectFile(t), "pc_fentry")
	ps.AttachTo = getpgidFunc
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Skipf("this kernel does not load an fentry program (no BPF trampolines here): %v", err)
	}
	coll.Close()
}

// record is the part of a struct pc_event (bpf/probeconf_abi.h) these tests
// look at.
type record struct {
	tgid     uint32
	phase    uint8
	isReturn int8
	cookie   uint64
	ret      int64
	sessionC uint64 // the session cookie as read
}

// ownRecords reads the ring buffer and keeps this process's records.
func ownRecords(t *testing.T, events *ebpf.Map) []record {
	t.Helper()
	var out []record
	for _, r := range bridgetest.ReadRingbuf(t, events) {
		rec := record{
			tgid: binary.LittleEndian.Uint32(r[24:]), phase: r[38], isReturn: int8(r[39]),
			cookie: binary.LittleEndian.Uint64(r[48:]), ret: int64(binary.LittleEndian.Uint64(r[80:])),
			sessionC: binary.LittleEndian.Uint64(r[88:]),
		}
		if rec.tgid == uint32(os.Getpid()) {
			out = append(out, rec)
		}
	}
	return out
}

// TestFentryMissingFunctionInCilium pins what the registry entry
// cilium-tracing-missing-function says: cilium reports an fentry target the
// kernel's BTF lacks as ErrNotSupported, and KernelFuncID as not found.
func TestFentryMissingFunctionInCilium(t *testing.T) {
	bridgetest.RequireObject(t)
	spec, ps := specOf(t, bridgetest.TracingObjectFile(t), "pc_fentry")
	ps.AttachTo = "probeconf_no_such_function"
	coll, err := ebpf.NewCollection(spec)
	if err == nil {
		coll.Close()
		t.Fatal("cilium loaded an fentry program on a function that does not exist")
	}
	var verr *ebpf.VerifierError
	if !errors.Is(err, ebpf.ErrNotSupported) || errors.As(err, &verr) {
		t.Errorf("cilium: %v: want ErrNotSupported without a verifier error (cilium changed?)", err)
	}
	t.Logf("cilium: %v", err)
	if _, err := KernelFuncID(ps.AttachTo); !errors.Is(err, os.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("KernelFuncID: %v, want not found (ENOENT)", err)
	}
}

// TestFsessionInCilium pins what the registry entry cilium-fsession-load
// says, on a kernel with fsession: cilium alone does not load the program.
// v0.22.0 types the section but sends attach_btf_id 0 (the kernel refuses it,
// which cilium reports as a verifier error); earlier versions do not know the
// section and skip the program. link.AttachTracing refuses attach type 58.
func TestFsessionInCilium(t *testing.T) {
	requireTrampolines(t)
	if err := HaveFsession(); err != nil {
		t.Skipf("%v", err)
	}
	spec, ps := specOf(t, sessionsBuild(t), "pc_fsession")
	ps.AttachTo = getpgidFunc
	coll, err := ebpf.NewCollection(spec)
	switch {
	case err != nil:
		var verr *ebpf.VerifierError
		if !errors.As(err, &verr) || ps.Type != ebpf.Tracing || ps.AttachType != AttachTraceFSession {
			t.Errorf("cilium typed the section %s/%s and failed with %v: want a verifier error for a typed spec", ps.Type, ps.AttachType, err)
		}
		t.Logf("cilium (section typed %s/%s): %v", ps.Type, ps.AttachType, err)
	default:
		defer coll.Close()
		if prog, ok := coll.Programs["pc_fsession"]; ok {
			t.Fatalf("cilium loaded the fsession program itself (%v): the bridge may no longer be needed", prog)
		}
		if ps.Type != ebpf.UnspecifiedProgram {
			t.Errorf("cilium typed the section %s/%s and skipped it", ps.Type, ps.AttachType)
		}
		t.Logf("cilium does not know section %q: the program was skipped", ps.SectionName)
	}

	// A program the bridge loaded: cilium's link API refuses its attach type.
	delete(spec.Programs, "pc_fsession")
	maps, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	prog, err := LoadFsession(ps, maps.Maps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: AttachTraceFSession, Cookie: 1})
	if err == nil {
		l.Close()
		t.Fatal("link.AttachTracing linked an fsession program with attach type 58: the link bridge may no longer be needed")
	}
	t.Logf("link.AttachTracing(AttachType 58): %v", err)
}

// TestLoadFsessionMissingTarget: the target is resolved before any syscall.
// No root needed: the object and the kernel's BTF are read.
func TestLoadFsessionMissingTarget(t *testing.T) {
	_, ps := specOf(t, bridgetest.SessionsObjectFile(t, bridgetest.SessionsCtxObjectName), "pc_fsession")
	if _, err := btf.LoadKernelSpec(); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	ps.AttachTo = "probeconf_no_such_function"
	_, err := LoadFsession(ps, nil, nil)
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotSupported) {
		t.Errorf("%v: want not found", err)
	}
	ps.AttachTo = ""
	if _, err := LoadFsession(ps, nil, nil); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("no target: %v, want an invalid-input error", err)
	}
	fentry := &ebpf.ProgramSpec{Name: "f", SectionName: "fentry", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: getpgidFunc}
	if _, err := LoadFsession(fentry, nil, nil); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("an fentry spec: %v, want an invalid-input error", err)
	}
}

// TestFsessionOnKernelWithout: on a kernel without fsession (before 7.0:
// the 6.18 test host), LoadFsession answers ErrNotSupported, not a verifier
// error, with the kernel's EINVAL.
func TestFsessionOnKernelWithout(t *testing.T) {
	bridgetest.RequireObject(t)
	if HaveFsession() == nil {
		t.Skip("this kernel has fsession (see TestFsession)")
	}
	spec, ps := specOf(t, sessionsBuild(t), "pc_fsession")
	delete(spec.Programs, "pc_fsession")
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	ps.AttachTo = getpgidFunc
	prog, err := LoadFsession(ps, coll.Maps, nil)
	if err == nil {
		prog.Close()
		t.Fatalf("fsession loaded, but HaveFsession says: %v", HaveFsession())
	}
	var verr *ebpf.VerifierError
	if !errors.Is(err, ErrNotSupported) || errors.As(err, &verr) {
		t.Errorf("%v: want ErrNotSupported, not a verifier error", err)
	}
	t.Logf("%v", err)
}

// TestTracingMultiOnKernelWithout: where the kernel lacks tracing multi links
// (6.18, 7.0), cilium's load of a prepared program fails with a verifier
// error, which TracingMultiError turns into ErrNotSupported; TracingMulti
// refuses a function the kernel's BTF lacks before any syscall.
func TestTracingMultiOnKernelWithout(t *testing.T) {
	bridgetest.RequireObject(t)
	if HaveTracingMulti() == nil {
		t.Skip("this kernel has tracing multi links (see TestTracingMulti)")
	}
	spec, ps := specOf(t, bridgetest.TracingObjectFile(t), "pc_fentry_multi")
	if !PrepareTracingMultiSpec(ps) {
		t.Fatalf("PrepareTracingMultiSpec did not change %s (%s/%s)", ps.SectionName, ps.Type, ps.AttachType)
	}
	coll, err := ebpf.NewCollection(spec)
	if err == nil {
		coll.Close()
		t.Fatalf("a tracing multi program loaded, but HaveTracingMulti says: %v", HaveTracingMulti())
	}
	t.Logf("cilium: %v", err)
	err = TracingMultiError(err)
	var verr *ebpf.VerifierError
	if !errors.Is(err, ErrNotSupported) || errors.As(err, &verr) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("%v: want ErrNotSupported with EINVAL, not a verifier error", err)
	}

	// Any program will do: the symbols are checked first.
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	_, err = TracingMulti(prog, TracingMultiOptions{AttachType: AttachTraceFEntryMulti, Symbols: []string{getpgidFunc, "probeconf_no_such_function"}})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing symbol: %v, want not found", err)
	}
	_, err = TracingMulti(prog, TracingMultiOptions{AttachType: ebpf.AttachTraceFEntry, Symbols: []string{getpgidFunc}})
	if !errors.Is(err, os.ErrInvalid) {
		t.Errorf("attach type 24: %v, want an invalid-input error", err)
	}
	_, err = TracingMulti(prog, TracingMultiOptions{AttachType: AttachTraceFExitMulti, Symbols: []string{getpgidFunc}, Cookies: []uint64{1, 2}})
	if !errors.Is(err, os.ErrInvalid) {
		t.Errorf("2 cookies for 1 symbol: %v, want an invalid-input error", err)
	}
}

// TestFsession loads pc_fsession on getpgid's function and links it twice
// over: with a cookie (AttachFsession) and without (cilium's
// link.AttachTracing, AttachNone: BPF_RAW_TRACEPOINT_OPEN). Each getpgid(-1)
// then runs each link's program at entry and at return.
func TestFsession(t *testing.T) {
	requireTrampolines(t)
	if err := HaveFsession(); err != nil {
		t.Skipf("%v", err)
	}
	for _, withCookie := range []bool{true, false} {
		spec, ps := specOf(t, sessionsBuild(t), "pc_fsession")
		delete(spec.Programs, "pc_fsession")
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			t.Fatal(err)
		}
		ps.AttachTo = getpgidFunc
		prog, err := LoadFsession(ps, coll.Maps, nil)
		if err != nil {
			coll.Close()
			t.Fatal(err)
		}
		var l link.Link
		cookie := uint64(0x51)
		if withCookie {
			l, err = AttachFsession(prog, cookie)
		} else {
			cookie = 0
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		}
		if err != nil {
			prog.Close()
			coll.Close()
			t.Fatalf("cookie %t: %v", withCookie, err)
		}
		_, gerr := unix.Getpgid(-1)
		l.Close()
		recs := ownRecords(t, coll.Maps["events"])
		prog.Close()
		coll.Close()
		if gerr != syscall.ESRCH {
			t.Fatalf("getpgid(-1): %v", gerr)
		}
		if len(recs) != 2 || recs[0].phase != 0 || recs[0].isReturn != 0 || recs[1].phase != 1 || recs[1].isReturn != 1 ||
			recs[0].cookie != cookie || recs[1].cookie != cookie || recs[1].ret != -int64(syscall.ESRCH) {
			t.Errorf("cookie %t: records %+v: want entry then return (is_return 0, 1), cookie %#x, return -ESRCH", withCookie, recs, cookie)
		}
	}
}

// TestTracingMulti links pc_fentry_multi to getpgid's and dup's functions
// with one link, a cookie each.
func TestTracingMulti(t *testing.T) {
	requireTrampolines(t)
	if err := HaveTracingMulti(); err != nil {
		t.Skipf("%v", err)
	}
	spec, ps := specOf(t, bridgetest.TracingObjectFile(t), "pc_fentry_multi")
	PrepareTracingMultiSpec(ps)
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(TracingMultiError(err))
	}
	defer coll.Close()
	prog := coll.Programs["pc_fentry_multi"]
	l, err := TracingMulti(prog, TracingMultiOptions{AttachType: AttachTraceFEntryMulti,
		Symbols: []string{getpgidFunc, dupFunc}, Cookies: []uint64{0x12, 0x13}})
	if err != nil {
		t.Fatal(err)
	}
	unix.Getpgid(-1)
	unix.Dup(-1)
	l.Close()
	recs := ownRecords(t, coll.Maps["events"])
	if len(recs) != 2 || recs[0].cookie != 0x12 || recs[1].cookie != 0x13 {
		t.Errorf("records %+v: want getpgid's (cookie 0x12), then dup's (0x13)", recs)
	}
	// The kernel refuses a function listed twice.
	_, err = TracingMulti(prog, TracingMultiOptions{AttachType: AttachTraceFEntryMulti, Symbols: []string{getpgidFunc, getpgidFunc}})
	if !errors.Is(err, unix.EINVAL) || errors.Is(err, ErrNotSupported) {
		t.Errorf("a function twice: %v, want the kernel's EINVAL", err)
	}
}
