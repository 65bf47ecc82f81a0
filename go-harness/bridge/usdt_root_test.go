package bridge

// Root tests of the cilium-usdt bridge: load libbpf's USDT recorder
// (usdt_recorder.bpf.o) with cilium, attach it to the project's probe-target
// and read what the program recorded.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"probeconf/bridge/bridgetest"
)

// usdtEvent is the part of struct pc_event (ABI v2, 144 bytes) the tests read.
type usdtEvent struct {
	ProbeIndex, Tgid     uint32
	AttachCookie, FuncIP uint64
	Args                 [6]int64
	ArgCnt               int32
}

func decodeUSDTEvent(t *testing.T, raw []byte) usdtEvent {
	t.Helper()
	if len(raw) != 144 {
		t.Fatalf("event of %d bytes, want 144 (struct pc_event v2)", len(raw))
	}
	le := binary.LittleEndian
	e := usdtEvent{
		ProbeIndex: le.Uint32(raw[20:]), Tgid: le.Uint32(raw[24:]),
		AttachCookie: le.Uint64(raw[48:]), FuncIP: le.Uint64(raw[56:]),
		ArgCnt: int32(le.Uint32(raw[136:])),
	}
	for i, off := range []int{64, 72, 104, 112, 120, 128} {
		e.Args[i] = int64(le.Uint64(raw[off:]))
	}
	return e
}

// usdtInstance is one loaded copy of pc_usdt, as the harness's loader makes it.
type usdtInstance struct {
	coll *ebpf.Collection
	prog *ebpf.Program
	feat USDTFeatures
}

// loadUSDT loads pc_usdt through LoadCollectionSpec for feat; probeIndex
// goes into pc_cfg. The first instance's events/dropped maps are shared with
// the later ones through shared (nil for the first).
func loadUSDT(t *testing.T, object string, feat USDTFeatures, probeIndex uint32, shared map[string]*ebpf.Map) usdtInstance {
	t.Helper()
	var fixes SpecFixes
	spec, err := LoadCollectionSpec(object, &SpecOptions{USDTFeatures: &feat, Fixes: &fixes})
	if err != nil {
		t.Fatal(err)
	}
	// Two usdt programs: pc_usdt and its large-frame twin pc_usdt_large.
	if len(fixes.Kconfig) != 1 || len(fixes.USDTPrograms) != map[bool]int{true: 2, false: 0}[feat.UprobeMulti] {
		t.Errorf("fixes %+v: want LINUX_HAS_BPF_COOKIE filled and pc_usdt typed", fixes)
	}
	cfg := make([]byte, 32)
	binary.LittleEndian.PutUint32(cfg, probeIndex)
	if err := SetDataSection(spec, ".rodata.pc_cfg", cfg); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: shared})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			t.Logf("verifier: %+v", verr)
		}
		t.Fatalf("load pc_usdt (%v): %v", feat, err)
	}
	t.Cleanup(func() { coll.Close() })
	return usdtInstance{coll: coll, prog: coll.Programs["pc_usdt"], feat: feat}
}

// attach attaches the instance to provider:name (symbol) in binary.
func (in usdtInstance) attach(t *testing.T, binary string, pid uint32, symbol string, cookie uint64) *USDTLink {
	t.Helper()
	ex, err := link.OpenExecutable(binary)
	if err != nil {
		t.Fatal(err)
	}
	provider, name, _ := strings.Cut(symbol, ":")
	l, err := AttachUSDT(ex, provider, name, in.prog, &USDTOptions{PID: pid, Cookie: cookie, Features: &in.feat})
	if err != nil {
		t.Fatalf("attach %s: %v", symbol, err)
	}
	ul, ok := l.(*USDTLink)
	if !ok {
		t.Fatalf("AttachUSDT returned a %T, want *USDTLink", l)
	}
	t.Cleanup(func() { ul.Close() })
	return ul
}

// links are every link of l.
func (l *USDTLink) links() []link.Link { return append([]link.Link{l.usdtLinkBase}, l.rest...) }

