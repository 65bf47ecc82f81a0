package bridge

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/bridge/bridgetest"
)

// syntheticSpec marshals types into raw BTF and parses it back, so the
// decision runs on a btf.Spec like the kernel's. The Builder's zero value is
// used (documented as usable) because NewBuilder's signature changed in
// v0.21.0 and the harness builds against v0.17.3 too.
func syntheticSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	var b btf.Builder
	for _, typ := range types {
		if _, err := b.Add(typ); err != nil {
			t.Fatalf("add %v: %v", typ, err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestSessionKfuncPrototypeOf(t *testing.T) {
	u64 := &btf.Int{Name: "unsigned long long", Size: 8}
	cookie := &btf.Pointer{Target: u64}
	voidPtr := &btf.Pointer{Target: &btf.Void{}}
	boolT := &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	kfunc := func(name string, ret btf.Type, params ...btf.FuncParam) *btf.Func {
		return &btf.Func{Name: name, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: ret, Params: params}}
	}
	ctx := btf.FuncParam{Name: "ctx", Type: voidPtr}
	other := kfunc("bpf_get_attach_cookie_like", u64)

	for _, tc := range []struct {
		name       string
		types      []btf.Type
		want       KfuncVariant
		object     KfuncVariant
		reasonHas  string
		nilTheSpec bool
	}{
		{"6.10-6.19: no parameter",
			[]btf.Type{kfunc("bpf_session_is_return", boolT), kfunc(SessionKfuncFunc, cookie), other},
			KfuncNoArg, KfuncNoArg, "bpf_session_cookie(void)", false},
		{"7.0 on: void *ctx",
			[]btf.Type{kfunc("bpf_session_is_return", boolT, ctx), kfunc(SessionKfuncFunc, cookie, ctx)},
			KfuncCtx, KfuncCtx, "bpf_session_cookie(void *ctx)", false},
		{"no session kfuncs (< 6.10, or CONFIG_FPROBE unset)", []btf.Type{other},
			KfuncNone, KfuncNoArg, "has no bpf_session_cookie", false},
		{"a struct of that name is not the kfunc", []btf.Type{&btf.Struct{Name: SessionKfuncFunc, Size: 8}},
			KfuncNone, KfuncNoArg, "has no bpf_session_cookie", false},
		{"unknown prototype", []btf.Type{kfunc(SessionKfuncFunc, cookie, ctx, btf.FuncParam{Name: "flags", Type: u64})},
			KfuncNone, KfuncNoArg, "2 parameters", false},
		{"no kernel BTF", nil, KfuncNone, KfuncNoArg, "no kernel BTF", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec *btf.Spec
			if !tc.nilTheSpec {
				spec = syntheticSpec(t, tc.types...)
			}
			got, reason := SessionKfuncPrototypeOf(spec)
			if got != tc.want || !strings.Contains(reason, tc.reasonHas) {
				t.Errorf("SessionKfuncPrototypeOf = %s (%q), want %s with %q", got, reason, tc.want, tc.reasonHas)
			}
			if obj := ObjectVariant(got); obj != tc.object {
				t.Errorf("ObjectVariant(%s) = %s, want %s", got, obj, tc.object)
			}
		})
	}
}

// TestSessionKfuncPrototypeKernel reads the running kernel's BTF: no-argument
// kfuncs on 6.10 to 6.19 (the 6.18 test host), ctx from 7.0. The object of
// the chosen variant must then load its session program, the other must not.
func TestSessionKfuncPrototypeKernel(t *testing.T) {
	noarg, ctx := bridgetest.RequireObjectPair(t)
	got, reason := SessionKfuncPrototype()
	t.Logf("kernel session kfuncs: %s (%s)", got, reason)
	major, minor := bridgetest.KernelVersion(t)
	var want KfuncVariant
	switch {
	case major > 6:
		want = KfuncCtx
	case major == 6 && minor >= 13: // uprobe sessions, which these tests need anyway
		want = KfuncNoArg
	default:
		t.Skipf("kernel %d.%d: no uprobe sessions; prototype %s (%s)", major, minor, got, reason)
	}
	if got != want {
		t.Fatalf("kernel %d.%d: session kfuncs %s (%s), want %s", major, minor, got, reason, want)
	}

	objects := map[KfuncVariant]string{KfuncNoArg: noarg, KfuncCtx: ctx}
	for variant, path := range objects {
		spec, err := ebpf.LoadCollectionSpec(path)
		if err != nil {
			t.Fatal(err)
		}
		for name := range spec.Programs {
			if name != "pc_uprobe_session" {
				delete(spec.Programs, name)
			}
		}
		PrepareUprobeSessionSpec(spec.Programs["pc_uprobe_session"])
		coll, err := ebpf.NewCollection(spec)
		if coll != nil {
			coll.Close()
		}
		switch {
		case variant == ObjectVariant(got) && err != nil:
			t.Errorf("%s build (%s), chosen for this kernel: load: %v", variant, path, err)
		case variant != ObjectVariant(got) && err == nil:
			t.Errorf("%s build (%s), not chosen for this kernel, loads its session program", variant, path)
		}
	}
}
