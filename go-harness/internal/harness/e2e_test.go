package harness

// End-to-end: a whole `run` session against a real target, as root, with the
// objects from beside PROBECONF_BPF_OBJECT, sent as the Rust runner sends them
// (see runnerRequest). The raw events are decoded here, in the
// test only (the runner owns the real decoder).

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/loader"
	"probeconf/go-harness/internal/protocol"
)

// The target waits for n on stdin, so the test can attach with its pid first,
// then calls pc_leaf(0..n-1).
const e2eTargetSrc = `
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline, noipa)) long pc_leaf(long x) { return x * 2 + 1; }
int main(void) {
	char buf[32];
	if (!fgets(buf, sizeof buf, stdin)) return 2;
	long n = atol(buf), s = 0;
	for (long i = 0; i < n; i++) s += pc_leaf(i);
	printf("%ld\n", s);
	return 0;
}
`

// pcConfig encodes struct pc_config (bpf/probeconf_abi.h), 32 bytes.
func pcConfig(probeIndex, filterTgid, returnFilter, cookieMode uint32, filterArg, cookieValue uint64) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b[0:], probeIndex)
	binary.LittleEndian.PutUint32(b[4:], filterTgid)
	binary.LittleEndian.PutUint32(b[8:], returnFilter)
	binary.LittleEndian.PutUint32(b[12:], cookieMode)
	binary.LittleEndian.PutUint64(b[16:], filterArg)
	binary.LittleEndian.PutUint64(b[24:], cookieValue)
	return b
}

const (
	cmConst     = 1 // PC_CM_CONST
	fSession    = 1 << 0
	fCookieSet  = 1 << 1
	fHasRet     = 1 << 3
	fHasArgs    = 1 << 4
	phaseEntry  = 0
	phaseReturn = 1
)

// event holds the struct pc_event fields the test checks.
type event struct {
	ProbeIndex, Tgid uint32
	Phase            uint8
	IsReturn         int8
	Flags            uint32
	AttachCookie     uint64
	Arg0, Ret        uint64
	CookieIn         uint64
}

func decodeEvent(t *testing.T, raw []byte) event {
	t.Helper()
	// The v1 fields keep their offsets in every later ABI (probeconf_abi.h:
	// append, never move); the harness itself checked each record against
	// the object's struct pc_event (see eventSizeOf).
	if len(raw) < 104 {
		t.Fatalf("event is %d bytes, want at least the 104 of ABI v1", len(raw))
	}
	le := binary.LittleEndian
	return event{
		ProbeIndex:   le.Uint32(raw[20:]),
		Tgid:         le.Uint32(raw[24:]),
		Phase:        raw[38],
		IsReturn:     int8(raw[39]),
		Flags:        le.Uint32(raw[40:]),
		AttachCookie: le.Uint64(raw[48:]),
		Arg0:         le.Uint64(raw[64:]),
		Ret:          le.Uint64(raw[80:]),
		CookieIn:     le.Uint64(raw[88:]),
	}
}

// eventSizeOf is sizeof(struct pc_event) in object's BTF.
func eventSizeOf(t *testing.T, object string) int {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		t.Fatal(err)
	}
	size, err := loader.EventSize(spec.Types)
	if err != nil {
		t.Fatal(err)
	}
	return size
}

type e2eTarget struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	path  string
}