// linkFD is a link's fd (cilium's links have FD(), the interface does not).
func linkFD(t *testing.T, l link.Link) int {
	t.Helper()
	fder, ok := l.(interface{ FD() int })
	if !ok {
		t.Fatalf("link %T has no FD()", l)
	}
	return fder.FD()
}

func (in usdtInstance) drain(t *testing.T) []usdtEvent {
	t.Helper()
	var out []usdtEvent
	for _, raw := range bridgetest.ReadRingbuf(t, in.coll.Maps["events"]) {
		out = append(out, decodeUSDTEvent(t, raw))
	}
	return out
}

// usdtSetup is what the attach tests need: usdt_recorder.bpf.o and
// probe-target (as root), and the kernel's features.
func usdtSetup(t *testing.T) (object, path string, feat USDTFeatures) {
	t.Helper()
	object = bridgetest.RequireUSDTObject(t)
	path = bridgetest.ProbeTargetFile(t)
	feat, err := ProbeUSDTFeatures()
	if err != nil {
		t.Fatal(err)
	}
	return object, path, feat
}

// entries counts the entries of a hash map.
func entries(m *ebpf.Map) int {
	n := 0
	var k uint64
	var v uint32
	for it := m.Iterate(); it.Next(&k, &v); {
		n++
	}
	return n
}

// wantArgs checks one probeconf:args event of `call usdt_args 3 4`.
func wantArgs(t *testing.T, what string, e usdtEvent, cookie uint64) {
	t.Helper()
	want := [6]int64{42, 3, 1234, -7, 65004, -3000}
	if e.Args != want || e.ArgCnt != 6 || e.AttachCookie != cookie {
		t.Errorf("%s: args %v arg_cnt %d cookie %#x; want %v, 6, %#x", what, e.Args, e.ArgCnt, e.AttachCookie, want, cookie)
	}
}

// TestUSDTFeaturesOnThisKernel: the 6.18 host has everything libbpf looks for.
func TestUSDTFeaturesOnThisKernel(t *testing.T) {
	bridgetest.RequireUSDTObject(t)
	feat, err := ProbeUSDTFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("USDT features: %v", feat)
	if major, minor := bridgetest.KernelVersion(t); major > 6 || major == 6 && minor >= 18 {
		if feat != allFeatures {
			t.Errorf("kernel %d.%d: %v, want every feature (cookies 5.15, uprobe_multi 6.6, uprobe syscall 6.18)", major, minor, feat)
		}
	}
}

// TestUSDTObjectNeedsEachFix: cilium fails the USDT recorder at each step
// the bridge fixes, and loads it with all of them, with either value of
// LINUX_HAS_BPF_COOKIE.
func TestUSDTObjectNeedsEachFix(t *testing.T) {
	object := bridgetest.RequireUSDTObject(t)
	load := func(edit func(*ebpf.CollectionSpec)) error {
		spec := parseOnly(t, object)
		for n := range spec.Programs {
			if n != "pc_usdt" {
				delete(spec.Programs, n)
			}
		}
		edit(spec)
		coll, err := ebpf.NewCollection(spec)
		if err == nil {
			coll.Close()
		}
		return err
	}
	// Without the kconfig fill: cilium's own resolution of the extern.
	err := load(func(*ebpf.CollectionSpec) {})
	if err == nil || !strings.Contains(err.Error(), "LINUX_HAS_BPF_COOKIE") {
		t.Errorf("without the .kconfig fill: %v; want cilium's failure to resolve LINUX_HAS_BPF_COOKIE", err)
	}
	t.Logf("cilium alone: %v", err)
	// Without static subprograms: the verifier checks bpf_usdt_arg as a global function.
	err = load(func(spec *ebpf.CollectionSpec) {
		for _, name := range []string{"bpf_usdt_arg", "bpf_usdt_arg_cnt", "bpf_usdt_cookie"} {
			var fn *btf.Func
			if spec.Types.TypeByName(name, &fn) == nil {
				fn.Linkage = btf.GlobalFunc
			}
		}
		if _, err := fillBPFCookieKconfig(spec, func() (bool, error) { return true, nil }); err != nil {
			t.Fatal(err)
		}
	})
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "mem_or_null") {
		t.Errorf("with global bpf_usdt_* subprograms: %v; want the verifier's mem_or_null rejection", err)
	}
	for _, has := range []bool{true, false} {
		feat := USDTFeatures{BPFCookie: has, UprobeMulti: has}
		err := load(func(spec *ebpf.CollectionSpec) {
			prepareUSDTSpec(spec.Programs["pc_usdt"], feat)
			if _, err := fillBPFCookieKconfig(spec, func() (bool, error) { return has, nil }); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Errorf("all fixes, %v: %v", feat, err)
		}
	}
}

