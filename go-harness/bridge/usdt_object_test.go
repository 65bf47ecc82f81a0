package bridge

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/bridge/bridgetest"
)

// TestLoadCollectionSpecFixesUSDTObject pins what cilium cannot parse in the
// USDT recorder (weak maps) and what the bridge changes: the two maps'
// binding and the three hidden subprograms' linkage, nothing for the
// kprobe/uprobe recorders.
func TestLoadCollectionSpecFixesUSDTObject(t *testing.T) {
	object := bridgetest.USDTObjectFile(t)
	if _, err := ebpf.LoadCollectionSpec(object); err == nil || !strings.Contains(err.Error(), "unsupported binding: STB_WEAK") {
		t.Errorf("cilium's own LoadCollectionSpec: %v; want the STB_WEAK refusal (if cilium now loads weak maps, revisit the bridge)", err)
	}
	feat := USDTFeatures{BPFCookie: true, UprobeMulti: true}
	var fixes SpecFixes
	spec, err := LoadCollectionSpec(object, &SpecOptions{USDTFeatures: &feat, Fixes: &fixes})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fixes.WeakMaps, ","); got != "__bpf_usdt_ip_to_spec_id,__bpf_usdt_specs" {
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
	if ps := spec.Programs["pc_usdt"]; ps == nil || ps.SectionName != "usdt" || !isUSDTSection(ps.SectionName) ||
		ps.Type != ebpf.Kprobe || ps.AttachType != ebpf.AttachType(attachTraceUprobeMulti) {
		t.Fatalf("pc_usdt: %+v", ps)
	}
	// pc_usdt_large: the recorder's deliberate large-frame twin (cases/findings/).
	if got := strings.Join(fixes.USDTPrograms, ",") + " " + strings.Join(fixes.Kconfig, ","); got != "pc_usdt,pc_usdt_large LINUX_HAS_BPF_COOKIE=true" {
		t.Errorf("typed programs and kconfig %q", got)
	}
	if _, ok := spec.Maps[kconfigMapName]; !ok {
		t.Errorf("no %s map after the fill", kconfigMapName)
	}

	// From a reader, the same; the kprobe/uprobe recorders need nothing, and
	// the kernel is not asked (the features are not probed: a nil option
	// with an object that needs none).
	if recorders := bridgetest.RequireObjectFile(t); recorders != "" {
		f, err := os.Open(recorders)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var fixes SpecFixes
		if _, err := LoadCollectionSpecFromReader(f, &SpecOptions{Fixes: &fixes}); err != nil || fixes.Any() {
			t.Errorf("%s: fixes %+v, %v; want none", recorders, fixes, err)
		}
	}
}

// parseOnly is LoadCollectionSpec's ELF half (weak symbols, hidden
// subprograms), without the kconfig fill and the program typing.
func parseOnly(t *testing.T, object string) *ebpf.CollectionSpec {
	t.Helper()
	buf, err := os.ReadFile(object)
	if err != nil {
		t.Fatal(err)
	}
	spec, _, err := parseObject(buf)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestPrepareUSDTSpec(t *testing.T) {
	for _, tc := range []struct {
		section string
		multi   bool
		want    ebpf.AttachType
		usdt    bool
	}{
		{"usdt", true, ebpf.AttachType(attachTraceUprobeMulti), true},
		{"usdt", false, ebpf.AttachNone, true},
		{"usdt/bin:p:n", true, ebpf.AttachType(attachTraceUprobeMulti), true},
		{"usdt.s", true, ebpf.AttachType(attachTraceUprobeMulti), true},
		{"usdtx", true, ebpf.AttachNone, false},
		{"uprobe", true, ebpf.AttachNone, false},
	} {
		ps := &ebpf.ProgramSpec{SectionName: tc.section, Type: ebpf.Kprobe}
		changed := prepareUSDTSpec(ps, USDTFeatures{UprobeMulti: tc.multi})
		if isUSDTSection(tc.section) != tc.usdt || ps.AttachType != tc.want || changed != (tc.want != ebpf.AttachNone || tc.section == "usdt.s") {
			t.Errorf("%s multi=%v: usdt %v, attach type %v, changed %v", tc.section, tc.multi, isUSDTSection(tc.section), ps.AttachType, changed)
		}
	}
}

// TestFillBPFCookieKconfig: every load cilium tagged as reading .kconfig
// becomes a plain load from the bridge's ".kconfig" map, keeping line info
// and func info, and the map holds the answer.
func TestFillBPFCookieKconfig(t *testing.T) {
	object := bridgetest.USDTObjectFile(t)
	for _, has := range []bool{true, false} {
		spec := parseOnly(t, object)
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
		filled, err := fillBPFCookieKconfig(spec, func() (bool, error) { asked = true; return has, nil })
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
	if recorders := bridgetest.RequireObjectFile(t); recorders != "" {
		spec := parseOnly(t, recorders)
		filled, err := fillBPFCookieKconfig(spec, func() (bool, error) { return false, errors.New("must not be asked") })
		if err != nil || filled {
			t.Errorf("recorders: filled %v, %v", filled, err)
		}
	}
}
