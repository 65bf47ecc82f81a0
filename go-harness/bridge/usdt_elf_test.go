package bridge

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"probeconf/bridge/bridgetest"
)

// noteDesc builds a stapsdt note's description: pc, base, semaphore, then
// the strings as given (each NUL-terminated by the caller).
func noteDesc(loc, base, sema uint64, strs string) []byte {
	b := make([]byte, 24, 24+len(strs))
	binary.LittleEndian.PutUint64(b[0:], loc)
	binary.LittleEndian.PutUint64(b[8:], base)
	binary.LittleEndian.PutUint64(b[16:], sema)
	return append(b, strs...)
}

func TestParseUSDTNote(t *testing.T) {
	owner := []byte("stapsdt\x00")
	for _, tc := range []struct {
		name  string
		owner []byte
		typ   uint32
		desc  []byte
		want  usdtNote
		errno unix.Errno
	}{
		{name: "classic", owner: owner, typ: 3, desc: noteDesc(0x3fc8, 0x8a5e, 0, "probeconf\x00args\x00-4@$42 -8@%rdi\x00"),
			want: usdtNote{Provider: "probeconf", Name: "args", Args: "-4@$42 -8@%rdi", Loc: 0x3fc8, Base: 0x8a5e}},
		{name: "semaphore", owner: owner, typ: 3, desc: noteDesc(1, 2, 0xa138, "p\x00n\x00-8@%rdi\x00"),
			want: usdtNote{Provider: "p", Name: "n", Args: "-8@%rdi", Loc: 1, Base: 2, Sema: 0xa138}},
		{name: "no arguments", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00\x00"),
			want: usdtNote{Provider: "p", Name: "n", Loc: 1}},
		{name: "arguments starting with ':' read as none", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00:8@%rdi\x00"),
			want: usdtNote{Provider: "p", Name: "n", Loc: 1}},
		{name: "empty provider is fine", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "\x00n\x008@%rdi\x00"),
			want: usdtNote{Name: "n", Args: "8@%rdi", Loc: 1}},
		// strncmp over the note's name size: a zero-size name compares equal.
		{name: "zero-size owner passes libbpf's check", owner: nil, typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00\x00"),
			want: usdtNote{Provider: "p", Name: "n", Loc: 1}},
		{name: "other owner", owner: []byte("GNU\x00"), typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00\x00"), errno: unix.EINVAL},
		{name: "longer owner", owner: []byte("stapsdtx\x00"), typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00\x00"), errno: unix.EINVAL},
		{name: "other type", owner: owner, typ: 1, desc: noteDesc(1, 0, 0, "p\x00n\x00\x00"), errno: unix.EINVAL},
		{name: "too short", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00"), errno: unix.EINVAL},
		{name: "provider not terminated", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "provider"), errno: unix.EINVAL},
		{name: "empty name", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00\x00args\x00"), errno: unix.EINVAL},
		{name: "name not terminated", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00name"), errno: unix.EINVAL},
		{name: "no arguments string", owner: owner, typ: 3, desc: noteDesc(1, 0, 0, "p\x00n\x00"), errno: unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUSDTNote(tc.owner, tc.typ, tc.desc, binary.LittleEndian)
			if tc.errno != 0 {
				if !errors.Is(err, tc.errno) {
					t.Fatalf("error %v, want %v", err, tc.errno)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// sectionOffset translates a virtual address to a file offset through the
// section that holds it: the way the brief and readelf put it, independent
// of the segment walk the bridge does (as libbpf).
func sectionOffset(t *testing.T, ef *elf.File, addr uint64) (uint64, string) {
	t.Helper()
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Addr <= addr && addr < s.Addr+s.Size {
			return s.Offset + addr - s.Addr, s.Name
		}
	}
	t.Fatalf("no section holds %#x", addr)
	return 0, ""
}

func openELF(t *testing.T, path string) (*os.File, *elf.File) {
	t.Helper()
	f, ef, err := openUSDTBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ef.Close(); f.Close() })
	return f, ef
}

func symbolValue(t *testing.T, ef *elf.File, name string) uint64 {
	t.Helper()
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("no symbol %s", name)
	return 0
}

var allFeatures = USDTFeatures{BPFCookie: true, SemaRefcnt: true, UprobeMulti: true, UprobeSyscall: true}

// TestUSDTNotesOfProbeTarget reads the project's probe-target: its five
// sites, their argument strings, and where they are.
func TestUSDTNotesOfProbeTarget(t *testing.T) {
	bridgetest.RequireAMD64(t)
	path := bridgetest.ProbeTargetFile(t)
	_, ef := openELF(t, path)
	notes, err := parseUSDTNotes(ef, path)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]usdtNote{}
	for _, n := range notes {
		if n.Provider != "probeconf" {
			t.Errorf("note of provider %q", n.Provider)
		}
		byName[n.Name] = n
	}
	wantArgs := map[string]string{
		"args": probeTargetArgs, "rip": "-8@pc_usdt_global(%rip)", "sema": "-8@%rdi", "nop5": "8@%rdi", "nop10": "8@%rdi",
	}
	if len(notes) != len(wantArgs) {
		t.Errorf("%d notes, want %d: %+v", len(notes), len(wantArgs), notes)
	}
	base := sectionByName(ef, usdtBaseSection)
	for name, args := range wantArgs {
		n, ok := byName[name]
		if !ok {
			t.Errorf("no probeconf:%s note", name)
			continue
		}
		if n.Args != args {
			t.Errorf("probeconf:%s args %q, want %q", name, n.Args, args)
		}
		if base == nil || n.Base != base.Addr {
			t.Errorf("probeconf:%s base %#x, .stapsdt.base at %+v", name, n.Base, base)
		}
		if (n.Sema != 0) != (name == "sema") {
			t.Errorf("probeconf:%s semaphore %#x", name, n.Sema)
		}
	}
	// The hand-written sites sit at their functions' first byte (nops.S).
	for name, sym := range map[string]string{"nop5": "pc_usdt_nop5", "nop10": "pc_usdt_nop10"} {
		if v := symbolValue(t, ef, sym); byName[name].Loc != v {
			t.Errorf("probeconf:%s pc %#x, %s at %#x", name, byName[name].Loc, sym, v)
		}
	}
	if v := symbolValue(t, ef, "probeconf_sema_semaphore"); byName["sema"].Sema != v {
		t.Errorf("probeconf:sema semaphore %#x, probeconf_sema_semaphore at %#x", byName["sema"].Sema, v)
	}
}

func TestUSDTSitesOfProbeTarget(t *testing.T) {
	bridgetest.RequireAMD64(t)
	path := bridgetest.ProbeTargetFile(t)
	f, ef := openELF(t, path)
	one := func(name string, feat USDTFeatures, pid int) usdtSite {
		t.Helper()
		sites, err := collectUSDTSites(f, ef, path, pid, "probeconf", name, 0x77, feat)
		if err != nil {
			t.Fatalf("probeconf:%s: %v", name, err)
		}
		if len(sites) != 1 {
			t.Fatalf("probeconf:%s: %d sites", name, len(sites))
		}
		return sites[0]
	}

	args := one("args", allFeatures, -1)
	off, sec := sectionOffset(t, ef, args.Note.Loc)
	if sec != ".text" || args.RelIP != off || args.AbsIP != args.Note.Loc || args.SemaOff != 0 || args.NopCombo {
		t.Errorf("probeconf:args: %+v; want file offset %#x (%s), address = pc (PIE with cookies)", args, off, sec)
	}
	want, _ := parseUSDTSpec("probeconf", "args", probeTargetArgs, 0x77)
	if args.Spec != want {
		t.Errorf("probeconf:args spec %+v", args.Spec)
	}

	// The semaphore's ref_ctr_offset is its file offset: through its
	// segment (libbpf), which agrees with the section holding it (.probes).
	sema := one("sema", allFeatures, -1)
	semaOff, semaSec := sectionOffset(t, ef, sema.Note.Sema)
	if sema.SemaOff == 0 || sema.SemaOff != semaOff || semaSec != ".probes" {
		t.Errorf("probeconf:sema semaphore offset %#x, want %#x (%s)", sema.SemaOff, semaOff, semaSec)
	}

	// nop; nop5: moved to the nop5 with the uprobe syscall only.
	nop5 := one("nop5", allFeatures, -1)
	off, _ = sectionOffset(t, ef, nop5.Note.Loc)
	if !nop5.NopCombo || nop5.RelIP != off+1 || nop5.AbsIP != nop5.Note.Loc+1 {
		t.Errorf("probeconf:nop5 with the uprobe syscall: %+v, want file offset %#x+1", nop5, off)
	}
	noSyscall := allFeatures
	noSyscall.UprobeSyscall = false
	if s := one("nop5", noSyscall, -1); s.NopCombo || s.RelIP != off || s.AbsIP != s.Note.Loc {
		t.Errorf("probeconf:nop5 without the uprobe syscall: %+v, want file offset %#x", s, off)
	}
	// nop; nop10: never moved.
	nop10 := one("nop10", allFeatures, -1)
	off10, _ := sectionOffset(t, ef, nop10.Note.Loc)
	if nop10.NopCombo || nop10.RelIP != off10 {
		t.Errorf("probeconf:nop10: %+v, want file offset %#x", nop10, off10)
	}
	code := make([]byte, 6)
	if _, err := f.ReadAt(code, int64(off10)); err != nil || code[0] != 0x90 || bytes.Equal(code, nopCombo) {
		t.Errorf("probeconf:nop10 bytes % x: want a nop not followed by a nop5", code)
	}

	for _, tc := range []struct {
		name  string
		feat  USDTFeatures
		pid   int
		errno unix.Errno
		text  string
	}{
		{"rip", allFeatures, -1, unix.EINVAL, "unrecognized arg #0 spec '-8@pc_usdt_global(%rip)'"},
		{"nope", allFeatures, -1, unix.ENOENT, "no USDT site 'probeconf:nope'"},
		{"sema", USDTFeatures{BPFCookie: true}, -1, unix.EOPNOTSUPP, "semaphore refcounting"},
		// PIE without BPF cookies: the ip map needs runtime addresses, so a pid.
		{"args", USDTFeatures{SemaRefcnt: true}, -1, unix.EOPNOTSUPP, "without specific PID"},
	} {
		_, err := collectUSDTSites(f, ef, path, tc.pid, "probeconf", tc.name, 0, tc.feat)
		if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("probeconf:%s %v: %v, want %v with %q", tc.name, tc.feat, err, tc.errno, tc.text)
		}
		// What the kernel lacks is ErrNotSupported too; a bad input is not.
		if unsupported := tc.errno == unix.EOPNOTSUPP; errors.Is(err, ErrNotSupported) != unsupported {
			t.Errorf("probeconf:%s %v: %v: errors.Is(ErrNotSupported) = %v, want %v", tc.name, tc.feat, err, !unsupported, unsupported)
		}
	}
}

// TestUSDTSitesWithoutCookieUseRuntimeAddresses: on a kernel without BPF
// cookies a PIE's sites are keyed by their runtime address in the ip map,
// from /proc/PID/maps.
func TestUSDTSitesWithoutCookieUseRuntimeAddresses(t *testing.T) {
	bridgetest.RequireAMD64(t)
	path := bridgetest.ProbeTargetFile(t)
	f, ef := openELF(t, path)
	target := bridgetest.StartProbeTarget(t, path, "call usdt_args 1 1")
	sites, err := collectUSDTSites(f, ef, path, target.Pid, "probeconf", "args", 0, USDTFeatures{SemaRefcnt: true})
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(target.Pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(path)
	var loadBase uint64
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 6 && fields[5] == real && fields[2] == "00000000" {
			lo, _, _ := strings.Cut(fields[0], "-")
			loadBase, _ = strconv.ParseUint(lo, 16, 64)
			break
		}
	}
	if loadBase == 0 {
		t.Fatalf("%s not mapped at offset 0 in\n%s", real, maps)
	}
	if s := sites[0]; s.AbsIP != loadBase+s.Note.Loc || s.RelIP != s.Note.Loc {
		t.Errorf("site %+v: want address %#x (load base %#x + pc)", s, loadBase+s.Note.Loc, loadBase)
	}
	target.Go(t)
}

func TestParseMaps(t *testing.T) {
	const maps = `55d0c0000000-55d0c0001000 r--p 00000000 08:01 123 /opt/app/bin
55d0c0001000-55d0c0004000 r-xp 00001000 08:01 123 /opt/app/bin
55d0c0004000-55d0c0005000 r-xp 00004000 08:01 124 /opt/app/bin2
7f0000000000-7f0000002000 r-xp 00002000 08:01 125     /opt/app/with space
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
`
	segs, err := parseMaps(strings.NewReader(maps), "/opt/app/bin")
	if err != nil || len(segs) != 1 || segs[0] != (elfSeg{start: 0x55d0c0001000, end: 0x55d0c0004000, offset: 0x1000, exec: true}) {
		t.Fatalf("%+v, %v", segs, err)
	}
	if s := findVMASeg(segs, 0x3fc8); s == nil || s.start-s.offset+0x3fc8 != 0x55d0c0003fc8 {
		t.Errorf("find 0x3fc8: %+v", s)
	}
	if s := findVMASeg(segs, 0x4000); s != nil {
		t.Errorf("0x4000 is past the mapping: %+v", s)
	}
	if segs, _ := parseMaps(strings.NewReader(maps), "/opt/app/with space"); len(segs) != 1 {
		t.Errorf("path with a blank: %+v", segs)
	}
}

// usdtDemoSrc has sys/sdt.h sites (every one with a semaphore: sys/sdt.h
// turns them on per file): demo:guarded, and demo:twice three times, two of
// them identical (one spec between them), one with other arguments.
const usdtDemoSrc = `
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
unsigned short demo_guarded_semaphore __attribute__((unused, section(".probes")));
unsigned short demo_twice_semaphore __attribute__((unused, section(".probes")));
volatile long sink;
__attribute__((noinline)) long f(long a) {
	if (demo_guarded_semaphore)
		STAP_PROBE1(demo, guarded, a);
	STAP_PROBE1(demo, twice, a);
	sink = a;
	STAP_PROBE1(demo, twice, a);
	STAP_PROBE2(demo, twice, a, 7);
	return a;
}
int main(int argc, char **argv) { (void)argv; return (int)f(argc); }
`

// TestUSDTSitesNonPIE: in a non-PIE executable virtual addresses and file
// offsets differ; pc, semaphore and prelink adjustment are checked against
// the sections, and identical argument strings share a spec id.
func TestUSDTSitesNonPIE(t *testing.T) {
	bridgetest.RequireAMD64(t)
	gcc := bridgetest.RequireGCC(t)
	if _, err := os.Stat("/usr/include/x86_64-linux-gnu/sys/sdt.h"); err != nil {
		if _, err := os.Stat("/usr/include/sys/sdt.h"); err != nil {
			t.Skip("no sys/sdt.h (systemtap-sdt-dev)")
		}
	}
	dir := t.TempDir()
	path := bridgetest.BuildC(t, gcc, dir, "usdt-demo", usdtDemoSrc, "-no-pie")
	f, ef := openELF(t, path)
	if ef.Type != elf.ET_EXEC {
		t.Fatalf("built %v, want ET_EXEC", ef.Type)
	}
	collect := func(f *os.File, ef *elf.File, name string, feat USDTFeatures) []usdtSite {
		t.Helper()
		sites, err := collectUSDTSites(f, ef, path, -1, "demo", name, 5, feat)
		if err != nil {
			t.Fatal(err)
		}
		return sites
	}

	g := collect(f, ef, "guarded", allFeatures)[0]
	pcOff, _ := sectionOffset(t, ef, g.Note.Loc)
	semaOff, semaSec := sectionOffset(t, ef, g.Note.Sema)
	if g.Note.Loc == pcOff {
		t.Fatalf("pc %#x equals its file offset: not the non-PIE layout this test needs", g.Note.Loc)
	}
	if g.RelIP != pcOff || g.AbsIP != g.Note.Loc || g.SemaOff != semaOff || semaSec != ".probes" {
		t.Errorf("demo:guarded %+v: want file offset %#x, address %#x, semaphore offset %#x", g, pcOff, g.Note.Loc, semaOff)
	}
	// Non-PIE without cookies: the address is the link-time one, no pid needed.
	if s := collect(f, ef, "guarded", USDTFeatures{SemaRefcnt: true})[0]; s.AbsIP != g.Note.Loc {
		t.Errorf("ET_EXEC without cookies: address %#x, want the pc %#x", s.AbsIP, g.Note.Loc)
	}

	twice := collect(f, ef, "twice", allFeatures)
	if len(twice) != 3 {
		t.Fatalf("demo:twice: %d sites, want 3", len(twice))
	}
	m := &specAllocator{next: 4, limit: 256}
	var taken []uint32
	isNew, err := m.assign(twice, &taken)
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint32{twice[0].SpecID, twice[1].SpecID, twice[2].SpecID}
	if twice[0].Note.Args == twice[1].Note.Args {
		if ids[0] != 4 || ids[1] != 4 || ids[2] != 5 || !isNew[0] || isNew[1] || !isNew[2] || m.next != 6 || fmt.Sprint(taken) != "[4 5]" {
			t.Errorf("spec ids %v (new %v, next %d, taken %v) for args %q %q %q: want 4 4 5",
				ids, isNew, m.next, taken, twice[0].Note.Args, twice[1].Note.Args, twice[2].Note.Args)
		}
	} else {
		t.Logf("gcc gave the two identical sites different specs (%q, %q): ids %v", twice[0].Note.Args, twice[1].Note.Args, ids)
	}
	full := &specAllocator{next: 256, limit: 256}
	if _, err := full.assign(twice, &taken); err == nil {
		t.Error("spec id 256 handed out")
	}
	// A freed id is handed out before a new one.
	reuse := &specAllocator{next: 6, limit: 256, free: []uint32{2}}
	if _, err := reuse.assign(twice[2:], &taken); err != nil || twice[2].SpecID != 2 || reuse.next != 6 {
		t.Errorf("with id 2 free: got %d (next %d), %v; want 2", twice[2].SpecID, reuse.next, err)
	}

	// Prelink: .stapsdt.base moved by 0x10 moves the pc (not the semaphore).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var idx int
	for i, s := range ef.Sections {
		if s.Name == usdtBaseSection {
			idx = i
		}
	}
	if idx == 0 {
		t.Fatal("no .stapsdt.base")
	}
	shdr := int(binary.LittleEndian.Uint64(raw[0x28:])) + idx*int(binary.LittleEndian.Uint16(raw[0x3a:]))
	binary.LittleEndian.PutUint64(raw[shdr+16:], binary.LittleEndian.Uint64(raw[shdr+16:])+0x10) // sh_addr
	moved := filepath.Join(dir, "usdt-demo-prelinked")
	if err := os.WriteFile(moved, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	mf, mef := openELF(t, moved)
	pm := collect(mf, mef, "guarded", allFeatures)[0]
	if pm.AbsIP != g.AbsIP+0x10 || pm.RelIP != g.RelIP+0x10 || pm.SemaOff != g.SemaOff {
		t.Errorf("prelinked: %+v, want pc and offset +0x10 and the same semaphore offset as %+v", pm, g)
	}
}

func TestOpenUSDTBinaryRefusals(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		errno unix.Errno
	}{
		{filepath.Join(dir, "missing"), unix.ENOENT},
		{text, unix.EBADF},
		{dir, unix.EBADF},
	} {
		_, _, err := openUSDTBinary(tc.path)
		if !errors.Is(err, tc.errno) {
			t.Errorf("%s: %v, want %v", tc.path, err, tc.errno)
		}
	}
	// A relocatable object (a BPF object, say) is neither ET_EXEC nor ET_DYN.
	if object := os.Getenv(bridgetest.ObjectEnv); object != "" {
		if _, _, err := openUSDTBinary(object); !errors.Is(err, unix.EBADF) {
			t.Errorf("%s: %v, want EBADF", object, err)
		}
	}
}
