package attach

// Root tests: load the recorder objects and attach for real, then ask the
// kernel which link each retprobe/session combination produced. Requests are
// built as the Rust runner builds them: the sessions build as the top-level
// object, and recorders.bpf.o as the per-probe object of non-session probes.

import (
	"fmt"
	"testing"

	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/loader"
	"probeconf/go-harness/internal/protocol"
)

const targetSrc = `
__attribute__((noinline, noipa)) long pc_leaf(long x) { return x * 2 + 1; }
int main(void) { return (int)pc_leaf(1) - 3; }
`

// TestRetprobeSessionLinks checks, from the kernel's link info, that the
// retprobe and session fields pick the link the protocol promises.
func TestRetprobeSessionLinks(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	target := bridgetest.BuildC(t, bridgetest.GCC(t), t.TempDir(), "target", targetSrc)
	yes, no := true, false
	type want struct {
		linkType, perfType, flags uint32
		via, bridge               string
	}
	perf := func(typ uint32) want {
		return want{linkType: bridgetest.LinkTypePerfEvent, perfType: typ, via: protocol.ViaNative}
	}
	multi := func(flags uint32, bridged bool) want {
		w := want{linkType: bridgetest.LinkTypeUprobeMulti, flags: flags, via: protocol.ViaNative}
		if bridged {
			w.via, w.bridge = protocol.ViaCompat, compat.BridgeUprobeSession
		}
		return w
	}
	for _, tc := range []struct {
		program           string
		kind              protocol.Kind
		retprobe, session *bool
		want              want
	}{
		{"pc_uprobe", protocol.KindUprobe, nil, nil, perf(bridgetest.PerfEventUprobe)},
		{"pc_uprobe", protocol.KindUprobe, &yes, nil, perf(bridgetest.PerfEventUretprobe)},
		{"pc_uretprobe", protocol.KindUretprobe, nil, &no, perf(bridgetest.PerfEventUretprobe)},
		{"pc_uretprobe", protocol.KindUretprobe, &no, nil, perf(bridgetest.PerfEventUprobe)},
		{"pc_uprobe_multi", protocol.KindUprobeMulti, nil, nil, multi(0, false)},
		{"pc_uprobe_multi", protocol.KindUprobeMulti, &yes, nil, multi(bridgetest.UprobeMultiReturn, false)},
		{"pc_uretprobe_multi", protocol.KindUretprobeMulti, nil, nil, multi(bridgetest.UprobeMultiReturn, false)},
		{"pc_uretprobe_multi", protocol.KindUretprobeMulti, &no, &no, multi(0, false)},
		{"pc_uprobe_session", protocol.KindUprobeSession, nil, nil, multi(0, true)},
		{"pc_uprobe_session", protocol.KindUprobeSession, &yes, nil, multi(bridgetest.UprobeMultiReturn, true)},
	} {
		name := fmt.Sprintf("%s retprobe=%v session=%v", tc.kind, deref(tc.retprobe), deref(tc.session))
		t.Run(name, func(t *testing.T) {
			req := &protocol.Request{Protocol: 1, Object: objs.Sessions, Probes: []protocol.Probe{{
				Name: "p", Program: tc.program, Kind: tc.kind, Object: objs.ProbeObject(tc.kind.Session()), Binary: target,
				Retprobe: tc.retprobe, Session: tc.session,
				Targets: []protocol.Target{{Symbol: "pc_leaf", Cookie: 1}},
			}}}
			if err := req.Validate(); err != nil {
				t.Fatal(err)
			}
			set, err := loader.Load(req.Object, req, testLog{t})
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			a, err := Probe(set.Instances[0], Options{Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if len(a.Links) != 1 {
				t.Fatalf("%d links, want 1", len(a.Links))
			}
			fder, ok := a.Links[0].(interface{ FD() int })
			if !ok {
				t.Fatalf("link %T has no FD()", a.Links[0])
			}
			info := bridgetest.ReadLinkInfo(t, fder.FD())
			got := want{linkType: info.Type, perfType: info.PerfEventType, flags: info.MultiFlags, via: a.Via, bridge: a.Bridge}
			if got != tc.want {
				t.Errorf("link %+v, want %+v", got, tc.want)
			}
		})
	}
}

func deref(b *bool) string {
	if b == nil {
		return "absent"
	}
	return fmt.Sprint(*b)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", p)
	return len(p), nil
}
