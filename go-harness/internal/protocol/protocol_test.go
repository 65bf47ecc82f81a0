package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const goodRequest = `{"protocol":1,"object":"/abs/recorders.bpf.o","probes":[
 {"name":"s1","program":"pc_uprobe_session","kind":"uprobe.session","binary":"/abs/probe-target",
  "targets":[{"symbol":"pc_leaf","offset":0,"cookie":17}],"pid":{"scope":"pid","pid":1234},
  "rodata":{".rodata.pc_cfg":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}},
 {"name":"k1","program":"pc_kprobe_multi","kind":"kprobe.multi",
  "targets":[{"symbol":"sys_getpid","offset":0,"cookie":1},{"symbol":"do_nanosleep","offset":0,"cookie":18446744073709551615}],
  "pid":{"scope":"all"}}]}`

func oneLine(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "") + "\n") }

func TestDecodeRequestGood(t *testing.T) {
	req, err := DecodeRequest(oneLine(goodRequest))
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Probes) != 2 {
		t.Fatalf("probes: %d", len(req.Probes))
	}
	s1 := req.Probes[0]
	if s1.Kind != KindUprobeSession || s1.PID.Scope != ScopePID || *s1.PID.PID != 1234 || s1.Targets[0].Cookie != 17 {
		t.Errorf("s1 decoded as %+v", s1)
	}
	cfg := s1.Rodata[".rodata.pc_cfg"]
	if len(cfg) != 32 || cfg[0] != 0 || cfg[31] != 31 {
		t.Errorf("rodata bytes: %v", cfg)
	}
	// A u64 cookie must survive exactly (no float64 detour).
	if got := req.Probes[1].Targets[1].Cookie; got != ^uint64(0) {
		t.Errorf("max u64 cookie decoded as %d", got)
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"garbage", "garbage", "malformed JSON"},
		{"empty object", "{}", "protocol 0 not supported"},
		{"truncated", `{"protocol":1,"object":"/x",`, "malformed JSON"},
		{"trailing data", `{"protocol":1} {"protocol":1}`, "trailing data"},
		{"unknown top-level field", `{"protocol":1,"object":"/x","probes":[],"extra":1}`, `unknown field "extra"`},
		{"unknown nested field", strings.Replace(goodRequest, `"cookie":17`, `"cookie":17,"cookies":[1]`, 1), `unknown field "cookies"`},
		{"wrong type", strings.Replace(goodRequest, `"cookie":17`, `"cookie":"17"`, 1), "malformed JSON"},
		{"negative cookie", strings.Replace(goodRequest, `"cookie":17`, `"cookie":-1`, 1), "malformed JSON"},
		{"bad base64", strings.Replace(goodRequest, `"AAEC`, `"!!!`, 1), "malformed JSON"},
		{"unknown kind", strings.Replace(goodRequest, `"kind":"kprobe.multi"`, `"kind":"kprobe.mutli"`, 1),
			`unknown kind "kprobe.mutli" (valid kinds: uprobe, uretprobe, uprobe.multi, uretprobe.multi, uprobe.session, kprobe, kretprobe, kprobe.multi, kretprobe.multi, kprobe.session, usdt, fentry, fexit, fsession, fentry.multi, fexit.multi, fsession.multi)`},
		{"wrong protocol", strings.Replace(goodRequest, `"protocol":1`, `"protocol":2`, 1), "protocol 2 not supported"},
		{"no probes", `{"protocol":1,"object":"/x","probes":[]}`, "probes is empty"},
		{"duplicate name", strings.Replace(goodRequest, `"name":"k1"`, `"name":"s1"`, 1), `duplicate probe name "s1"`},
		{"relative binary", strings.Replace(goodRequest, `"binary":"/abs/probe-target"`, `"binary":"probe-target"`, 1), `binary "probe-target": must be an absolute path`},
		{"session on uprobe", strings.Replace(goodRequest, `"kind":"uprobe.session",`, `"kind":"uprobe","session":true,`, 1), "kind uprobe creates one perf-event link per target: field session must be absent or false"},
		{"session on kretprobe", strings.Replace(goodRequest, `"kind":"kprobe.multi",`, `"kind":"kretprobe","session":true,`, 1), "field session must be absent or false"},
		{"retprobe not a bool", strings.Replace(goodRequest, `"kind":"uprobe.session",`, `"kind":"uprobe.session","retprobe":1,`, 1), "malformed JSON"},
		{"uprobe without binary", strings.Replace(goodRequest, `"binary":"/abs/probe-target",`, ``, 1), "needs field binary"},
		{"kprobe with binary", strings.Replace(goodRequest, `"kind":"kprobe.multi",`, `"kind":"kprobe.multi","binary":"/x",`, 1), "binary must be absent"},
		{"empty symbol offset 0", strings.Replace(goodRequest, `"symbol":"pc_leaf"`, `"symbol":""`, 1), "non-zero absolute file offset"},
		{"kprobe.multi offset", strings.Replace(goodRequest, `"symbol":"sys_getpid","offset":0`, `"symbol":"sys_getpid","offset":4`, 1), "offset must be 0"},
		{"kprobe offset", strings.Replace(strings.Replace(goodRequest, `"kind":"kprobe.multi"`, `"kind":"kprobe"`, 1), `"symbol":"do_nanosleep","offset":0`, `"symbol":"do_nanosleep","offset":8`, 1), "offset must be 0"},
		{"pid scope unknown", strings.Replace(goodRequest, `"scope":"pid"`, `"scope":"self"`, 1), `unknown scope "self"`},
		{"pid scope pid 0", strings.Replace(goodRequest, `"pid":1234`, `"pid":0`, 1), "non-zero pid"},
		{"pid on kprobe", strings.Replace(goodRequest, `"pid":{"scope":"all"}`, `"pid":{"scope":"pid","pid":1}`, 1), "has no pid filter"},
		{"neither object nor objects", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, ``, 1), "one of the fields object and objects is required"},
		{"object and objects", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"object":"/abs/recorders.bpf.o","objects":{"noarg":"/a.o","ctx":"/b.o"},`, 1), "exclusive"},
		{"objects without ctx", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"objects":{"noarg":"/a.o"},`, 1), "noarg and ctx are both required"},
		{"objects empty", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"objects":{},`, 1), "noarg and ctx are both required"},
		{"objects unknown variant", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"objects":{"noarg":"/a.o","ctx":"/b.o","fsession":"/c.o"},`, 1), `unknown field "fsession"`},
		{"objects not an object", strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"objects":["/a.o","/b.o"],`, 1), "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest(oneLine(tc.line))
			if err == nil {
				t.Fatalf("no error for %s", tc.line)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			line := ErrorLineFor(Fail(PhaseProtocol, nil, err), PhaseLoad)
			if line.Phase != PhaseProtocol || line.Class != "invalid" {
				t.Errorf("error line %+v: want phase protocol, class invalid", line)
			}
		})
	}
}

// tracingRequest is what the runner sends for an fsession probe (the sessions
// builds) beside an fentry.multi probe (tracing.bpf.o, the probe's own object).
const tracingRequest = `{"protocol":1,"objects":{"noarg":"/abs/sessions.bpf.o","ctx":"/abs/sessions.ctx.bpf.o"},"probes":[
 {"name":"fs","program":"pc_fsession","kind":"fsession",
  "targets":[{"symbol":"do_sys_openat2","offset":0,"cookie":81}],"pid":{"scope":"all"}},
 {"name":"fm","program":"pc_fentry_multi","kind":"fentry.multi","object":"/abs/tracing.bpf.o",
  "targets":[{"symbol":"__x64_sys_close","offset":0,"cookie":17},{"symbol":"__x64_sys_dup","offset":0,"cookie":18}]}]}`

func TestDecodeTracingRequest(t *testing.T) {
	req, err := DecodeRequest(oneLine(tracingRequest))
	if err != nil {
		t.Fatal(err)
	}
	fs, fm := req.Probes[0], req.Probes[1]
	if !fs.Kind.Tracing() || fs.Kind.TracingMulti() || !fs.WantSession() || fs.WantRetprobe() || fs.Kind.User() || fs.Kind.SingleLink() {
		t.Errorf("fsession decoded as %+v", fs)
	}
	if !fm.Kind.Tracing() || !fm.Kind.TracingMulti() || fm.WantSession() || fm.WantRetprobe() || len(fm.Targets) != 2 {
		t.Errorf("fentry.multi decoded as %+v", fm)
	}
	for kind, ret := range map[Kind]bool{KindFentry: false, KindFexit: true, KindFsession: false,
		KindFentryMulti: false, KindFexitMulti: true, KindFsessionMulti: false} {
		if kind.ReturnOnly() != ret || kind.Session() != (kind == KindFsession || kind == KindFsessionMulti) {
			t.Errorf("%s: ReturnOnly %t, Session %t", kind, kind.ReturnOnly(), kind.Session())
		}
	}
	// The same rules as the libbpf harness's validate().
	for _, tc := range []struct{ name, from, to, want string }{
		{"fsession two targets", `"cookie":81}]`, `"cookie":81},{"symbol":"do_sys_open","offset":0,"cookie":1}]`,
			"kind fsession is bound to one kernel function at load: exactly one target (found 2)"},
		{"fsession session false", `"kind":"fsession",`, `"kind":"fsession","session":false,`,
			"kind fsession: fields session and retprobe must be absent or the kind's own (true, false)"},
		{"fentry.multi retprobe", `"kind":"fentry.multi",`, `"kind":"fentry.multi","retprobe":true,`, "must be absent or the kind's own (false, false)"},
		{"fexit retprobe false", `"kind":"fsession",`, `"kind":"fexit","retprobe":false,`, "kind fexit: fields session and retprobe must be absent or the kind's own (false, true)"},
		{"offset", `"symbol":"do_sys_openat2","offset":0`, `"symbol":"do_sys_openat2","offset":4`, "offset must be 0"},
		{"no symbol", `"symbol":"__x64_sys_dup"`, `"symbol":""`, "kind fentry.multi needs a kernel symbol"},
		{"binary", `"kind":"fsession",`, `"kind":"fsession","binary":"/bin/true",`, "binary must be absent"},
		{"pid", `"pid":{"scope":"all"}`, `"pid":{"scope":"pid","pid":5}`, "kind fsession has no pid filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := strings.Replace(tracingRequest, tc.from, tc.to, 1)
			if line == tracingRequest {
				t.Fatalf("%q not in the request", tc.from)
			}
			_, err := DecodeRequest(oneLine(line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// The kind's own values are accepted when given.
	line := strings.Replace(tracingRequest, `"kind":"fsession",`, `"kind":"fsession","session":true,"retprobe":false,`, 1)
	if _, err := DecodeRequest(oneLine(line)); err != nil {
		t.Errorf("fsession with session true, retprobe false: %v", err)
	}
}

// usdtRequest is what the runner sends for a usdt probe: its program lives
// in usdt_recorder.bpf.o, named by the probe's own object.
const usdtRequest = `{"protocol":1,"object":"/abs/recorders.bpf.o","probes":[
 {"name":"u","program":"pc_usdt","kind":"usdt","object":"/abs/usdt_recorder.bpf.o","binary":"/abs/probe-target",
  "targets":[{"symbol":"probeconf:args","offset":0,"cookie":119}],"pid":{"scope":"all"}}]}`

func TestDecodeUSDTRequest(t *testing.T) {
	req, err := DecodeRequest(oneLine(usdtRequest))
	if err != nil {
		t.Fatal(err)
	}
	if p := req.Probes[0]; p.Kind != KindUSDT || p.Object != "/abs/usdt_recorder.bpf.o" || p.Targets[0].Symbol != "probeconf:args" ||
		p.Targets[0].Cookie != 0x77 || !p.Kind.User() || p.Kind.SingleLink() || p.WantRetprobe() || p.WantSession() {
		t.Errorf("decoded %+v", p)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"no colon", `"symbol":"probeconf:args"`, `"symbol":"args"`, `symbol "args" must be provider:name`},
		{"empty provider", `"symbol":"probeconf:args"`, `"symbol":":args"`, "must be provider:name"},
		{"empty name", `"symbol":"probeconf:args"`, `"symbol":"probeconf:"`, "must be provider:name"},
		{"offset", `"offset":0`, `"offset":1`, "kind usdt: offset must be 0"},
		{"retprobe", `"kind":"usdt",`, `"kind":"usdt","retprobe":true,`, "field retprobe must be absent or false"},
		{"session", `"kind":"usdt",`, `"kind":"usdt","session":true,`, "field session must be absent or false"},
		{"no binary", `"binary":"/abs/probe-target",`, ``, "needs field binary"},
		{"relative object", `"object":"/abs/usdt_recorder.bpf.o"`, `"object":"usdt_recorder.bpf.o"`, `object "usdt_recorder.bpf.o": must be an absolute path`},
	} {
		_, err := DecodeRequest(oneLine(strings.Replace(usdtRequest, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, ok := range []string{`"kind":"usdt","retprobe":false,"session":false,`} {
		if _, err := DecodeRequest(oneLine(strings.Replace(usdtRequest, `"kind":"usdt",`, ok, 1))); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}

	// CheckObject checks a probe's own object like the request's.
	dir := t.TempDir()
	obj := filepath.Join(dir, "recorders.bpf.o")
	if err := os.WriteFile(obj, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	req = &Request{Protocol: 1, Object: obj, Probes: []Probe{{Name: "u", Kind: KindUSDT, Object: filepath.Join(dir, "usdt_recorder.bpf.o")}}}
	l := ErrorLineFor(Fail(PhaseProtocol, nil, req.CheckObject()), PhaseProtocol)
	if l.Class != "not-found" || l.Errno != int(syscall.ENOENT) || !strings.HasPrefix(l.Detail, "probe u: object: ") {
		t.Errorf("missing probe object: %+v", l)
	}
	req.Probes[0].Object = dir
	if l := ErrorLineFor(req.CheckObject(), PhaseProtocol); l.Class != "invalid" || !strings.Contains(l.Detail, "not a regular file") {
		t.Errorf("directory as probe object: %+v", l)
	}
	req.Probes[0].Object = obj
	if err := req.CheckObject(); err != nil {
		t.Errorf("probe object present: %v", err)
	}
}

func TestDecodeCommand(t *testing.T) {
	if _, err := DecodeCommand([]byte(`{"cmd":"drain"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"cmd":"stop"}`, `{"cmd":"drain","now":true}`, `drain`, ``} {
		if _, err := DecodeCommand([]byte(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestCheckObject(t *testing.T) {
	dir := t.TempDir()
	obj := filepath.Join(dir, "recorders.bpf.o")
	if err := os.WriteFile(obj, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	req := &Request{Protocol: 1, Object: filepath.Join(dir, "missing.o")}
	err := req.CheckObject()
	if line := ErrorLineFor(Fail(PhaseProtocol, nil, err), PhaseProtocol); line.Phase != PhaseProtocol || line.Class != "not-found" || line.Errno != int(syscall.ENOENT) {
		t.Errorf("missing object: %+v", line)
	}

	req = &Request{Protocol: 1, Object: dir}
	line := ErrorLineFor(req.CheckObject(), PhaseProtocol)
	if line.Class != "invalid" || !strings.Contains(line.Detail, "not a regular file") {
		t.Errorf("directory as object: %+v", line)
	}

	// Probed binaries are the library's to open, at attach: a missing one, a
	// directory or a text file passes here.
	req = &Request{Protocol: 1, Object: obj, Probes: []Probe{
		{Name: "u1", Kind: KindUprobe, Binary: filepath.Join(dir, "no-such-file")},
		{Name: "u2", Kind: KindUprobe, Binary: dir},
		{Name: "u3", Kind: KindUprobeSession, Binary: obj},
	}}
	if err := req.CheckObject(); err != nil {
		t.Errorf("CheckObject looked at the binaries: %v", err)
	}
}

func TestObjects(t *testing.T) {
	line := strings.Replace(goodRequest, `"object":"/abs/recorders.bpf.o",`, `"objects":{"noarg":"/abs/recorders.bpf.o","ctx":"/abs/recorders.ctx.bpf.o"},`, 1)
	req, err := DecodeRequest(oneLine(line))
	if err != nil {
		t.Fatal(err)
	}
	if req.Object != "" || req.Objects == nil || req.Objects.Path(VariantNoArg) != "/abs/recorders.bpf.o" ||
		req.Objects.Path(VariantCtx) != "/abs/recorders.ctx.bpf.o" || req.Objects.Path("none") != "" {
		t.Errorf("decoded %+v / %+v", req, req.Objects)
	}

	// CheckObject checks both builds, whichever the kernel will pick.
	dir := t.TempDir()
	noarg := filepath.Join(dir, "recorders.bpf.o")
	if err := os.WriteFile(noarg, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	req = &Request{Protocol: 1, Objects: &Objects{NoArg: noarg, Ctx: filepath.Join(dir, "recorders.ctx.bpf.o")}}
	l := ErrorLineFor(Fail(PhaseProtocol, nil, req.CheckObject()), PhaseProtocol)
	if l.Class != "not-found" || l.Errno != int(syscall.ENOENT) || !strings.HasPrefix(l.Detail, "objects.ctx: ") || l.ObjectVariant != "" {
		t.Errorf("missing ctx build: %+v", l)
	}
	req.Objects.Ctx = dir
	if l := ErrorLineFor(req.CheckObject(), PhaseProtocol); l.Class != "invalid" || !strings.Contains(l.Detail, "objects.ctx: ") {
		t.Errorf("directory as ctx build: %+v", l)
	}
	req.Objects.Ctx = noarg
	if err := req.CheckObject(); err != nil {
		t.Errorf("both builds present: %v", err)
	}
}

func TestRetprobeSessionFlags(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		kind              Kind
		retprobe, session *bool
		wantRet, wantSess bool
	}{
		{KindUprobe, nil, nil, false, false},
		{KindUretprobe, nil, nil, true, false},
		{KindUprobe, &yes, nil, true, false},
		{KindUretprobe, &no, &no, false, false},
		{KindUprobeMulti, nil, nil, false, false},
		{KindUretprobeMulti, nil, nil, true, false},
		{KindUprobeMulti, nil, &yes, false, true},
		{KindUprobeSession, nil, nil, false, true},
		{KindUprobeSession, &yes, nil, true, true},
		{KindUprobeSession, nil, &no, false, false},
		{KindKprobe, nil, nil, false, false},
		{KindKretprobe, nil, nil, true, false},
		{KindKprobeMulti, &yes, &yes, true, true},
		{KindKretprobeMulti, nil, nil, true, false},
		{KindKprobeSession, nil, nil, false, true},
		{KindKprobeSession, &yes, nil, true, true},
	} {
		p := Probe{Kind: tc.kind, Retprobe: tc.retprobe, Session: tc.session}
		if got := p.WantRetprobe(); got != tc.wantRet {
			t.Errorf("%s retprobe=%v session=%v: WantRetprobe %v, want %v", tc.kind, tc.retprobe, tc.session, got, tc.wantRet)
		}
		if got := p.WantSession(); got != tc.wantSess {
			t.Errorf("%s retprobe=%v session=%v: WantSession %v, want %v", tc.kind, tc.retprobe, tc.session, got, tc.wantSess)
		}
	}

	// The fields decode as given, and stay absent when absent.
	req, err := DecodeRequest(oneLine(strings.Replace(goodRequest, `"kind":"uprobe.session",`, `"kind":"uprobe.session","retprobe":true,"session":true,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s1 := req.Probes[0]; s1.Retprobe == nil || !*s1.Retprobe || s1.Session == nil || !*s1.Session || req.Probes[1].Retprobe != nil || req.Probes[1].Session != nil {
		t.Errorf("decoded %+v / %+v", s1, req.Probes[1])
	}
	// session: false is accepted on single kinds, and retprobe may flip them.
	single := strings.Replace(goodRequest, `"kind":"uprobe.session",`, `"kind":"uprobe","retprobe":true,"session":false,`, 1)
	if _, err := DecodeRequest(oneLine(single)); err != nil {
		t.Errorf("uprobe with retprobe true, session false: %v", err)
	}
}

