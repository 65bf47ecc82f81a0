package harness

// End-to-end USDT sessions (root): a usdt probe whose program lives in
// usdt_recorder.bpf.o (the probe's own object) next to a uprobe from
// recorders.bpf.o (its own object too; the request's top-level object is the
// sessions build, as the Rust runner sends it), sharing one ring buffer; the
// project's probe-target as the traced program.

import (
	"context"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"probeconf/bridge"
	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/protocol"
)

// usdtFields are the struct pc_event (ABI v2) fields a USDT event is checked by.
type usdtFields struct {
	ProbeIndex, Tgid uint32
	AttachCookie     uint64
	Args             [6]int64
	ArgCnt           int32
}

func decodeUSDT(t *testing.T, raw []byte) usdtFields {
	t.Helper()
	if len(raw) != 144 {
		t.Fatalf("event of %d bytes, want 144 (ABI v2)", len(raw))
	}
	le := binary.LittleEndian
	f := usdtFields{ProbeIndex: le.Uint32(raw[20:]), Tgid: le.Uint32(raw[24:]), AttachCookie: le.Uint64(raw[48:]),
		ArgCnt: int32(le.Uint32(raw[136:]))}
	for i, off := range []int{64, 72, 104, 112, 120, 128} {
		f.Args[i] = int64(le.Uint64(raw[off:]))
	}
	return f
}

// usdtSession runs one session with the given probes against a probe-target
// running steps (pid-scoped probes), and returns the attached line, the
// target's output and the events by probe index.
func usdtSession(t *testing.T, cfg Config, objs bridgetest.Objects, steps string, probes func(pid uint32) []protocol.Probe) (protocol.Attached, []string, map[uint32][]usdtFields) {
	t.Helper()
	path := bridgetest.ProbeTargetFile(t)
	target := bridgetest.StartProbeTarget(t, path, steps)
	pid := uint32(target.Pid)
	c := startSessionWith(t, context.Background(), cfg)
	c.recv("hello", nil)
	c.sendJSON(runnerRequest(objs, probes(pid)...))
	var attached protocol.Attached
	c.recv("attached", &attached)
	out := target.Go(t)
	events := c.drain()
	if events.Dropped != 0 {
		t.Errorf("dropped %d", events.Dropped)
	}
	byProbe := map[uint32][]usdtFields{}
	for _, raw := range events.Events {
		e := decodeUSDT(t, raw)
		if e.Tgid != pid {
			t.Errorf("event of tgid %d, want only the target's %d", e.Tgid, pid)
		}
		byProbe[e.ProbeIndex] = append(byProbe[e.ProbeIndex], e)
	}
	return attached, out, byProbe
}

func usdtProbe(name, object, binary, symbol string, cookie uint64, index, pid uint32) protocol.Probe {
	return protocol.Probe{
		Name: name, Program: "pc_usdt", Kind: protocol.KindUSDT, Object: object, Binary: binary,
		Targets: []protocol.Target{{Symbol: symbol, Cookie: cookie}},
		PID:     &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
		Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(index, 0, 0, 0, 0, 0)},
	}
}

