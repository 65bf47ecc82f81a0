package compat

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/go-harness/internal/testutil"
)

// TestLoadCollectionSpecFixesUSDTObject pins what cilium cannot parse in the
// USDT recorder (weak maps) and what the bridge changes: the two maps'
// binding and the three hidden subprograms' linkage, nothing for the
// kprobe/uprobe recorders.
func TestLoadCollectionSpecFixesUSDTObject(t *testing.T) {
	object := testutil.USDTObjectFile(t)
	if _, err := ebpf.LoadCollectionSpec(object); err == nil || !strings.Contains(err.Error(), "unsupported binding: STB_WEAK") {
		t.Errorf("cilium's own LoadCollectionSpec: %v; want the STB_WEAK refusal (if cilium now loads weak maps, revisit the bridge)", err)
	}
	spec, fixes, err := LoadCollectionSpec(object)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fixes.ReboundMaps, ","); got != "__bpf_usdt_ip_to_spec_id,__bpf_usdt_specs" {
		t.Errorf("rebound maps %q", got)
	}
	if got := strings.Join(fixes.StaticFuncs, ","); got != "bpf_usdt_arg,bpf_usdt_arg_cnt,bpf_usdt_cookie" {
		t.Errorf("static funcs %q", got)
	}
	for _, name := range []string{"bpf_usdt_arg", "bpf_usdt_arg_cnt", "bpf_usdt_cookie"} {
		var fn *btf.Func
		if err := spec.Types.TypeByName(name, &fn); err != nil || fn.Linkage != btf.StaticFunc {
			t.Errorf("BTF FUNC %s: %v, %v; want static linkage", name, fn, err)
		}
	}
	if ps := spec.Programs["pc_usdt"]; ps == nil || ps.SectionName != "usdt" || !IsUSDTSection(ps.SectionName) {
		t.Fatalf("pc_usdt: %+v", ps)
	}

	if recorders := testutil.RequireObjectFile(t); recorders != "" {
		_, fixes, err := LoadCollectionSpec(recorders)
		if err != nil || fixes.Any() {
			t.Errorf("%s: fixes %+v, %v; want none", recorders, fixes, err)
		}
	}
}

func TestPrepareUSDTSpec(t *testing.T) {
	for _, tc := range []struct {
		section string
		multi   bool
		want    ebpf.AttachType
		usdt    bool
	}{
		{"usdt", true, ebpf.AttachType(AttachTraceUprobeMulti), true},
		{"usdt", false, ebpf.AttachNone, true},
		{"usdt/bin:p:n", true, ebpf.AttachType(AttachTraceUprobeMulti), true},
		{"usdt.s", true, ebpf.AttachType(AttachTraceUprobeMulti), true},
		{"usdtx", true, ebpf.AttachNone, false},
		{"uprobe", true, ebpf.AttachNone, false},
	} {
		ps := &ebpf.ProgramSpec{SectionName: tc.section, Type: ebpf.Kprobe}
		changed := PrepareUSDTSpec(ps, USDTFeatures{UprobeMulti: tc.multi})
		if IsUSDTSection(tc.section) != tc.usdt || ps.AttachType != tc.want || changed != (tc.want != ebpf.AttachNone || tc.section == "usdt.s") {
			t.Errorf("%s multi=%v: usdt %v, attach type %v, changed %v", tc.section, tc.multi, IsUSDTSection(tc.section), ps.AttachType, changed)
		}
	}
}

// TestFillBPFCookieKconfig: every load cilium tagged as reading .kconfig
// becomes a plain load from the bridge's ".kconfig" map, keeping line info
// and func info, and the map holds the answer.
func TestFillBPFCookieKconfig(t *testing.T) {
	object := testutil.USDTObjectFile(t)
	for _, has := range []bool{true, false} {
		spec, _, err := LoadCollectionSpec(object)
		if err != nil {
			t.Fatal(err)
		}
		ps := spec.Programs["pc_usdt"]
		var before []int
		sources := map[int]string{}
		for i := range ps.Instructions {
			if _, ok, err := kconfigLoadOffset(&ps.Instructions[i]); err != nil {
				t.Fatal(err)
			} else if ok {
				before = append(before, i)
				if src := ps.Instructions[i].Source(); src != nil {
					sources[i] = src.String()
				}
			}
		}
		if len(before) == 0 {
			t.Fatal("no instruction reads .kconfig: cilium changed its tagging, or the object")
		}
		asked := false
		filled, err := FillBPFCookieKconfig(spec, func() (bool, error) { asked = true; return has, nil })
		if err != nil || !filled || !asked {
			t.Fatalf("filled %v, asked %v, %v", filled, asked, err)
		}
		for _, i := range before {
			ins := &ps.Instructions[i]
			if _, ok, _ := kconfigLoadOffset(ins); ok || ins.Reference() != kconfigMapName || !ins.IsLoadFromMap() {
				t.Errorf("instruction %d after the fill: %v (reference %q)", i, ins, ins.Reference())
			}
			if src := ins.Source(); sources[i] != "" && (src == nil || src.String() != sources[i]) {
				t.Errorf("instruction %d lost its line info %q", i, sources[i])
			}
		}
		m := spec.Maps[kconfigMapName]
		if m == nil || len(m.Contents) != 1 {
			t.Fatalf(".kconfig map %+v", m)
		}
		want := byte(0)
		if has {
			want = 1
		}
		if v := m.Contents[0].Value.([]byte); len(v) != int(m.ValueSize) || v[0] != want {
			t.Errorf(".kconfig contents %v, want LINUX_HAS_BPF_COOKIE = %d", v, want)
		}
		t.Logf("LINUX_HAS_BPF_COOKIE=%v: %d loads retargeted to %s", has, len(before), kconfigMapName)
	}

	// The kprobe/uprobe recorders have no .kconfig: nothing asked, nothing changed.
	if recorders := testutil.RequireObjectFile(t); recorders != "" {
		spec, _, err := LoadCollectionSpec(recorders)
		if err != nil {
			t.Fatal(err)
		}
		filled, err := FillBPFCookieKconfig(spec, func() (bool, error) { return false, errors.New("must not be asked") })
		if err != nil || filled {
			t.Errorf("recorders: filled %v, %v", filled, err)
		}
	}
}