func TestErrorLineEncoding(t *testing.T) {
	p := &Probe{Name: "s1", Kind: KindUprobeSession}
	err := Fail(PhaseAttach, p, fmt.Errorf("uprobe session link_create: %w", syscall.EINVAL))
	got, _ := json.Marshal(ErrorLineFor(fmt.Errorf("context: %w", err), PhaseProtocol))
	var line map[string]any
	if err := json.Unmarshal(got, &line); err != nil {
		t.Fatal(err)
	}
	if line["type"] != "error" || line["phase"] != "attach" || line["class"] != "invalid" ||
		line["probe"] != "s1" || line["errno"] != float64(22) {
		t.Errorf("error line %s", got)
	}
	if d := line["detail"].(string); !strings.HasPrefix(d, "uprobe session link_create: invalid argument (hint: kernel lacks UPROBE_SESSION") {
		t.Errorf("detail %q", d)
	}

	// Neither probe nor errno: both keys are omitted.
	got, _ = json.Marshal(ErrorLineFor(errors.New("stdin closed"), PhaseProtocol))
	if want := `{"type":"error","phase":"protocol","class":"other","detail":"stdin closed"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOutputLinesEncoding(t *testing.T) {
	ev, _ := json.Marshal(Events{Type: "events", Events: [][]byte{{1, 2, 3}}, Dropped: 2})
	if want := `{"type":"events","events":["AQID"],"dropped":2}`; string(ev) != want {
		t.Errorf("events: %s, want %s", ev, want)
	}
	at, _ := json.Marshal(Attached{Type: "attached", Probes: []AttachedProbe{{Name: "s1", Via: ViaNative}}})
	if want := `{"type":"attached","probes":[{"name":"s1","via":"native","bridge":""}]}`; string(at) != want {
		t.Errorf("attached: %s, want %s", at, want)
	}
	// With "objects": the picked build and why.
	choice := ObjectChoice{ObjectVariant: VariantNoArg, ObjectReason: "kernel BTF: bpf_session_cookie(void)"}
	at, _ = json.Marshal(Attached{Type: "attached", Probes: []AttachedProbe{{Name: "s1", Via: ViaNative}}, ObjectChoice: choice})
	if want := `{"type":"attached","probes":[{"name":"s1","via":"native","bridge":""}],"object_variant":"noarg","object_reason":"kernel BTF: bpf_session_cookie(void)"}`; string(at) != want {
		t.Errorf("attached: %s, want %s", at, want)
	}
	e, _ := json.Marshal(ErrorLine{Type: "error", Phase: PhaseLoad, Class: "invalid", Detail: "d", ObjectChoice: ObjectChoice{ObjectVariant: VariantCtx, ObjectReason: "r"}})
	if want := `{"type":"error","phase":"load","class":"invalid","detail":"d","object_variant":"ctx","object_reason":"r"}`; string(e) != want {
		t.Errorf("error: %s, want %s", e, want)
	}
}
