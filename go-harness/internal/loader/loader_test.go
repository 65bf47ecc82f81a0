package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/internal/protocol"
)

// rawSpec marshals types into raw BTF and parses it back (the Builder's zero
// value: NewBuilder's signature changed in v0.21.0).
func rawSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	var b btf.Builder
	for _, typ := range types {
		if _, err := b.Add(typ); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestEventSize(t *testing.T) {
	u64 := &btf.Int{Name: "__u64", Size: 8}
	event := func(slots int) *btf.Struct {
		s := &btf.Struct{Name: EventType, Size: uint32(8 * slots)}
		for i := range slots {
			s.Members = append(s.Members, btf.Member{Name: "f" + string(rune('a'+i)), Type: u64, Offset: btf.Bits(64 * i)})
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		types []btf.Type
		nilBT bool
		want  int
		err   string
	}{
		{"ABI v1 size", []btf.Type{event(13)}, false, 104, ""},
		// v2 (more argument slots) and beyond: the harness follows the object.
		{"ABI v2 size", []btf.Type{event(18)}, false, 144, ""},
		{"a larger event", []btf.Type{event(21)}, false, 168, ""},
		{"no pc_event", []btf.Type{&btf.Struct{Name: "pc_config", Size: 32}}, false, 0, "has no struct pc_event"},
		{"a forward declaration only", []btf.Type{&btf.Fwd{Name: EventType, Kind: btf.FwdStruct}}, false, 0, "has no struct pc_event"},
		{"no BTF at all", nil, true, 0, "object has no BTF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec *btf.Spec
			if !tc.nilBT {
				spec = rawSpec(t, tc.types...)
			}
			got, err := EventSize(spec)
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("EventSize = %d, %v; want %d, %q", got, err, tc.want, tc.err)
			}
			if err != nil {
				if l := protocol.ErrorLineFor(protocol.Fail(protocol.PhaseLoad, nil, err), protocol.PhaseLoad); l.Class != "invalid" {
					t.Errorf("error line %+v: want class invalid", l)
				}
			}
		})
	}
}

// abiEventSizes is sizeof(struct pc_event) per PC_ABI_VERSION
// (bpf/probeconf_abi.h). A new ABI version adds its row here.
var abiEventSizes = map[uint32]int{1: 104, 2: 144}

// TestEventSizeOfObject reads the size from the built recorders (no root) and
// checks it against the ABI version the object carries (pc_event_layout in
// .rodata.pc_abi, whose abi_version member is located through the same BTF).
func TestEventSizeOfObject(t *testing.T) {
	object := bridgetest.RequireObjectFile(t)
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EventSize(spec.Types)
	if err != nil {
		t.Fatal(err)
	}
	var ev *btf.Struct
	if err := spec.Types.TypeByName(EventType, &ev); err != nil {
		t.Fatal(err)
	}
	off := -1
	for _, m := range ev.Members {
		if m.Name == "abi_version" {
			off = int(m.Offset.Bytes())
		}
	}
	abi, ok := spec.Maps[".rodata.pc_abi"]
	if off < 0 || !ok || len(abi.Contents) != 1 {
		t.Fatalf("%s: no abi_version member (offset %d) or no .rodata.pc_abi section", object, off)
	}
	layout, _ := abi.Contents[0].Value.([]byte)
	if len(layout) < off+4 {
		t.Fatalf("%s: .rodata.pc_abi is %d bytes", object, len(layout))
	}
	version := binary.NativeEndian.Uint32(layout[off:])
	want, known := abiEventSizes[version]
	if !known {
		t.Fatalf("%s: ABI version %d (struct pc_event %d bytes) is not in abiEventSizes: add it", object, version, got)
	}
	if got != want {
		t.Errorf("%s: struct pc_event is %d bytes, want %d for ABI version %d", object, got, want, version)
	}
	t.Logf("%s: ABI version %d, struct pc_event %d bytes", object, version, got)
}

// TestLoadWithoutEventType: an object whose BTF lacks struct pc_event fails
// the load, before any program reaches the kernel, naming no probe.
func TestLoadWithoutEventType(t *testing.T) {
	object := bridgetest.RequireObjectFile(t)
	patched := withoutEventType(t, object)
	req := &protocol.Request{Protocol: 1, Object: patched, Probes: []protocol.Probe{{
		Name: "u1", Program: "pc_uprobe", Kind: protocol.KindUprobe, Binary: "/bin/true",
		Targets: []protocol.Target{{Symbol: "main"}},
	}}}
	set, err := Load(patched, req, io.Discard)
	if err == nil {
		set.Close()
		t.Fatal("loaded an object without struct pc_event")
	}
	l := protocol.ErrorLineFor(err, protocol.PhaseProtocol)
	if l.Phase != protocol.PhaseLoad || l.Class != "invalid" || l.Probe != "" ||
		!strings.Contains(l.Detail, "has no struct pc_event") || !strings.Contains(l.Detail, patched) {
		t.Errorf("error line %+v: want load/invalid, no probe, naming the object and struct pc_event", l)
	}
}

// withoutEventType copies object with the BTF string "pc_event" renamed to
// "pc_evenX": the struct stays, under another name.
func withoutEventType(t *testing.T, object string) string {
	t.Helper()
	data, err := os.ReadFile(object)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sec := f.Section(".BTF")
	if sec == nil {
		t.Fatalf("%s has no .BTF section", object)
	}
	btfData := data[sec.Offset : sec.Offset+sec.Size]
	old, repl := []byte("\x00pc_event\x00"), []byte("\x00pc_evenX\x00")
	if n := bytes.Count(btfData, old); n != 1 {
		t.Fatalf("%s: %d copies of the string pc_event in .BTF, want 1", object, n)
	}
	copy(btfData[bytes.Index(btfData, old):], repl)
	out := filepath.Join(t.TempDir(), "no-pc-event.bpf.o")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
