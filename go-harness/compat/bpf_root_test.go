package compat

// Tests that load the recorder object and attach: root and PROBECONF_BPF_OBJECT.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"probeconf/go-harness/internal/testutil"
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
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		t.Fatal(err)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	PrepareUprobeSessionSpec(spec.Programs[name])
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
	object := testutil.RequireObject(t)
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
	object := testutil.RequireObject(t)
	want := pattern32()
	coll := loadOne(t, object, "pc_uprobe", func(spec *ebpf.CollectionSpec) {
		spec.Maps[".rodata.pc_cfg"].Contents[0].Value = bytes.Clone(want)
	})
	err := VerifyDataSection(coll, ".rodata.pc_cfg", want)
	t.Logf("Contents-only write survives load: %v (%v)", err == nil, err)
}

func offsetsOf(t *testing.T, l link.Link) (string, []link.UprobeMultiOffset) {
	t.Helper()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != link.UprobeMultiType {
		t.Fatalf("link type %v, want uprobe_multi", info.Type)
	}
	um := info.UprobeMulti()
	offs, ok := um.Offsets()
	if !ok {
		t.Fatalf("no offsets in link info")
	}
	return um.File, offs
}

// TestUprobeSessionBridge attaches through the bridge and checks, from the
// kernel's link info, that it resolved the same file offsets as cilium's own
// UprobeMulti and kept the cookies.
func TestUprobeSessionBridge(t *testing.T) {
	object := testutil.RequireObject(t)
	target := testutil.BuildC(t, testutil.GCC(t), t.TempDir(), "target", targetSrc)

	session := loadOne(t, object, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]
	targets := []UprobeTarget{{Symbol: "pc_leaf", Cookie: 7}, {Symbol: "pc_other", Offset: 0, Cookie: 8}}
	l, err := AttachUprobeSession(session, target, targets, 0)
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	defer l.Close()
	file, got := offsetsOf(t, l)
	if file != target {
		t.Errorf("link file %q, want %q", file, target)
	}

	multi := loadOne(t, object, "pc_uprobe_multi", nil).Programs["pc_uprobe_multi"]
	ex, err := link.OpenExecutable(target)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := ex.UprobeMulti([]string{"pc_leaf", "pc_other"}, multi, &link.UprobeMultiOptions{Cookies: []uint64{7, 8}})
	if err != nil {
		t.Fatalf("cilium UprobeMulti: %v", err)
	}
	defer ml.Close()
	_, want := offsetsOf(t, ml)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bridge offsets/cookies %v, cilium's %v", got, want)
	}

	// Absolute file offsets (empty symbol) land on the same place.
	abs := []UprobeTarget{{Offset: got[0].Offset, Cookie: 1}}
	l2, err := AttachUprobeSession(session, target, abs, 0)
	if err != nil {
		t.Fatalf("bridge with absolute offset: %v", err)
	}
	defer l2.Close()
	if _, o := offsetsOf(t, l2); o[0].Offset != got[0].Offset {
		t.Errorf("absolute offset attached at %#x, want %#x", o[0].Offset, got[0].Offset)
	}
}

// TestCiliumUprobeMultiRejectsSessionProgram records the gap the bridge
// exists for. If this starts to pass, cilium can attach sessions itself and
// the cilium-uprobe-session entry needs revisiting.
func TestCiliumUprobeMultiRejectsSessionProgram(t *testing.T) {
	object := testutil.RequireObject(t)
	target := testutil.BuildC(t, testutil.GCC(t), t.TempDir(), "target", targetSrc)
	session := loadOne(t, object, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]
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
	object := testutil.RequireObject(t)
	target := testutil.BuildC(t, testutil.GCC(t), t.TempDir(), "target", targetSrc)
	session := loadOne(t, object, "pc_uprobe_session", nil).Programs["pc_uprobe_session"]

	if _, err := AttachUprobeSession(session, target, []UprobeTarget{{Symbol: "nope"}}, 0); !errors.Is(err, link.ErrNoSymbol) {
		t.Errorf("missing symbol: %v", err)
	}
	if _, err := AttachUprobeSession(session, filepath.Join(t.TempDir(), "missing"), []UprobeTarget{{Symbol: "pc_leaf"}}, 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing binary: %v", err)
	}
	pid := uint32(4194303) // pid_max's default ceiling; almost surely unused
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Skipf("pid %d exists", pid)
	}
	if _, err := AttachUprobeSession(session, target, []UprobeTarget{{Symbol: "pc_leaf"}}, pid); !errors.Is(err, os.ErrNotExist) || !errors.Is(err, unix.ESRCH) {
		t.Errorf("missing pid: %v, want ESRCH wrapped as os.ErrNotExist", err)
	}
}