func startTarget(t *testing.T) *e2eTarget {
	t.Helper()
	path := bridgetest.BuildC(t, bridgetest.GCC(t), t.TempDir(), "probe-target", e2eTargetSrc)
	cmd := exec.Command(path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &e2eTarget{cmd: cmd, stdin: stdin, path: path}
}

func (tg *e2eTarget) run(t *testing.T, n int) {
	t.Helper()
	fmt.Fprintf(tg.stdin, "%d\n", n)
	tg.stdin.Close()
	if err := tg.cmd.Wait(); err != nil {
		t.Fatalf("target: %v", err)
	}
}

func u32p(v uint32) *uint32 { return &v }

// runnerRequest builds a request as the Rust runner does: the sessions build
// (sessions.bpf.o) as the top-level object, and recorders.bpf.o as the own
// object of every non-session probe that names none (usdt probes name
// usdt_recorder.bpf.o themselves).
func runnerRequest(objs bridgetest.Objects, probes ...protocol.Probe) protocol.Request {
	own := make([]protocol.Probe, len(probes))
	for i, p := range probes {
		if p.Object == "" {
			p.Object = objs.ProbeObject(p.Kind.Session())
		}
		own[i] = p
	}
	return protocol.Request{Protocol: 1, Object: objs.Sessions, Probes: own}
}

func TestEndToEndSessionAndUprobe(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	target := startTarget(t)
	pid := uint32(target.cmd.Process.Pid)
	before := bridgetest.BPFFDs(t)

	req := runnerRequest(objs, []protocol.Probe{
		{
			Name: "s1", Program: "pc_uprobe_session", Kind: protocol.KindUprobeSession, Binary: target.path,
			Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 17}},
			PID:     &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
			Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(0, 0, 0, cmConst, 0, 0x1001)},
		},
		{
			Name: "u1", Program: "pc_uprobe", Kind: protocol.KindUprobe, Binary: target.path,
			Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 99}},
			PID:     &protocol.PID{Scope: protocol.ScopeAll},
			Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(1, pid, 0, 0, 0, 0)},
		},
		{
			Name: "r1", Program: "pc_uretprobe_multi", Kind: protocol.KindUretprobeMulti, Binary: target.path,
			Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 5}},
			PID:     &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
			Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(2, 0, 0, 0, 0, 0)},
		},
	}...)
	if req.Probes[0].Object != "" || req.Probes[1].Object != objs.Recorders || req.Probes[2].Object != objs.Recorders {
		t.Fatalf("request %+v: want the session probe in the top-level %s, the others in %s", req, objs.Sessions, objs.Recorders)
	}

	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.sendJSON(req)
	var attached protocol.Attached
	c.recv("attached", &attached)
	wantAttached := []protocol.AttachedProbe{
		{Name: "s1", Via: protocol.ViaCompat, Bridge: compat.BridgeUprobeSession},
		{Name: "u1", Via: protocol.ViaNative},
		{Name: "r1", Via: protocol.ViaNative},
	}
	if !reflect.DeepEqual(withoutProgIDs(t, attached.Probes), wantAttached) {
		t.Errorf("attached %+v, want %+v", attached.Probes, wantAttached)
	}
	if attached.ObjectChoice != (protocol.ObjectChoice{}) {
		t.Errorf("attached %+v: a plain object is loaded as given, nothing picked", attached)
	}

	const n = 3
	target.run(t, n)
	events := c.drain()
	if events.Dropped != 0 {
		t.Errorf("dropped %d", events.Dropped)
	}

	// The ring buffer's record size comes from the top-level object; every
	// probe's own object must agree.
	size := eventSizeOf(t, objs.Sessions)
	if rs := eventSizeOf(t, objs.Recorders); rs != size {
		t.Fatalf("struct pc_event is %d bytes in %s, %d in %s", size, objs.Sessions, rs, objs.Recorders)
	}
	byProbe := map[uint32][]event{}
	for _, raw := range events.Events {
		if len(raw) != size {
			t.Fatalf("event is %d bytes, the object's struct pc_event %d", len(raw), size)
		}
		e := decodeEvent(t, raw)
		if e.Tgid != pid {
			t.Errorf("event from tgid %d, want only the target's %d: %+v", e.Tgid, pid, e)
			continue
		}
		byProbe[e.ProbeIndex] = append(byProbe[e.ProbeIndex], e)
	}

	// s1: n entries (is_return 0) that write 0x1001, n returns (is_return 1) that read it.
	var entries, returns []event
	for _, e := range byProbe[0] {
		if e.AttachCookie != 17 || e.Flags&fSession == 0 {
			t.Errorf("s1 event %+v: want attach cookie 17 and PC_F_SESSION", e)
		}
		switch e.IsReturn {
		case 0:
			entries = append(entries, e)
		case 1:
			returns = append(returns, e)
		default:
			t.Errorf("s1 event with is_return %d", e.IsReturn)
		}
	}
	if len(entries) != n || len(returns) != n {
		t.Fatalf("s1: %d entries, %d returns, want %d each: %+v", len(entries), len(returns), n, byProbe[0])
	}
	for i := range n {
		en, re := entries[i], returns[i]
		if en.Phase != phaseEntry || en.Arg0 != uint64(i) || en.CookieIn != 0 || en.Flags&(fHasArgs|fCookieSet) != fHasArgs|fCookieSet {
			t.Errorf("s1 entry %d: %+v", i, en)
		}
		if re.Phase != phaseReturn || re.CookieIn != 0x1001 || re.Ret != uint64(2*i+1) || re.Flags&fHasRet == 0 {
			t.Errorf("s1 return %d: %+v (want cookie_in 0x1001, ret %d)", i, re, 2*i+1)
		}
	}

	// u1: n plain entries; r1: n plain returns.
	if len(byProbe[1]) != n || len(byProbe[2]) != n {
		t.Fatalf("u1 %d events, r1 %d events, want %d each", len(byProbe[1]), len(byProbe[2]), n)
	}
	for i := range n {
		u, r := byProbe[1][i], byProbe[2][i]
		if u.IsReturn != -1 || u.Phase != phaseEntry || u.AttachCookie != 99 || u.Arg0 != uint64(i) {
			t.Errorf("u1 event %d: %+v", i, u)
		}
		if r.IsReturn != -1 || r.Phase != phaseReturn || r.AttachCookie != 5 || r.Ret != uint64(2*i+1) {
			t.Errorf("r1 event %d: %+v", i, r)
		}
	}

	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] {
		t.Errorf("BPF fds before %v, after %v: the session leaked links or programs", before, after)
	}
}