// TestUSDTAttachArgsAndSemaphore: one uprobe_multi link per attachment; the
// six arguments of probeconf:args decoded with their signs and sizes, the
// user's cookie from bpf_usdt_cookie(), the spec map holding the encoded
// spec, and the semaphore set while attached.
func TestUSDTAttachArgsAndSemaphore(t *testing.T) {
	object, path, feat := usdtSetup(t)
	if !feat.UprobeMulti || !feat.BPFCookie {
		t.Skipf("kernel features %v: this test wants uprobe_multi and cookies (the fallbacks have their own)", feat)
	}
	in := loadUSDT(t, object, feat, 0, nil)
	// pid-scoped: other tests may run probe-target meanwhile.
	target := bridgetest.StartProbeTarget(t, path, "call usdt_args 3 4; sema; call usdt_sema 5")
	pid := uint32(target.Pid)
	args := in.attach(t, path, pid, "probeconf:args", 0x77)
	sema := in.attach(t, path, pid, "probeconf:sema", 0x5e)
	if !args.UprobeMulti() || len(args.links()) != 1 || !sema.UprobeMulti() {
		t.Fatalf("attachments %+v %+v: want one uprobe_multi link each", args, sema)
	}
	if info := bridgetest.ReadLinkInfo(t, linkFD(t, args.links()[0])); info.Type != bridgetest.LinkTypeUprobeMulti || info.MultiCount != 1 {
		t.Errorf("args link %+v", info)
	}
	if args.Sites()[0].SpecID != 0 || sema.Sites()[0].SpecID != 1 {
		t.Errorf("spec ids %d, %d: want 0 and 1 (handed out in order per object)", args.Sites()[0].SpecID, sema.Sites()[0].SpecID)
	}
	var stored []byte
	if err := in.coll.Maps[usdtSpecsMapName].Lookup(uint32(0), &stored); err != nil {
		t.Fatal(err)
	}
	spec, err := parseUSDTSpec("probeconf", "args", args.Sites()[0].Args, 0x77)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := spec.MarshalBinary(); !bytes.Equal(stored, want) {
		t.Errorf("spec #0 in the map: %x\nwant %x", stored, want)
	}
	if _, err := args.Info(); err != nil {
		t.Errorf("Info of a uprobe_multi USDT link: %v", err)
	}

	out := target.Go(t)
	if strings.Join(out, "|") != "observe sema=1" {
		t.Errorf("probe-target said %q, want the semaphore set (observe sema=1)", out)
	}
	events := in.drain(t)
	if len(events) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(events), events)
	}
	wantArgs(t, "probeconf:args", events[0], 0x77)
	if e := events[1]; e.Args[0] != 5 || e.ArgCnt != 1 || e.AttachCookie != 0x5e {
		t.Errorf("probeconf:sema: %+v, want arg 5, arg_cnt 1, cookie 0x5e", e)
	}

	// Detached, the semaphore drops back to 0.
	args.Close()
	sema.Close()
	if out := bridgetest.RunProbeTarget(t, path, "sema"); strings.Join(out, "|") != "observe sema=0" {
		t.Errorf("after detach: %q", out)
	}
}

