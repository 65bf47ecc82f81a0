package bridge_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
	for name := range spec.Programs { // the object has other session programs
		if name != "pc_uprobe_session" {
			delete(spec.Programs, name)
		}
	}
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

// An fsession program on the getpgid syscall's function: cilium creates the
// maps, the bridge loads the program (bound to its function at load) and
// links it with a cookie. The program runs at the function's entry and again
// at its return.
func ExampleLoadFsession() {
	kernel, _ := bridge.SessionKfuncPrototype()
	object := "sessions.bpf.o"
	if bridge.ObjectVariant(kernel) == bridge.KfuncCtx {
		object = "sessions.ctx.bpf.o"
	}
	spec, err := bridge.LoadCollectionSpec(filepath.Join(artifacts, object), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fsession := spec.Programs["pc_fsession"]
	fsession.AttachTo = "__x64_sys_getpgid"
	for name := range spec.Programs {
		delete(spec.Programs, name) // cilium loads the maps only
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer coll.Close()

	prog, err := bridge.LoadFsession(fsession, coll.Maps, nil)
	if errors.Is(err, bridge.ErrNotSupported) {
		fmt.Println("this kernel has no fsession:", err)
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	defer prog.Close()
	l, err := bridge.AttachFsession(prog, 0x51)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	syscall.Getpgid(-1) // fails with ESRCH
	for _, r := range ownRecords(coll.Maps["events"]) {
		if r[38] == 0 { // phase: entry
			fmt.Printf("entry, cookie %#x\n", binary.LittleEndian.Uint64(r[48:]))
		} else {
			fmt.Printf("return, cookie %#x, value %d\n", binary.LittleEndian.Uint64(r[48:]), int64(binary.LittleEndian.Uint64(r[80:])))
		}
	}
	// Prints, on Linux 7.0 and later:
	// entry, cookie 0x51
	// return, cookie 0x51, value -3
}

// One fentry.multi program on two syscall functions, with one link and a
// cookie per function. cilium loads the program once its spec is prepared.
func ExampleTracingMulti() {
	spec, err := bridge.LoadCollectionSpec(filepath.Join(artifacts, "tracing.bpf.o"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for name := range spec.Programs {
		if name != "pc_fentry_multi" {
			delete(spec.Programs, name)
		}
	}
	bridge.PrepareTracingMultiSpec(spec.Programs["pc_fentry_multi"])
	coll, err := ebpf.NewCollection(spec)
	if err := bridge.TracingMultiError(err); errors.Is(err, bridge.ErrNotSupported) {
		fmt.Println("this kernel has no tracing multi links:", err)
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	defer coll.Close()

	l, err := bridge.TracingMulti(coll.Programs["pc_fentry_multi"], bridge.TracingMultiOptions{
		AttachType: bridge.AttachTraceFEntryMulti,
		Symbols:    []string{"__x64_sys_getpgid", "__x64_sys_close"},
		Cookies:    []uint64{0x12, 0x11},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	syscall.Getpgid(-1)
	syscall.Close(-1)
	for _, r := range ownRecords(coll.Maps["events"]) {
		fmt.Printf("entry, cookie %#x\n", binary.LittleEndian.Uint64(r[48:]))
	}
	// Prints, on a kernel with tracing multi links (Linux 7.3):
	// entry, cookie 0x12
	// entry, cookie 0x11
}

// ownRecords is records, keeping this process's (pc_event.tgid at byte 24).
func ownRecords(events *ebpf.Map) [][]byte {
	var out [][]byte
	for _, r := range records(events) {
		if binary.LittleEndian.Uint32(r[24:]) == uint32(os.Getpid()) {
			out = append(out, r)
		}
	}
	return out
}
