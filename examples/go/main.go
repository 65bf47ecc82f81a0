// Command tracer is a minimal tool on cilium/ebpf and probeconf's bridge
// package: it attaches a uprobe.session program to a function and a USDT
// program to a USDT probe of one process, lets the process run, and prints
// every event the programs recorded, one JSON object per line.
//
//	tracer -objects DIR [-session pc_leaf] [-usdt probeconf:args] -- PROGRAM ARGS...
//
// The BPF programs are probeconf's recorders (`probeconf artifacts DIR` writes
// them, and probe-target, the program they trace): sessions.bpf.o or
// sessions.ctx.bpf.o (the kernel's BTF picks the build) for the session, and
// usdt_recorder.bpf.o, built on libbpf's usdt.bpf.h, for the USDT probe.
// PROGRAM is started first and must wait for a line on stdin before it does
// its work (probe-target --wait does): the probes are attached to its pid in
// between.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"probeconf/bridge"
)

// config is the recorders' struct pc_config (bpf/probeconf_abi.h), the
// contents of their .rodata.pc_cfg section.
type config struct {
	ProbeIndex   uint32
	FilterTgid   uint32
	ReturnFilter uint32
	CookieMode   uint32 // 3: the session entry writes CookieValue + arg0
	FilterArg    uint64
	CookieValue  uint64
}

// record is the recorders' struct pc_event (ABI version 2, 144 bytes).
type record struct {
	Seq, KtimeNs                      uint64
	AbiVersion, ProbeIndex, Tgid, Tid uint32
	CPU                               uint32
	Kind                              uint16
	Phase                             uint8
	IsReturn                          int8
	Flags, _                          uint32
	AttachCookie, FuncIP, Arg0, Arg1  uint64
	Ret, CookieIn, CookieOut          uint64
	Arg2, Arg3, Arg4, Arg5            uint64
	ArgCnt                            int32
	_                                 uint32
}

const (
	flagCookieWritten = 1 << 1 // pc_event.flags: the entry wrote CookieOut
	flagSkipReturn    = 1 << 2 // the entry returned 1
)

// Event is one line of output.
type Event struct {
	Probe         string  `json:"probe"`          // "session" or "usdt"
	Phase         string  `json:"phase"`          // "entry", "return" or "usdt"
	Func          string  `json:"func"`           // the symbol, or provider:name
	Args          []int64 `json:"args,omitempty"` // entry: arg0, arg1; usdt: every argument
	Ret           *int64  `json:"ret,omitempty"`  // return: the return value
	Cookie        uint64  `json:"cookie"`         // session: bpf_get_attach_cookie(); usdt: bpf_usdt_cookie()
	IsReturn      *bool   `json:"is_return,omitempty"`
	SessionCookie *uint64 `json:"session_cookie,omitempty"` // as the run read it
	Wrote         *uint64 `json:"wrote,omitempty"`          // what the entry wrote into it
	ProgRet       *int    `json:"prog_ret,omitempty"`       // what the entry returned
}

func main() {
	objects := flag.String("objects", ".", "directory with sessions.bpf.o, sessions.ctx.bpf.o and usdt_recorder.bpf.o")
	symbol := flag.String("session", "pc_leaf", "function for the uprobe.session program")
	cookieBase := flag.Uint64("session-cookie-base", 0x1000, "the session entry writes this + arg0 into its session cookie")
	usdt := flag.String("usdt", "probeconf:args", "USDT probe, provider:name")
	usdtCookie := flag.Uint64("usdt-cookie", 0x77, "the USDT probe's cookie (bpf_usdt_cookie)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tracer -objects DIR [flags] -- PROGRAM ARGS... (see -h)")
		os.Exit(2)
	}
	if err := run(*objects, *symbol, *cookieBase, *usdt, *usdtCookie, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "tracer:", err)
		os.Exit(1)
	}
}