// TestEndToEndUSDT: probeconf:args (cookie 0x77) and the semaphore-guarded
// probeconf:sema through the cilium-usdt bridge, and a plain uprobe from the
// other object, all into one ring buffer; libbpf's expected values.
func TestEndToEndUSDT(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	usdtObject := objs.USDT
	path := bridgetest.ProbeTargetFile(t)
	before := bridgetest.BPFFDs(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"uprobe_multi", Config{}},
		// libbpf on a kernel without uprobe_multi: one uprobe per site.
		{"single uprobes", Config{USDTFeatures: func() (bridge.USDTFeatures, error) {
			f, err := bridge.ProbeUSDTFeatures()
			f.UprobeMulti = false
			return f, err
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attached, out, byProbe := usdtSession(t, tc.cfg, objs, "call usdt_args 3 4; sema; call usdt_sema 5; call leaf 2 5",
				func(pid uint32) []protocol.Probe {
					return []protocol.Probe{
						usdtProbe("u", usdtObject, path, "probeconf:args", 0x77, 0, pid),
						usdtProbe("s", usdtObject, path, "probeconf:sema", 0x5e, 1, pid),
						{
							Name: "p", Program: "pc_uprobe", Kind: protocol.KindUprobe, Binary: path,
							Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 9}},
							PID:     &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
							Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(2, 0, 0, 0, 0, 0)},
						},
					}
				})
			want := []protocol.AttachedProbe{
				{Name: "u", Via: protocol.ViaCompat, Bridge: compat.BridgeUSDT},
				{Name: "s", Via: protocol.ViaCompat, Bridge: compat.BridgeUSDT},
				{Name: "p", Via: protocol.ViaNative},
			}
			if !reflect.DeepEqual(withoutProgIDs(t, attached.Probes), want) {
				t.Errorf("attached %+v, want %+v", attached.Probes, want)
			}
			if strings.Join(out, "|") != "observe sema=1" {
				t.Errorf("probe-target said %q: want the semaphore set while attached", out)
			}
			u, s, p := byProbe[0], byProbe[1], byProbe[2]
			if len(u) != 1 || len(s) != 1 || len(p) != 1 {
				t.Fatalf("events per probe: %d %d %d, want 1 each: %+v", len(u), len(s), len(p), byProbe)
			}
			if want := [6]int64{42, 3, 1234, -7, 65004, -3000}; u[0].Args != want || u[0].ArgCnt != 6 || u[0].AttachCookie != 0x77 {
				t.Errorf("probeconf:args: %+v, want args %v, arg_cnt 6, cookie 0x77", u[0], want)
			}
			if s[0].Args[0] != 5 || s[0].ArgCnt != 1 || s[0].AttachCookie != 0x5e {
				t.Errorf("probeconf:sema: %+v, want arg 5, arg_cnt 1, cookie 0x5e", s[0])
			}
			if p[0].AttachCookie != 9 || p[0].Args[0] != 2 || p[0].Args[1] != 5 {
				t.Errorf("uprobe pc_leaf: %+v", p[0])
			}
		})
	}
	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] || after["map"] != before["map"] {
		t.Errorf("BPF fds before %v, after %v", before, after)
	}
}

// TestEndToEndUSDTRIPRelative: probeconf:rip (`-8@pc_usdt_global(%rip)`) is
// refused at attach as invalid, naming the argument, like libbpf.
func TestEndToEndUSDTRIPRelative(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	usdtObject := objs.USDT
	path := bridgetest.ProbeTargetFile(t)
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.sendJSON(runnerRequest(objs, usdtProbe("u", usdtObject, path, "probeconf:rip", 0, 0, 1)))
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseAttach || e.Class != "invalid" || e.Probe != "u" || e.Errno != 22 ||
		!strings.Contains(e.Detail, "unrecognized arg #0 spec '-8@pc_usdt_global(%rip)'") {
		t.Errorf("error line %+v", e)
	}
	c.wait()
}

// TestEndToEndUSDTErrors: what else fails, and how it is classified.
func TestEndToEndUSDTErrors(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	usdtObject := objs.USDT
	path := bridgetest.ProbeTargetFile(t)
	for _, tc := range []struct {
		name  string
		probe protocol.Probe
		phase protocol.Phase
		class string
		text  string
	}{
		{"unknown site", usdtProbe("u", usdtObject, path, "probeconf:nope", 0, 0, 1), protocol.PhaseAttach, "not-found", "no USDT site 'probeconf:nope'"},
		{"program not in the probe's object", func() protocol.Probe {
			p := usdtProbe("u", usdtObject, path, "probeconf:args", 0, 0, 1)
			p.Program = "pc_uprobe"
			return p
		}(), protocol.PhaseLoad, "not-found", "pc_usdt (usdt)"},
		{"usdt without usdt.bpf.h's maps", func() protocol.Probe {
			p := usdtProbe("u", "", path, "probeconf:args", 0, 0, 1)
			p.Program = "pc_uprobe"
			return p
		}(), protocol.PhaseAttach, "not-found", "failed to find USDT support BPF maps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startSession(t, context.Background())
			c.recv("hello", nil)
			c.sendJSON(runnerRequest(objs, tc.probe))
			var e protocol.ErrorLine
			c.recv("error", &e)
			if e.Phase != tc.phase || e.Class != tc.class || !strings.Contains(e.Detail, tc.text) {
				t.Errorf("error line %+v, want %s/%s with %q", e, tc.phase, tc.class, tc.text)
			}
			c.wait()
		})
	}
}
