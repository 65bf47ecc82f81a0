package bridge

// Tests that load the recorder objects and attach: root and PROBECONF_BPF_OBJECT
// (recorders.bpf.o; the session programs come from sessions.bpf.o beside it).

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"probeconf/bridge/bridgetest"
)

const targetSrc = `
#include <stdio.h>
__attribute__((noinline, noipa)) long pc_leaf(long x) { return x * 2 + 1; }
__attribute__((noinline, noipa)) long pc_other(long x) { return x - 1; }
int main(void) { printf("%ld\n", pc_leaf(1) + pc_other(2)); return 0; }
`

// loadOne loads program name alone from the object, after edit (may be nil).
func loadOne(t *testing.T, object, name string, edit func(*ebpf.CollectionSpec)) *ebpf.Collection {
	t.Helper()
	spec, err := LoadCollectionSpec(object, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Programs[name]; !ok {
		names := make([]string, 0, len(spec.Programs))
		for n := range spec.Programs {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("program %s not in %s (programs: %v)", name, object, names)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	if edit != nil {
		edit(spec)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { coll.Close() })
	return coll
}

func pattern32() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

func TestSetDataSectionReachesTheKernel(t *testing.T) {
	object := bridgetest.RequireObject(t)
	want := pattern32()
	coll := loadOne(t, object, "pc_uprobe", func(spec *ebpf.CollectionSpec) {
		if err := SetDataSection(spec, ".rodata.pc_cfg", want); err != nil {
			t.Fatal(err)
		}
	})
	if err := VerifyDataSection(coll, ".rodata.pc_cfg", want); err != nil {
		t.Fatal(err)
	}

	// Wrong size and unknown section are refused before load.
	spec, _ := ebpf.LoadCollectionSpec(object)
	if err := SetDataSection(spec, ".rodata.pc_cfg", want[:8]); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("8 bytes into a 32-byte section: %v", err)
	}
	if err := SetDataSection(spec, ".rodata.nope", want); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unknown section: %v", err)
	}
}

// TestContentsOnlyWrite records the library behaviour behind the
// cilium-datasec-variables entry: on v0.22.0 a write to MapSpec.Contents alone
// is replaced by the VariableSpecs' values at load.
func TestContentsOnlyWrite(t *testing.T) {
	object := bridgetest.RequireObject(t)
	want := pattern32()
	coll := loadOne(t, object, "pc_uprobe", func(spec *ebpf.CollectionSpec) {
		spec.Maps[".rodata.pc_cfg"].Contents[0].Value = bytes.Clone(want)
	})
	err := VerifyDataSection(coll, ".rodata.pc_cfg", want)
	t.Logf("Contents-only write survives load: %v (%v)", err == nil, err)
}

// uprobeMultiInfo reads a uprobe_multi link's info from the kernel with
// BPF_OBJ_GET_INFO_BY_FD (cilium only exposes it from v0.21 on, and these
// tests also run against older versions).
type uprobeMultiInfo struct {
	linkType uint32
	file     string
	offsets  []uint64
	cookies  []uint64
}

func offsetsOf(t *testing.T, l link.Link, count int) uprobeMultiInfo {
	t.Helper()
	fder, ok := l.(interface{ FD() int })
	if !ok {
		t.Fatalf("link %T has no FD()", l)
	}
	path := make([]byte, 4096)
	offsets := make([]uint64, count)
	refCtr := make([]uint64, count)
	cookies := make([]uint64, count)
	// struct bpf_link_info: type, id, prog_id, then the union at 16.
	var info struct {
		linkType, id, progID, _        uint32
		path, offsets, refCtr, cookies bpfPointer
		pathSize, count, flags, pid    uint32
		_                              [64]byte // rest of the union
	}
	info.path, info.pathSize = pointerTo(path), uint32(len(path))
	info.offsets, info.refCtr, info.cookies = pointerTo(offsets), pointerTo(refCtr), pointerTo(cookies)
	info.count = uint32(count)
	attr := struct {
		fd, infoLen uint32
		info        bpfPointer
	}{uint32(fder.FD()), uint32(unsafe.Sizeof(info)), bpfPointer{unsafe.Pointer(&info)}}
	const bpfObjGetInfoByFD = 15
	if _, _, errno := unix.Syscall(unix.SYS_BPF, bpfObjGetInfoByFD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		t.Fatalf("BPF_OBJ_GET_INFO_BY_FD: %v", errno)
	}
	runtime.KeepAlive(path)
	runtime.KeepAlive(offsets)
	runtime.KeepAlive(refCtr)
	runtime.KeepAlive(cookies)
	const bpfLinkTypeUprobeMulti = 12
	if info.linkType != bpfLinkTypeUprobeMulti {
		t.Fatalf("link type %d, want uprobe_multi (12)", info.linkType)
	}
	if int(info.count) != count {
		t.Fatalf("link has %d offsets, want %d", info.count, count)
	}
	return uprobeMultiInfo{linkType: info.linkType, file: unix.ByteSliceToString(path), offsets: offsets, cookies: cookies}
}

// TestUprobeSessionBridge attaches through the bridge and checks, from the
// kernel's link info, that it resolved the same file offsets as cilium's own
// UprobeMulti and kept the cookies.
func TestUprobeSessionBridge(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	object := objs.Recorders
	target := bridgetest.BuildC(t, bridgetest.GCC(t), t.TempDir(), "target", targetSrc)

	session := loadOne(t, objs.Sessions, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]
	ex, err := link.OpenExecutable(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := UprobeMultiSession(ex, []string{"pc_leaf", "pc_other"}, session, &UprobeSessionOptions{Cookies: []uint64{7, 8}})
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	defer l.Close()
	got := offsetsOf(t, l, 2)
	if got.file != target {
		t.Errorf("link file %q, want %q", got.file, target)
	}
	if fmt.Sprint(got.cookies) != "[7 8]" {
		t.Errorf("cookies %v, want [7 8]", got.cookies)
	}

	multi := loadOne(t, object, "pc_uprobe_multi", nil).Programs["pc_uprobe_multi"]
	ml, err := ex.UprobeMulti([]string{"pc_leaf", "pc_other"}, multi, &link.UprobeMultiOptions{Cookies: []uint64{7, 8}})
	if err != nil {
		t.Fatalf("cilium UprobeMulti: %v", err)
	}
	defer ml.Close()
	want := offsetsOf(t, ml, 2)
	t.Logf("bridge %+v, cilium %+v", got, want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bridge link %+v, cilium's %+v", got, want)
	}

	// Absolute file offsets (Addresses) land on the same place, and the
	// single-target form resolves like cilium's Uprobe (symbol + Offset).
	l2, err := UprobeMultiSession(ex, nil, session, &UprobeSessionOptions{Addresses: []uint64{got.offsets[0]}, Cookies: []uint64{1}})
	if err != nil {
		t.Fatalf("bridge with absolute offset: %v", err)
	}
	defer l2.Close()
	if o := offsetsOf(t, l2, 1); o.offsets[0] != got.offsets[0] || o.cookies[0] != 1 {
		t.Errorf("absolute offset attached at %#x (cookie %d), want %#x", o.offsets[0], o.cookies[0], got.offsets[0])
	}
	l3, err := UprobeSession(ex, "pc_other", session, &link.UprobeOptions{Cookie: 9})
	if err != nil {
		t.Fatalf("UprobeSession: %v", err)
	}
	defer l3.Close()
	if o := offsetsOf(t, l3, 1); o.offsets[0] != got.offsets[1] || o.cookies[0] != 9 {
		t.Errorf("UprobeSession at %#x (cookie %d), want %#x, 9", o.offsets[0], o.cookies[0], got.offsets[1])
	}
}

// TestCiliumUprobeMultiRejectsSessionProgram records the gap the bridge
// exists for. If this starts to pass, cilium can attach sessions itself and
// the cilium-uprobe-session entry needs revisiting.
func TestCiliumUprobeMultiRejectsSessionProgram(t *testing.T) {
	sessions := bridgetest.RequireSessionsObject(t)
	target := bridgetest.BuildC(t, bridgetest.GCC(t), t.TempDir(), "target", targetSrc)
	session := loadOne(t, sessions, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]
	ex, err := link.OpenExecutable(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ex.UprobeMulti([]string{"pc_leaf"}, session, nil)
	if err == nil {
		l.Close()
		t.Fatal("cilium's UprobeMulti attached a uprobe.session program: the compat bridge may no longer be needed")
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("UprobeMulti on a session program: %v, want EINVAL", err)
	}
}

func TestUprobeSessionBridgeErrors(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	object := objs.Recorders
	target := bridgetest.BuildC(t, bridgetest.GCC(t), t.TempDir(), "target", targetSrc)
	session := loadOne(t, objs.Sessions, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]
	attach := func(binary string, symbols []string, opts *UprobeSessionOptions) (link.Link, error) {
		ex, err := link.OpenExecutable(binary)
		if err != nil {
			return nil, err
		}
		return UprobeMultiSession(ex, symbols, session, opts)
	}

	if _, err := attach(target, []string{"nope"}, nil); !errors.Is(err, link.ErrNoSymbol) {
		t.Errorf("missing symbol: %v", err)
	}
	if _, err := attach(filepath.Join(t.TempDir(), "missing"), []string{"pc_leaf"}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing binary: %v", err)
	}
	if _, err := UprobeMultiSession(nil, []string{"pc_leaf"}, session, nil); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("nil executable: %v", err)
	}
	if _, err := attach(target, []string{"pc_leaf"}, &UprobeSessionOptions{Cookies: []uint64{1, 2}}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("two cookies for one target: %v", err)
	}
	// Like cilium's Executable (v0.21.0 on), the bridge parses the ELF file
	// only to resolve a symbol: a file that is not ELF fails then, and an
	// absolute offset goes to the kernel unparsed (which takes any regular
	// file). The file is executable so v0.21.0's mode check passes.
	text := filepath.Join(t.TempDir(), "not-elf.txt")
	if err := os.WriteFile(text, []byte("not an ELF file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var ferr *elf.FormatError
	if _, err := attach(text, []string{"pc_leaf"}, nil); !errors.As(err, &ferr) {
		t.Errorf("text file with a symbol: %v, want an *elf.FormatError", err)
	}
	if ex, exErr := link.OpenExecutable(text); exErr != nil {
		// v0.17.3 and v0.20.0 parse the ELF file in OpenExecutable.
		t.Logf("this cilium refuses a non-ELF file up front: %v", exErr)
	} else {
		l, err := UprobeMultiSession(ex, nil, session, &UprobeSessionOptions{Addresses: []uint64{4}})
		if l != nil {
			l.Close()
		}
		multi := loadOne(t, object, "pc_uprobe_multi", nil).Programs["pc_uprobe_multi"]
		ml, mlErr := ex.UprobeMulti([]string{""}, multi, &link.UprobeMultiOptions{Addresses: []uint64{4}})
		if ml != nil {
			ml.Close()
		}
		if (err == nil) != (mlErr == nil) {
			t.Errorf("text file at absolute offset 4: bridge %v, cilium UprobeMulti %v: want the same outcome", err, mlErr)
		}
	}

	pid := uint32(4194303) // pid_max's default ceiling; almost surely unused
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Skipf("pid %d exists", pid)
	}
	if _, err := attach(target, []string{"pc_leaf"}, &UprobeSessionOptions{PID: pid}); !errors.Is(err, os.ErrNotExist) || !errors.Is(err, unix.ESRCH) {
		t.Errorf("missing pid: %v, want ESRCH wrapped as os.ErrNotExist", err)
	}
}

// TestHaveUprobeSessionLink: the feature probe behind ErrNotSupported agrees
// with the kernel version (6.13 added uprobe sessions).
func TestHaveUprobeSessionLink(t *testing.T) {
	bridgetest.RequireObject(t)
	major, minor := bridgetest.KernelVersion(t)
	want := major > 6 || major == 6 && minor >= 13
	if got := haveUprobeSessionLink(); got != want {
		t.Errorf("kernel %d.%d: haveUprobeSessionLink() = %v, want %v", major, minor, got, want)
	}
}