// TestUSDTAttachFallbacks forces what libbpf does on older kernels: single
// perf-event uprobes (no uprobe_multi), with the spec id as each uprobe's
// cookie, or without BPF cookies through __bpf_usdt_ip_to_spec_id (the
// object loaded with LINUX_HAS_BPF_COOKIE = 0, runtime addresses of a PIE
// from a pid).
func TestUSDTAttachFallbacks(t *testing.T) {
	object := bridgetest.RequireUSDTObject(t)
	path := bridgetest.ProbeTargetFile(t)
	for _, tc := range []struct {
		name string
		feat USDTFeatures
	}{
		{"single uprobes", USDTFeatures{BPFCookie: true, SemaRefcnt: true, UprobeSyscall: true}},
		{"single uprobes without cookies", USDTFeatures{SemaRefcnt: true, UprobeSyscall: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := loadUSDT(t, object, tc.feat, 0, nil)
			target := bridgetest.StartProbeTarget(t, path, "call usdt_args 3 4; sema; call usdt_sema 5")
			pid := uint32(target.Pid)
			args := in.attach(t, path, pid, "probeconf:args", 0x77)
			sema := in.attach(t, path, pid, "probeconf:sema", 0x5e)
			for _, a := range []*USDTLink{args, sema} {
				if a.UprobeMulti() || len(a.links()) != len(a.Sites()) {
					t.Fatalf("%+v: want one uprobe per site", a)
				}
				info := bridgetest.ReadLinkInfo(t, linkFD(t, a.links()[0]))
				if info.Type != bridgetest.LinkTypePerfEvent || info.PerfEventType != bridgetest.PerfEventUprobe {
					t.Errorf("link %+v, want a perf-event uprobe", info)
				}
			}
			ipEntries := entries(in.coll.Maps[usdtIPToSpecMapName])
			if want := map[bool]int{true: 0, false: 2}[tc.feat.BPFCookie]; ipEntries != want {
				t.Errorf("%d entries in %s, want %d", ipEntries, usdtIPToSpecMapName, want)
			}
			if out := target.Go(t); strings.Join(out, "|") != "observe sema=1" {
				t.Errorf("probe-target said %q, want observe sema=1", out)
			}
			events := in.drain(t)
			if len(events) != 2 {
				t.Fatalf("%d events, want 2: %+v", len(events), events)
			}
			wantArgs(t, "probeconf:args", events[0], 0x77)
			if e := events[1]; e.Args[0] != 5 || e.AttachCookie != 0x5e || e.Tgid != pid {
				t.Errorf("probeconf:sema: %+v", e)
			}
			// Close forgets the addresses, as libbpf's detach does.
			args.Close()
			sema.Close()
			if n := entries(in.coll.Maps[usdtIPToSpecMapName]); n != 0 {
				t.Errorf("%d entries left in %s after Close", n, usdtIPToSpecMapName)
			}
		})
	}
}

// TestUSDTNop5SiteAddress: with the uprobe syscall, the probe on
// probeconf:nop5 sits at the note's pc + 1 (the nop5), as libbpf 1.7 puts
// it; probeconf:nop10 stays at the pc.
func TestUSDTNop5SiteAddress(t *testing.T) {
	object, path, feat := usdtSetup(t)
	if !feat.UprobeSyscall {
		t.Skipf("kernel features %v: no uprobe syscall, libbpf keeps the probe on the nop", feat)
	}
	in := loadUSDT(t, object, feat, 0, nil)
	target := bridgetest.StartProbeTarget(t, path, "call usdt_nop5 9; call usdt_nop10 8")
	nop5 := in.attach(t, path, uint32(target.Pid), "probeconf:nop5", 1).Sites()
	nop10 := in.attach(t, path, uint32(target.Pid), "probeconf:nop10", 2).Sites()
	base := loadBase(t, target.Pid, path)
	target.Go(t)
	events := in.drain(t)
	if len(events) != 2 {
		t.Fatalf("%d events: %+v", len(events), events)
	}
	pc5, pc10 := notePC(t, path, "nop5"), notePC(t, path, "nop10")
	if got := events[0].FuncIP - base; got != pc5+1 || nop5[0].Address != pc5+1 || !nop5[0].NopCombo || events[0].Args[0] != 9 {
		t.Errorf("probeconf:nop5 fired at pc %#x (arg %d, site %+v), want note pc %#x + 1", got, events[0].Args[0], nop5[0], pc5)
	}
	if got := events[1].FuncIP - base; got != pc10 || nop10[0].Address != pc10 || nop10[0].NopCombo || events[1].Args[0] != 8 {
		t.Errorf("probeconf:nop10 fired at pc %#x (arg %d, site %+v), want note pc %#x", got, events[1].Args[0], nop10[0], pc10)
	}
}

