package attach

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"

	"probeconf/bridge"
	"probeconf/go-harness/internal/protocol"
)

// TestPlanFor pins the mapping of kind × retprobe × session to a library call
// (or the bridge) and its flags, for every kind: the kernel kinds cannot be
// attached on every test host, the mapping can always be checked.
func TestPlanFor(t *testing.T) {
	yes, no := true, false
	b := func(v *bool) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	for _, tc := range []struct {
		kind              protocol.Kind
		retprobe, session *bool
		want              Plan
	}{
		{protocol.KindUprobe, nil, nil, Plan{Call: CallUprobe}},
		{protocol.KindUprobe, &yes, nil, Plan{Call: CallUretprobe}},
		{protocol.KindUprobe, nil, &no, Plan{Call: CallUprobe}},
		{protocol.KindUretprobe, nil, nil, Plan{Call: CallUretprobe}},
		{protocol.KindUretprobe, &no, nil, Plan{Call: CallUprobe}},

		{protocol.KindUprobeMulti, nil, nil, Plan{Call: CallUprobeMulti}},
		{protocol.KindUprobeMulti, &yes, nil, Plan{Call: CallUretprobeMulti}},
		{protocol.KindUprobeMulti, nil, &yes, Plan{Call: CallUprobeSession, Session: true}},
		{protocol.KindUprobeMulti, &yes, &yes, Plan{Call: CallUprobeSession, Session: true, Return: true}},
		{protocol.KindUretprobeMulti, nil, nil, Plan{Call: CallUretprobeMulti}},
		{protocol.KindUretprobeMulti, &no, nil, Plan{Call: CallUprobeMulti}},
		{protocol.KindUretprobeMulti, nil, &yes, Plan{Call: CallUprobeSession, Session: true, Return: true}},

		{protocol.KindUprobeSession, nil, nil, Plan{Call: CallUprobeSession, Session: true}},
		{protocol.KindUprobeSession, &yes, nil, Plan{Call: CallUprobeSession, Session: true, Return: true}},
		{protocol.KindUprobeSession, &no, &yes, Plan{Call: CallUprobeSession, Session: true}},
		{protocol.KindUprobeSession, nil, &no, Plan{Call: CallUprobeMulti}},
		{protocol.KindUprobeSession, &yes, &no, Plan{Call: CallUretprobeMulti}},

		{protocol.KindKprobe, nil, nil, Plan{Call: CallKprobe}},
		{protocol.KindKprobe, &yes, nil, Plan{Call: CallKretprobe}},
		{protocol.KindKretprobe, nil, nil, Plan{Call: CallKretprobe}},
		{protocol.KindKretprobe, &no, &no, Plan{Call: CallKprobe}},

		{protocol.KindKprobeMulti, nil, nil, Plan{Call: CallKprobeMulti}},
		{protocol.KindKprobeMulti, &yes, nil, Plan{Call: CallKretprobeMulti}},
		{protocol.KindKprobeMulti, nil, &yes, Plan{Call: CallKprobeMulti, Session: true}},
		{protocol.KindKretprobeMulti, nil, nil, Plan{Call: CallKretprobeMulti}},
		{protocol.KindKretprobeMulti, nil, &yes, Plan{Call: CallKretprobeMulti, Session: true}},
		{protocol.KindKprobeSession, nil, nil, Plan{Call: CallKprobeMulti, Session: true}},
		{protocol.KindKprobeSession, &yes, nil, Plan{Call: CallKretprobeMulti, Session: true}},
		{protocol.KindKprobeSession, nil, &no, Plan{Call: CallKprobeMulti}},

		{protocol.KindUSDT, nil, nil, Plan{Call: CallUSDT}},
		{protocol.KindUSDT, &no, &no, Plan{Call: CallUSDT}},
	} {
		p := &protocol.Probe{Kind: tc.kind, Retprobe: tc.retprobe, Session: tc.session}
		if got := PlanFor(p); got != tc.want {
			t.Errorf("%s retprobe=%s session=%s: %+v, want %+v", tc.kind, b(tc.retprobe), b(tc.session), got, tc.want)
		}
	}
}

// TestPlanForTracing pins the BTF-based tracing kinds: the call and the
// attach type (retprobe and session can only restate the kind's own).
func TestPlanForTracing(t *testing.T) {
	for _, tc := range []struct {
		kind   protocol.Kind
		cookie uint64
		want   Plan
	}{
		{protocol.KindFentry, 0x41, Plan{Call: CallTracing, AttachType: ebpf.AttachTraceFEntry}},
		{protocol.KindFentry, 0, Plan{Call: CallTracing, AttachType: ebpf.AttachTraceFEntry}},
		{protocol.KindFexit, 2, Plan{Call: CallTracing, AttachType: ebpf.AttachTraceFExit}},
		// link.AttachTracing refuses attach type 58; without a cookie,
		// AttachNone (BPF_RAW_TRACEPOINT_OPEN) links it natively.
		{protocol.KindFsession, 0x51, Plan{Call: CallFsession, AttachType: bridge.AttachTraceFSession}},
		{protocol.KindFsession, 0, Plan{Call: CallTracing, AttachType: ebpf.AttachNone}},
		{protocol.KindFentryMulti, 0, Plan{Call: CallTracingMulti, AttachType: 59}},
		{protocol.KindFexitMulti, 1, Plan{Call: CallTracingMulti, AttachType: 60}},
		{protocol.KindFsessionMulti, 1, Plan{Call: CallTracingMulti, AttachType: 61}},
	} {
		p := &protocol.Probe{Kind: tc.kind, Targets: []protocol.Target{{Symbol: "f", Cookie: tc.cookie}}}
		if got := PlanFor(p); got != tc.want {
			t.Errorf("%s cookie %#x: %+v, want %+v", tc.kind, tc.cookie, got, tc.want)
		}
	}
}
