package drain

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/internal/classify"
)

// writer is a socket filter that puts one zeroed record of size bytes into
// the ring buffer each time it runs (BPF_PROG_TEST_RUN).
func writer(t *testing.T, rb *ebpf.Map, size int) *ebpf.Program {
	t.Helper()
	if size%8 != 0 || size > 256 {
		t.Fatalf("record size %d: want a multiple of 8 up to 256", size)
	}
	var insns asm.Instructions
	for off := -size; off < 0; off += 4 { // cilium's StoreImm has no DWord form
		insns = append(insns, asm.StoreImm(asm.R10, int16(off), 0, asm.Word))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, rb.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(-size)),
		asm.Mov.Imm(asm.R3, int32(size)),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("load writer of %d bytes: %v", size, err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func emit(t *testing.T, prog *ebpf.Program, n int) {
	t.Helper()
	for range n {
		if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
			t.Fatalf("run writer: %v", err)
		}
	}
}

// TestReadChecksTheObjectsEventSize: records are checked against the size
// the caller read from the object's BTF, whatever it is (104 in ABI v1, more
// in a later ABI), not against a built-in constant.
func TestReadChecksTheObjectsEventSize(t *testing.T) {
	bridgetest.RequireObject(t) // root; the object itself is not needed
	newMaps := func(t *testing.T) (rb, dropped *ebpf.Map) {
		var err error
		if rb, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rb.Close() })
		if dropped, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dropped.Close() })
		return rb, dropped
	}

	for _, size := range []int{104, 136} {
		rb, dropped := newMaps(t)
		emit(t, writer(t, rb, size), 3)
		res, err := Read(rb, dropped, size)
		if err != nil {
			t.Fatalf("%d-byte records, event size %d: %v", size, size, err)
		}
		if len(res.Events) != 3 || res.Dropped != 0 {
			t.Fatalf("%d-byte records: %d events, %d dropped; want 3, 0", size, len(res.Events), res.Dropped)
		}
		for i, ev := range res.Events {
			if len(ev) != size {
				t.Errorf("event %d: %d bytes, want %d", i, len(ev), size)
			}
		}
	}

	// A record of another size than the object's struct pc_event.
	rb, dropped := newMaps(t)
	emit(t, writer(t, rb, 104), 1)
	emit(t, writer(t, rb, 112), 1)
	_, err := Read(rb, dropped, 104)
	res := classify.Classify(err, classify.Where{Phase: "drain"})
	if res.Class != classify.Invalid || !strings.Contains(res.Detail, "record 1 is 112 bytes, but the object's struct pc_event is 104") {
		t.Errorf("mixed sizes: %+v, want invalid naming record 1", res)
	}

	if _, err := Read(rb, dropped, 0); err == nil {
		t.Error("Read with event size 0 succeeded")
	}
}
