package harness

// BTF-based tracing kinds end to end: fentry (cilium, native), fsession (the
// cilium-fsession-load bridge, linked by cilium-fsession-link with a cookie,
// natively without one) and fentry.multi (cilium-tracing-multi), on the
// getpgid and dup syscalls' functions, triggered by this process (the
// harness runs in the test's process). They need root, the objects beside
// PROBECONF_BPF_OBJECT and BPF trampolines: the 6.18 test host refuses
// fentry at load (EPERM), so there only the errors are checked.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"probeconf/bridge"
	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/protocol"
)

const (
	getpgidFunc = "__x64_sys_getpgid"
	dupFunc     = "__x64_sys_dup"
)

// tracingRequest is a request as the Rust runner sends it for tracing
// probes: both sessions builds (fsession programs live there), and
// tracing.bpf.o as the own object of every other tracing probe.
func tracingRequest(t *testing.T, objs bridgetest.Objects, probes ...protocol.Probe) protocol.Request {
	tracing := bridgetest.TracingObjectFile(t)
	for i := range probes {
		if !probes[i].Kind.Session() {
			probes[i].Object = tracing
		}
		// Only this process's calls (probe index i).
		probes[i].Rodata = map[string][]byte{".rodata.pc_cfg": pcConfig(uint32(i), uint32(os.Getpid()), 0, 0, 0, 0)}
	}
	return protocol.Request{Protocol: 1, Objects: &protocol.Objects{NoArg: objs.Sessions, Ctx: objs.SessionsCtx}, Probes: probes}
}

func tracingProbe(name, program string, kind protocol.Kind, targets ...protocol.Target) protocol.Probe {
	return protocol.Probe{Name: name, Program: program, Kind: kind, Targets: targets}
}

// TestEndToEndTracingErrors: what every kernel with BTF answers, whatever it
// supports: a missing function is not-found (cilium says ErrNotSupported,
// cilium-tracing-missing-function makes it not-found), and the kinds the
// kernel lacks are unsupported (not the verifier's invalid).
func TestEndToEndTracingErrors(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	before := bridgetest.BPFFDs(t)
	e := requestError(t, tracingRequest(t, objs, tracingProbe("fe", "pc_fentry", protocol.KindFentry, protocol.Target{Symbol: "probeconf_no_such_function"})))
	if e.Phase != protocol.PhaseLoad || e.Class != "not-found" || e.Errno != int(syscall.ENOENT) || e.Probe != "fe" ||
		!strings.Contains(e.Detail, "fentry probeconf_no_such_function not supported") {
		t.Errorf("fentry on a missing function: %+v, want load/not-found (ENOENT) with cilium's text", e)
	}
	for _, tc := range []struct {
		probe protocol.Probe
		have  func() error
	}{
		{tracingProbe("fs", "pc_fsession", protocol.KindFsession, protocol.Target{Symbol: getpgidFunc, Cookie: 1}), bridge.HaveFsession},
		{tracingProbe("fm", "pc_fentry_multi", protocol.KindFentryMulti, protocol.Target{Symbol: getpgidFunc}), bridge.HaveTracingMulti},
		{tracingProbe("fsm", "pc_fsession_multi", protocol.KindFsessionMulti, protocol.Target{Symbol: getpgidFunc}), bridge.HaveTracingMulti},
	} {
		if tc.have() == nil {
			t.Logf("%s: this kernel has it (TestEndToEndTracing)", tc.probe.Kind)
			continue
		}
		e := requestError(t, tracingRequest(t, objs, tc.probe))
		if e.Phase != protocol.PhaseLoad || e.Class != "unsupported" || e.Probe != tc.probe.Name {
			t.Errorf("%s on a kernel without it: %+v, want load/unsupported", tc.probe.Kind, e)
		}
	}
	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] || after["map"] != before["map"] {
		t.Errorf("BPF fds before %v, after %v: a failed session leaked", before, after)
	}
}