func run(objects, symbol string, cookieBase uint64, usdt string, usdtCookie uint64, command []string) error {
	provider, name, ok := strings.Cut(usdt, ":")
	if !ok {
		return fmt.Errorf("-usdt %q: want provider:name", usdt)
	}

	// The session kfuncs changed prototype in Linux 7.0: load the build made
	// for this kernel.
	kernel, why := bridge.SessionKfuncPrototype()
	sessionObject := "sessions.bpf.o"
	if bridge.ObjectVariant(kernel) == bridge.KfuncCtx {
		sessionObject = "sessions.ctx.bpf.o"
	}
	fmt.Fprintf(os.Stderr, "tracer: %s (%s)\n", sessionObject, why)

	sessions, err := load(filepath.Join(objects, sessionObject), "pc_uprobe_session",
		config{ProbeIndex: 0, CookieMode: 3, CookieValue: cookieBase}, nil)
	if err != nil {
		return err
	}
	defer sessions.Close()
	// Both programs write into the session object's ring buffer.
	usdtColl, err := load(filepath.Join(objects, "usdt_recorder.bpf.o"), "pc_usdt",
		config{ProbeIndex: 1}, map[string]*ebpf.Map{"events": sessions.Maps["events"]})
	if err != nil {
		return err
	}
	defer usdtColl.Close()

	// Start the program; it waits on stdin until the probes are attached.
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("%s: %q, %v (want a ready line)", command[0], line, err)
	}
	pid := uint32(cmd.Process.Pid)

	ex, err := link.OpenExecutable(command[0])
	if err != nil {
		return err
	}
	session, err := bridge.UprobeSession(ex, symbol, sessions.Programs["pc_uprobe_session"], &link.UprobeOptions{PID: int(pid)})
	if errors.Is(err, bridge.ErrNotSupported) {
		return fmt.Errorf("uprobe sessions need Linux 6.13: %w", err)
	} else if err != nil {
		return err
	}
	defer session.Close()
	probe, err := bridge.AttachUSDT(ex, provider, name, usdtColl.Programs["pc_usdt"],
		&bridge.USDTOptions{PID: pid, Cookie: usdtCookie})
	if err != nil {
		return err
	}
	defer probe.Close()

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return err
	}
	stdin.Close()
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w", command[0], err)
	}

	enc := json.NewEncoder(os.Stdout)
	return drain(sessions.Maps["events"], func(r record) error {
		return enc.Encode(decode(r, symbol, usdt))
	})
}

// load loads program alone from object through the bridge (which makes
// libbpf's objects loadable), with cfg as its .rodata.pc_cfg.
func load(object, program string, cfg config, replace map[string]*ebpf.Map) (*ebpf.Collection, error) {
	spec, err := bridge.LoadCollectionSpec(object, nil)
	if err != nil {
		return nil, err
	}
	for p := range spec.Programs {
		if p != program {
			delete(spec.Programs, p)
		}
	}
	v, ok := spec.Variables["pc_cfg"]
	if !ok {
		return nil, fmt.Errorf("%s has no pc_cfg", object)
	}
	if err := v.Set(cfg); err != nil {
		return nil, fmt.Errorf("%s: pc_cfg: %w", object, err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object, err)
	}
	return coll, nil
}

// drain hands every record in the ring buffer to f, without waiting for more.
func drain(events *ebpf.Map, f func(record) error) error {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return err
	}
	defer rd.Close()
	rd.SetDeadline(time.Now())
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		var r record
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.LittleEndian, &r); err != nil {
			return fmt.Errorf("record of %d bytes: %w", len(rec.RawSample), err)
		}
		if err := f(r); err != nil {
			return err
		}
	}
}

func decode(r record, symbol, usdt string) Event {
	if r.ProbeIndex == 1 {
		args := []int64{int64(r.Arg0), int64(r.Arg1), int64(r.Arg2), int64(r.Arg3), int64(r.Arg4), int64(r.Arg5)}
		if r.ArgCnt >= 0 && int(r.ArgCnt) < len(args) {
			args = args[:r.ArgCnt]
		}
		return Event{Probe: "usdt", Phase: "usdt", Func: usdt, Args: args, Cookie: r.AttachCookie}
	}
	isReturn := r.IsReturn == 1
	cookieIn := r.CookieIn
	e := Event{Probe: "session", Func: symbol, Cookie: r.AttachCookie, IsReturn: &isReturn, SessionCookie: &cookieIn}
	if r.Phase == 0 {
		e.Phase = "entry"
		e.Args = []int64{int64(r.Arg0), int64(r.Arg1)}
		if r.Flags&flagCookieWritten != 0 {
			wrote := r.CookieOut
			e.Wrote = &wrote
		}
		progRet := 0
		if r.Flags&flagSkipReturn != 0 {
			progRet = 1
		}
		e.ProgRet = &progRet
	} else {
		e.Phase = "return"
		ret := int64(r.Ret)
		e.Ret = &ret
	}
	return e
}
