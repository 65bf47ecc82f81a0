package bridge_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"probeconf/bridge"
)

// artifacts is the directory `probeconf artifacts DIR` wrote: the BPF objects
// (sessions.bpf.o, sessions.ctx.bpf.o, usdt_recorder.bpf.o) and probe-target,
// the program they trace. The tests take it from PROBECONF_BPF_OBJECT.
var artifacts = filepath.Dir(os.Getenv("PROBECONF_BPF_OBJECT"))

// records empties a ring buffer; the examples print a field of each record
// (probeconf's struct pc_event: arg0 at byte 64, the return value at 80,
// the session cookie the return read at 88, the cookie at 48).
func records(events *ebpf.Map) [][]byte {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil
	}
	defer rd.Close()
	rd.SetDeadline(time.Now())
	var out [][]byte
	for rec, err := rd.Read(); err == nil; rec, err = rd.Read() {
		out = append(out, rec.RawSample)
	}
	return out
}

// A uprobe.session program on probe-target's pc_leaf: one program, run at
// entry and at return. The object is built twice, for the two prototypes of
// the session kfuncs; the kernel's BTF picks the build.
func ExampleUprobeSession() {
	kernel, why := bridge.SessionKfuncPrototype()
	object := "sessions.bpf.o"
	if bridge.ObjectVariant(kernel) == bridge.KfuncCtx {
		object = "sessions.ctx.bpf.o"
	}
	fmt.Printf("kernel %s (%s): loading %s\n", kernel, why, object)

	spec, err := bridge.LoadCollectionSpec(filepath.Join(artifacts, object), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	delete(spec.Programs, "pc_kprobe_session") // no kprobes wanted here
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer coll.Close()

	target := filepath.Join(artifacts, "probe-target")
	ex, err := link.OpenExecutable(target)
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := bridge.UprobeSession(ex, "pc_leaf", coll.Programs["pc_uprobe_session"], nil)
	if errors.Is(err, bridge.ErrNotSupported) {
		fmt.Println("this kernel has no uprobe sessions:", err)
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	if err := exec.Command(target, "call leaf 4").Run(); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range records(coll.Maps["events"]) {
		if r[38] == 0 { // phase: entry
			fmt.Println("entry, arg0 =", binary.LittleEndian.Uint64(r[64:]))
		} else {
			fmt.Println("return, value =", binary.LittleEndian.Uint64(r[80:]))
		}
	}
	// Prints, after the kernel line:
	// entry, arg0 = 4
	// return, value = 40
}

// A USDT probe with cilium: the object is built on libbpf's usdt.bpf.h, and
// its program reads the arguments with bpf_usdt_arg() as under libbpf. The
// objects are assigned to a struct, as bpf2go's generated code does: the
// bridge finds usdt.bpf.h's maps through the program.
func ExampleAttachUSDT() {
	f, err := os.Open(filepath.Join(artifacts, "usdt_recorder.bpf.o"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	spec, err := bridge.LoadCollectionSpecFromReader(f, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var objs struct {
		Prog   *ebpf.Program `ebpf:"pc_usdt"`
		Events *ebpf.Map     `ebpf:"events"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		fmt.Println(err)
		return
	}
	defer objs.Prog.Close()
	defer objs.Events.Close()

	target := filepath.Join(artifacts, "probe-target")
	if ex, err := link.OpenExecutable(target); err != nil {
		fmt.Println(err)
	} else if l, err := bridge.AttachUSDT(ex, "probeconf", "args", objs.Prog, &bridge.USDTOptions{Cookie: 0x77}); err != nil {
		fmt.Println(err)
	} else {
		defer l.Close()
		for _, s := range l.(*bridge.USDTLink).Sites() {
			fmt.Printf("site at file offset %#x, args %q\n", s.FileOffset, s.Args)
		}
		if err := exec.Command(target, "call usdt_args 3 4").Run(); err != nil {
			fmt.Println(err)
		}
		for _, r := range records(objs.Events) {
			fmt.Printf("cookie %#x, arg0 %d, arg1 %d\n", binary.LittleEndian.Uint64(r[48:]),
				int64(binary.LittleEndian.Uint64(r[64:])), int64(binary.LittleEndian.Uint64(r[72:])))
		}
	}
	// Prints, after the site lines:
	// cookie 0x77, arg0 42, arg1 3
}

// Which build of a session object to load on this kernel.
func ExampleObjectVariant() {
	kernel, why := bridge.SessionKfuncPrototype()
	switch bridge.ObjectVariant(kernel) {
	case bridge.KfuncCtx:
		fmt.Println("load the build with bpf_session_cookie(void *ctx):", why)
	default:
		fmt.Println("load the build with bpf_session_cookie(void):", why)
	}
}