// TestEndToEndReleaseOnFailureAndEOF: an attach failure after a successful
// attach, and EOF after `attached`, both leave nothing attached.
func TestEndToEndReleaseOnFailureAndEOF(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	target := startTarget(t)
	before := bridgetest.BPFFDs(t)
	cfg := func(i uint32) map[string][]byte {
		return map[string][]byte{".rodata.pc_cfg": pcConfig(i, 0, 0, 0, 0, 0)}
	}
	good := protocol.Probe{Name: "u1", Program: "pc_uprobe", Kind: protocol.KindUprobe, Binary: target.path,
		Targets: []protocol.Target{{Symbol: "pc_leaf"}}, Rodata: cfg(0)}

	t.Run("attach failure", func(t *testing.T) {
		bad := good
		bad.Name, bad.Targets, bad.Rodata = "u2", []protocol.Target{{Symbol: "no_such_function"}}, cfg(1)
		c := startSession(t, context.Background())
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, good, bad))
		var e protocol.ErrorLine
		c.recv("error", &e)
		if e.Phase != protocol.PhaseAttach || e.Probe != "u2" || e.Class != "not-found" || !strings.Contains(e.Detail, "no_such_function") {
			t.Errorf("error line %+v", e)
		}
		if s := c.wait(); s != 1 {
			t.Errorf("status %d", s)
		}
	})

	// A session probe's program is looked up in the top-level sessions
	// build, any other probe's in its own object: each error lists the
	// programs of the object looked in.
	t.Run("missing program", func(t *testing.T) {
		bad := good
		bad.Program, bad.Kind = "pc_nope", protocol.KindUprobeSession
		c := startSession(t, context.Background())
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, bad))
		var e protocol.ErrorLine
		c.recv("error", &e)
		if e.Phase != protocol.PhaseLoad || e.Class != "not-found" || !strings.Contains(e.Detail, "pc_uprobe_session (uprobe.session)") ||
			!strings.Contains(e.Detail, objs.Sessions) {
			t.Errorf("error line %+v: want the available programs of %s listed", e, objs.Sessions)
		}
		c.wait()
	})

	t.Run("missing program, probe's own object", func(t *testing.T) {
		bad := good
		bad.Program = "pc_nope"
		c := startSession(t, context.Background())
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, bad))
		var e protocol.ErrorLine
		c.recv("error", &e)
		if e.Phase != protocol.PhaseLoad || e.Class != "not-found" || !strings.Contains(e.Detail, "pc_uprobe (uprobe)") ||
			!strings.Contains(e.Detail, objs.Recorders) || strings.Contains(e.Detail, "pc_uprobe_session") {
			t.Errorf("error line %+v: want the available programs of %s listed (no session programs)", e, objs.Recorders)
		}
		c.wait()
	})

	t.Run("wrong rodata size", func(t *testing.T) {
		bad := good
		bad.Rodata = map[string][]byte{".rodata.pc_cfg": make([]byte, 24)}
		c := startSession(t, context.Background())
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, bad))
		var e protocol.ErrorLine
		c.recv("error", &e)
		if e.Phase != protocol.PhaseLoad || e.Class != "invalid" || !strings.Contains(e.Detail, "32 bytes but the data has 24") {
			t.Errorf("error line %+v", e)
		}
		c.wait()
	})

	t.Run("stdin EOF after attached", func(t *testing.T) {
		c := startSession(t, context.Background())
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, good))
		c.recv("attached", nil)
		if now := bridgetest.BPFFDs(t); now["link"] <= before["link"] {
			t.Errorf("no link held while attached: %v", now)
		}
		c.in.Close()
		var e protocol.ErrorLine
		c.recv("error", &e)
		if e.Phase != protocol.PhaseProtocol || !strings.Contains(e.Detail, "stdin closed") {
			t.Errorf("error line %+v", e)
		}
		if s := c.wait(); s != 1 {
			t.Errorf("status %d", s)
		}
	})

	t.Run("signal after attached", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		c := startSession(t, ctx)
		c.recv("hello", nil)
		c.sendJSON(runnerRequest(objs, good))
		c.recv("attached", nil)
		cancel(errSignalForTest)
		var e protocol.ErrorLine
		c.recv("error", &e)
		if !strings.Contains(e.Detail, "received terminated") {
			t.Errorf("error line %+v", e)
		}
		c.wait()
	})

	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] {
		t.Errorf("BPF fds before %v, after %v: something stayed attached", before, after)
	}
}