// notePC is the pc of probeconf:NAME's note in path.
func notePC(t *testing.T, path, name string) uint64 {
	t.Helper()
	_, ef := openELF(t, path)
	notes, err := parseUSDTNotes(ef, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		if n.Provider == "probeconf" && n.Name == name {
			return n.Loc
		}
	}
	t.Fatalf("no note probeconf:%s in %s", name, path)
	return 0
}

// loadBase is where pid mapped path's file offset 0 (a PIE's load base).
func loadBase(t *testing.T, pid int, path string) uint64 {
	t.Helper()
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(path)
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[5] == real && f[2] == "00000000" {
			lo, _, _ := strings.Cut(f[0], "-")
			v, _ := strconv.ParseUint(lo, 16, 64)
			return v
		}
	}
	t.Fatalf("%s not mapped in %d", real, pid)
	return 0
}

// TestUSDTAttachRefusesRIPRelative: probeconf:rip is refused before anything
// is attached, as libbpf refuses it.
func TestUSDTAttachRefusesRIPRelative(t *testing.T) {
	object, path, feat := usdtSetup(t)
	in := loadUSDT(t, object, feat, 0, nil)
	ex, err := link.OpenExecutable(path)
	if err != nil {
		t.Fatal(err)
	}
	before := bridgetest.BPFFDs(t)
	_, err = AttachUSDT(ex, "probeconf", "rip", in.prog, nil)
	if err == nil || !errors.Is(err, os.ErrInvalid) && !strings.Contains(err.Error(), "invalid argument") ||
		!strings.Contains(err.Error(), "-8@pc_usdt_global(%rip)") {
		t.Errorf("attach probeconf:rip: %v; want EINVAL naming the argument", err)
	}
	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] {
		t.Errorf("links before %v, after %v", before, after)
	}
}

// TestUSDTSpecIDsAreReused: spec ids freed by Close are handed out again, as
// libbpf reuses the ids of detached USDT links; ids of one map are shared by
// every attachment using it.
func TestUSDTSpecIDsAreReused(t *testing.T) {
	object, path, feat := usdtSetup(t)
	in := loadUSDT(t, object, feat, 0, nil)
	a := in.attach(t, path, 0, "probeconf:args", 1)
	b := in.attach(t, path, 0, "probeconf:sema", 2)
	if a.Sites()[0].SpecID != 0 || b.Sites()[0].SpecID != 1 {
		t.Fatalf("spec ids %d, %d: want 0, 1", a.Sites()[0].SpecID, b.Sites()[0].SpecID)
	}
	a.Close()
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	c := in.attach(t, path, 0, "probeconf:nop5", 3)
	if id := c.Sites()[0].SpecID; id != 0 {
		t.Errorf("after closing #0, the next attach got spec id %d, want 0 again", id)
	}
	b.Close()
	c.Close()
	// Everything closed: the allocator is gone, a new attach starts at 0.
	d := in.attach(t, path, 0, "probeconf:sema", 4)
	if id := d.Sites()[0].SpecID; id != 0 {
		t.Errorf("fresh attach after all closed: spec id %d, want 0", id)
	}
	specAllocators.mu.Lock()
	n := len(specAllocators.m)
	specAllocators.mu.Unlock()
	d.Close()
	specAllocators.mu.Lock()
	defer specAllocators.mu.Unlock()
	if len(specAllocators.m) != n-1 {
		t.Errorf("allocators: %d while attached, %d after Close: want one fewer", n, len(specAllocators.m))
	}
}
