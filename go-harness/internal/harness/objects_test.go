package harness

// The request's "objects": the harness picks the build for the running
// kernel's session-kfunc prototype (cilium-session-kfunc-variant).

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"probeconf/bridge"
	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/protocol"
)

// kernelWith pretends the running kernel's session kfuncs look like v.
func kernelWith(v bridge.KfuncVariant, reason string) Config {
	return Config{SessionKfuncs: func() (bridge.KfuncVariant, string) { return v, reason }}
}

func objectsRequest(noarg, ctx string, probes ...protocol.Probe) protocol.Request {
	return protocol.Request{Protocol: 1, Objects: &protocol.Objects{NoArg: noarg, Ctx: ctx}, Probes: probes}
}

var leafProbe = protocol.Probe{Name: "s", Program: "pc_uprobe_session", Kind: protocol.KindUprobeSession,
	Binary: "/bin/true", Targets: []protocol.Target{{Symbol: "pc_leaf"}}}

func sessionError(t *testing.T, cfg Config, req protocol.Request) protocol.ErrorLine {
	t.Helper()
	c := startSessionWith(t, context.Background(), cfg)
	c.recv("hello", nil)
	c.sendJSON(req)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if s := c.wait(); s != 1 {
		t.Errorf("status %d, want 1", s)
	}
	return e
}

// No kernel needed: the builds are text files, so the load fails parsing the
// picked one, before any bpf syscall.
func TestObjectsPickWithoutKernel(t *testing.T) {
	dir := t.TempDir()
	noarg, ctx := filepath.Join(dir, "sessions.bpf.o"), filepath.Join(dir, "sessions.ctx.bpf.o")
	for _, f := range []string{noarg, ctx} {
		if err := os.WriteFile(f, []byte("not an ELF object, just long enough to have a header's worth of bytes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		kernel      bridge.KfuncVariant
		reason      string
		wantVariant string
		wantObject  string
		wantReason  string
	}{
		{bridge.KfuncNoArg, "kernel BTF: bpf_session_cookie(void)", protocol.VariantNoArg, noarg, "bpf_session_cookie(void)"},
		{bridge.KfuncCtx, "kernel BTF: bpf_session_cookie(void *ctx)", protocol.VariantCtx, ctx, "bpf_session_cookie(void *ctx)"},
		{bridge.KfuncNone, "kernel BTF has no bpf_session_cookie kfunc", protocol.VariantNoArg, noarg, "no session kfuncs: the noarg build"},
	} {
		t.Run(string(tc.kernel), func(t *testing.T) {
			e := sessionError(t, kernelWith(tc.kernel, tc.reason), objectsRequest(noarg, ctx, leafProbe))
			if e.Phase != protocol.PhaseLoad || e.Class != "invalid" || e.ObjectVariant != tc.wantVariant ||
				!strings.Contains(e.ObjectReason, tc.wantReason) || !strings.Contains(e.Detail, tc.wantObject) {
				t.Errorf("error line %+v: want load/invalid on %s, object_variant %s, reason with %q",
					e, tc.wantObject, tc.wantVariant, tc.wantReason)
			}
		})
	}

	// Both builds are checked before anything is picked: no object_variant.
	t.Run("missing build", func(t *testing.T) {
		e := sessionError(t, kernelWith(bridge.KfuncNoArg, "r"), objectsRequest(noarg, filepath.Join(dir, "nope.o"), leafProbe))
		if e.Phase != protocol.PhaseProtocol || e.Class != "not-found" || e.Errno != int(syscall.ENOENT) ||
			e.ObjectVariant != "" || e.ObjectReason != "" || !strings.Contains(e.Detail, "objects.ctx") {
			t.Errorf("error line %+v: want protocol/not-found on objects.ctx, no object_variant", e)
		}
	})
	t.Run("object and objects", func(t *testing.T) {
		req := objectsRequest(noarg, ctx, leafProbe)
		req.Object = noarg
		e := sessionError(t, Config{}, req)
		if e.Phase != protocol.PhaseProtocol || e.Class != "invalid" || e.ObjectVariant != "" {
			t.Errorf("error line %+v: want protocol/invalid", e)
		}
	})
}

// TestObjectsOnThisKernel: on the real kernel (6.18 host: no-argument session
// kfuncs) the harness picks the noarg build (sessions.bpf.o; the ctx build is
// sessions.ctx.bpf.o), says so in the attached line, and
// the session probe works. Pretending a 7.0 kernel makes it pick the ctx
// build, which this kernel refuses at load (invalid, object_variant ctx).
func TestObjectsOnThisKernel(t *testing.T) {
	noarg, ctx := bridgetest.RequireObjectPair(t)
	major, minor := bridgetest.KernelVersion(t)
	if major != 6 || minor < 13 {
		t.Skipf("kernel %d.%d: this test expects no-argument session kfuncs and uprobe sessions (6.13 to 6.19)", major, minor)
	}
	target := startTarget(t)
	pid := uint32(target.cmd.Process.Pid)
	probe := protocol.Probe{Name: "s", Program: "pc_uprobe_session", Kind: protocol.KindUprobeSession, Binary: target.path,
		Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 17}},
		PID:     &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
		Rodata:  map[string][]byte{".rodata.pc_cfg": pcConfig(0, 0, 0, cmConst, 0, 0x1001)},
	}

	t.Run("pretend 7.0", func(t *testing.T) {
		e := sessionError(t, kernelWith(bridge.KfuncCtx, "pretend: bpf_session_cookie(void *ctx)"), objectsRequest(noarg, ctx, probe))
		if e.Phase != protocol.PhaseLoad || e.Class != "invalid" || e.Probe != "s" || e.Errno != 0 ||
			e.ObjectVariant != protocol.VariantCtx || e.ObjectReason != "pretend: bpf_session_cookie(void *ctx)" ||
			!strings.Contains(e.Detail, "fixing up kfuncs") || !strings.Contains(e.Detail, "(hint: a kfunc prototype") {
			t.Errorf("error line %+v: want load/invalid for probe s, cilium's kfunc fix-up error with the hint, object_variant ctx", e)
		}
	})

	c := startSession(t, context.Background()) // the real kernel BTF decides
	c.recv("hello", nil)
	c.sendJSON(objectsRequest(noarg, ctx, probe))
	var attached protocol.Attached
	c.recv("attached", &attached)
	if attached.ObjectVariant != protocol.VariantNoArg || attached.ObjectReason != "kernel BTF: bpf_session_cookie(void)" {
		t.Errorf("attached %+v: want object_variant noarg from the kernel BTF", attached)
	}
	if want := (protocol.AttachedProbe{Name: "s", Via: protocol.ViaCompat, Bridge: compat.BridgeUprobeSession}); len(attached.Probes) != 1 || withoutProgIDs(t, attached.Probes)[0] != want {
		t.Errorf("attached probes %+v, want [%+v]", attached.Probes, want)
	}
	const n = 2
	target.run(t, n)
	c.send(`{"cmd":"drain"}`)
	var events protocol.Events
	c.recv("events", &events)
	c.recv("done", nil)
	if s := c.wait(); s != 0 {
		t.Fatalf("status %d", s)
	}
	var entries, returns int
	for _, raw := range events.Events {
		switch e := decodeEvent(t, raw); {
		case e.IsReturn == 0:
			entries++
		case e.IsReturn == 1 && e.CookieIn == 0x1001:
			returns++
		default:
			t.Errorf("event %+v", e)
		}
	}
	if entries != n || returns != n {
		t.Errorf("%d entries, %d returns reading the cookie; want %d each", entries, returns, n)
	}
}
