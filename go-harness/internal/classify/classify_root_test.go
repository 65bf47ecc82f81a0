package classify

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"probeconf/bridge"
	"probeconf/bridge/bridgetest"
)

// TestIncompatibleKfuncRealLoad loads the session program of the build made
// for the other session-kfunc prototype than the running kernel's (on the
// 6.18 host: sessions.ctx.bpf.o, whose kfuncs take ctx; both builds come
// from beside PROBECONF_BPF_OBJECT). cilium fails while
// fixing up the kfuncs ("function param mismatch: incompatible types"), with
// its unexported *ebpf.incompatibleKfuncError and no errno: class invalid,
// with the prototype hint. If cilium renames or exports that type, this test
// says so.
func TestIncompatibleKfuncRealLoad(t *testing.T) {
	noarg, ctx := bridgetest.RequireObjectPair(t)
	kernel, reason := bridge.SessionKfuncPrototype()
	var wrong string
	switch kernel {
	case bridge.KfuncNoArg:
		wrong = ctx
	case bridge.KfuncCtx:
		wrong = noarg
	default:
		t.Skipf("kernel has no session kfuncs (%s): no prototype to mismatch", reason)
	}

	spec, err := ebpf.LoadCollectionSpec(wrong)
	if err != nil {
		t.Fatal(err)
	}
	for name := range spec.Programs {
		if name != "pc_uprobe_session" {
			delete(spec.Programs, name)
		}
	}
	bridge.PrepareUprobeSessionSpec(spec.Programs["pc_uprobe_session"])
	coll, err := ebpf.NewCollection(spec)
	if err == nil {
		coll.Close()
		t.Fatalf("%s loaded on a kernel with %s kfuncs (%s)", wrong, kernel, reason)
	}
	t.Logf("load %s: %v", wrong, err)

	if !IsIncompatibleKfunc(err) {
		t.Errorf("IsIncompatibleKfunc(%v) = false: cilium's error type changed (%T chain)", err, err)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Errorf("%v wraps ErrNotSupported", err)
	}
	got := Classify(err, Where{Phase: "load", Kind: "uprobe.session"})
	if got.Class != Invalid || got.Errno != 0 ||
		!strings.Contains(got.Detail, "fixing up kfuncs") || !strings.Contains(got.Detail, "param mismatch") ||
		!strings.Contains(got.Detail, "(hint: a kfunc prototype does not match the kernel's") {
		t.Errorf("Classify = %+v, want class invalid, no errno, cilium's message and the prototype hint", got)
	}
}