func TestEndToEndTracing(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	bridgetest.RequireAMD64(t)
	probes := []protocol.Probe{tracingProbe("fe", "pc_fentry", protocol.KindFentry, protocol.Target{Symbol: getpgidFunc, Cookie: 0x41})}
	wantAttached := []protocol.AttachedProbe{{Name: "fe", Via: protocol.ViaNative}}
	if err := bridge.HaveFsession(); err == nil {
		probes = append(probes,
			tracingProbe("fs", "pc_fsession", protocol.KindFsession, protocol.Target{Symbol: getpgidFunc, Cookie: 0x51}),
			tracingProbe("fs0", "pc_fsession", protocol.KindFsession, protocol.Target{Symbol: dupFunc}))
		wantAttached = append(wantAttached,
			protocol.AttachedProbe{Name: "fs", Via: protocol.ViaCompat, Bridge: compat.BridgeFsessionLoad + "," + compat.BridgeFsessionLink},
			protocol.AttachedProbe{Name: "fs0", Via: protocol.ViaCompat, Bridge: compat.BridgeFsessionLoad})
	} else {
		t.Logf("no fsession probes: %v", err)
	}
	if err := bridge.HaveTracingMulti(); err == nil {
		probes = append(probes, tracingProbe("fm", "pc_fentry_multi", protocol.KindFentryMulti,
			protocol.Target{Symbol: getpgidFunc, Cookie: 0x12}, protocol.Target{Symbol: dupFunc, Cookie: 0x13}))
		wantAttached = append(wantAttached, protocol.AttachedProbe{Name: "fm", Via: protocol.ViaCompat, Bridge: compat.BridgeTracingMulti})
	} else {
		t.Logf("no tracing multi probe: %v", err)
	}
	req := tracingRequest(t, objs, probes...)
	before := bridgetest.BPFFDs(t)

	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.sendJSON(req)
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(line), `"type":"error"`) {
		c.wait()
		if strings.Contains(string(line), `"probe":"fe"`) {
			t.Skipf("this kernel does not load or link an fentry program (no BPF trampolines here): %s", line)
		}
		t.Fatalf("%s", line)
	}
	var attached protocol.Attached
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&attached); err != nil || attached.Type != "attached" {
		t.Fatalf("%s: %v", line, err)
	}
	if !reflect.DeepEqual(withoutProgIDs(t, attached.Probes), wantAttached) {
		t.Errorf("attached %+v, want %+v", attached.Probes, wantAttached)
	}

	_, gerr := syscall.Getpgid(-1)
	_, derr := syscall.Dup(-1)
	if !errors.Is(gerr, syscall.ESRCH) || !errors.Is(derr, syscall.EBADF) {
		t.Fatalf("getpgid(-1): %v, dup(-1): %v", gerr, derr)
	}
	events := c.drain()
	byProbe := map[uint32][]event{}
	for _, raw := range events.Events {
		e := decodeEvent(t, raw)
		byProbe[e.ProbeIndex] = append(byProbe[e.ProbeIndex], e)
	}
	type want struct {
		phase    uint8
		isReturn int8
		cookie   uint64
		ret      int64 // return phase only
	}
	check := func(index uint32, name string, wants ...want) {
		got := byProbe[index]
		if len(got) != len(wants) {
			t.Errorf("%s: %d events %+v, want %d", name, len(got), got, len(wants))
			return
		}
		for i, w := range wants {
			g := got[i]
			if g.Phase != w.phase || g.IsReturn != w.isReturn || g.AttachCookie != w.cookie || (w.phase == phaseReturn && int64(g.Ret) != w.ret) {
				t.Errorf("%s event %d: %+v, want %+v", name, i, g, w)
			}
		}
	}
	for i, p := range probes {
		switch p.Name {
		case "fe":
			check(uint32(i), p.Name, want{phaseEntry, -1, 0x41, 0})
		case "fs":
			check(uint32(i), p.Name, want{phaseEntry, 0, 0x51, 0}, want{phaseReturn, 1, 0x51, -int64(syscall.ESRCH)})
		case "fs0":
			check(uint32(i), p.Name, want{phaseEntry, 0, 0, 0}, want{phaseReturn, 1, 0, -int64(syscall.EBADF)})
		case "fm":
			check(uint32(i), p.Name, want{phaseEntry, -1, 0x12, 0}, want{phaseEntry, -1, 0x13, 0})
		}
	}
	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] {
		t.Errorf("BPF fds before %v, after %v: the session leaked links or programs", before, after)
	}
}
