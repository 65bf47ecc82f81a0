package bridge

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// What cilium/ebpf cannot load in an object built with libbpf's usdt.bpf.h,
// and how the bridge makes it loadable without changing what the program does.

// SpecOptions are the options of LoadCollectionSpec. The zero value (or nil)
// probes the running kernel.
type SpecOptions struct {
	// USDTFeatures are the kernel features USDT programs are prepared for
	// (the value of LINUX_HAS_BPF_COOKIE, and the expected attach type of
	// SEC("usdt") programs). Nil: ProbeUSDTFeatures, asked only when the
	// object needs them. AttachUSDT must see the same features.
	USDTFeatures *USDTFeatures
	// Fixes, when not nil, is filled with what LoadCollectionSpec changed,
	// for logs.
	Fixes *SpecFixes
}

// SpecFixes says what LoadCollectionSpec changed to make cilium load an
// object the way libbpf loads it. Every list is sorted.
type SpecFixes struct {
	// WeakMaps are map symbols bound STB_WEAK, read as STB_GLOBAL.
	WeakMaps []string
	// WeakFuncs are subprograms bound STB_WEAK, read as STB_GLOBAL (cilium
	// before v0.21.0 refuses calls to them).
	WeakFuncs []string
	// StaticFuncs are hidden global subprograms whose BTF FUNC linkage was
	// made static.
	StaticFuncs []string
	// Kconfig are the libbpf-only kconfig externs the bridge filled, as
	// NAME=VALUE (only LINUX_HAS_BPF_COOKIE exists).
	Kconfig []string
	// UprobeSessions are the SEC("uprobe.session") programs typed Kprobe
	// with AttachTraceUprobeSession (cilium before v0.21.0 does not).
	UprobeSessions []string
	// USDTPrograms are the SEC("usdt") programs typed as libbpf types them:
	// Kprobe, expected attach type UPROBE_MULTI when the kernel has
	// uprobe_multi links (none otherwise).
	USDTPrograms []string
}

// Any reports whether anything was changed.
func (f *SpecFixes) Any() bool {
	return len(f.WeakMaps)+len(f.WeakFuncs)+len(f.StaticFuncs)+len(f.Kconfig)+len(f.UprobeSessions)+len(f.USDTPrograms) > 0
}

// LoadCollectionSpec is ebpf.LoadCollectionSpec for objects built the way
// libbpf loads them: it parses the ELF file at path with cilium, after
// applying what libbpf does and cilium (up to v0.22.0) does not, so that the
// very object a libbpf tool attaches loads with cilium and behaves the same.
// An object that needs none of it is parsed from the same bytes unchanged, and
// parse errors read as cilium's own (prefixed with the file name). opts may be
// nil.
//
// What it does, each only where the object needs it:
//
//   - Weak maps: libbpf's usdt.bpf.h declares its maps (__bpf_usdt_specs,
//     __bpf_usdt_ip_to_spec_id) __weak, and cilium refuses every reference to
//     a weak map symbol ("unsupported binding: STB_WEAK"). In one object a weak
//     definition is the definition, so the symbols are rebound STB_GLOBAL in a
//     private copy of the file. Weak subprograms (bpf_usdt_arg and friends) are
//     rebound too when cilium refuses to parse the object otherwise (cilium
//     before v0.21.0 refuses calls to weak functions).
//   - Hidden subprograms: usdt.bpf.h's bpf_usdt_arg, bpf_usdt_arg_cnt and
//     bpf_usdt_cookie are __weak __hidden. libbpf marks such subprograms static
//     in BTF (the verifier then checks them in their caller's context); cilium
//     keeps them global and the verifier rejects bpf_usdt_arg on its own ("R3
//     invalid mem access 'mem_or_null'"). Their BTF FUNC linkage is set static.
//   - LINUX_HAS_BPF_COOKIE: usdt.bpf.h's libbpf-only kconfig extern. cilium
//     takes it for a CONFIG_ option and fails the load ("config option
//     \"LINUX_HAS_BPF_COOKIE\" does not exist on this kernel"); the bridge
//     points its loads at a read-only ".kconfig" map of its own holding
//     libbpf's answer (USDTFeatures.BPFCookie). A .kconfig with other externs
//     besides this one wraps ErrNotSupported.
//   - SEC("usdt") programs are typed as libbpf types them: Kprobe, expected
//     attach type UPROBE_MULTI when the kernel has uprobe_multi links (cilium
//     gives none, and a uprobe_multi link would then fail with EINVAL); the
//     sleepable "usdt.s" forms get BPF_F_SLEEPABLE.
//   - SEC("uprobe.session") programs are typed Kprobe with
//     AttachTraceUprobeSession (PrepareUprobeSessionSpec), which cilium before
//     v0.21.0 does not do.
//   - An object that declares usdt.bpf.h's struct __bpf_usdt_spec must
//     declare libbpf 1.7's layout of it (the one AttachUSDT writes); another
//     layout (an older or newer usdt.bpf.h) is refused.
//
// Kernel features are probed (ProbeUSDTFeatures) only for an object with USDT
// programs or LINUX_HAS_BPF_COOKIE. No minimum kernel for the parse itself;
// see AttachUSDT and UprobeSession for the kernels the programs need.
func LoadCollectionSpec(path string, opts *SpecOptions) (*ebpf.CollectionSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // as cilium: the *PathError itself
	}
	defer f.Close()
	buf, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	spec, err := loadCollectionSpec(buf, opts)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	return spec, nil
}

// LoadCollectionSpecFromReader is LoadCollectionSpec on an object read from
// rd (ebpf.LoadCollectionSpecFromReader's counterpart). It reads the whole
// object into memory.
func LoadCollectionSpecFromReader(rd io.ReaderAt, opts *SpecOptions) (*ebpf.CollectionSpec, error) {
	buf, err := io.ReadAll(io.NewSectionReader(rd, 0, math.MaxInt64))
	if err != nil {
		return nil, err
	}
	return loadCollectionSpec(buf, opts)
}

// parseObject is the ELF half of LoadCollectionSpec: cilium's parse of buf
// (which it may change) with weak symbols rebound and hidden subprograms
// made static.
func parseObject(buf []byte) (*ebpf.CollectionSpec, SpecFixes, error) {
	var fixes SpecFixes
	orig := bytes.Clone(buf)
	var hidden map[string]bool
	fixes.WeakMaps, _, hidden = inspectSymbols(buf, false)
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(buf))
	if err != nil {
		// cilium < v0.21.0 also refuses calls to weak functions.
		maps, funcs, _ := inspectSymbols(orig, true)
		if len(funcs) == 0 {
			return nil, SpecFixes{}, err
		}
		spec2, err2 := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(orig))
		if err2 != nil {
			return nil, SpecFixes{}, err
		}
		spec, fixes.WeakMaps, fixes.WeakFuncs = spec2, maps, funcs
	}
	fixes.StaticFuncs = markHiddenFuncsStatic(spec, hidden)
	return spec, fixes, nil
}

func loadCollectionSpec(buf []byte, opts *SpecOptions) (*ebpf.CollectionSpec, error) {
	if opts == nil {
		opts = &SpecOptions{}
	}
	spec, fixes, err := parseObject(buf)
	if err != nil {
		return nil, err
	}
	if err := checkUSDTObjectLayout(spec); err != nil {
		return nil, err
	}

	feat := opts.USDTFeatures
	features := func() (USDTFeatures, error) {
		if feat == nil {
			f, err := ProbeUSDTFeatures()
			if err != nil {
				return f, err
			}
			feat = &f
		}
		return *feat, nil
	}
	names := make([]string, 0, len(spec.Programs))
	for name := range spec.Programs {
		names = append(names, name)
	}
	sort.Strings(names) // SpecFixes lists come out sorted
	for _, name := range names {
		ps := spec.Programs[name]
		if PrepareUprobeSessionSpec(ps) {
			fixes.UprobeSessions = append(fixes.UprobeSessions, name)
		}
		if isUSDTSection(ps.SectionName) {
			f, err := features()
			if err != nil {
				return nil, err
			}
			if prepareUSDTSpec(ps, f) {
				fixes.USDTPrograms = append(fixes.USDTPrograms, name)
			}
		}
	}
	filled, err := fillBPFCookieKconfig(spec, func() (bool, error) {
		f, err := features()
		return f.BPFCookie, err
	})
	if err != nil {
		return nil, err
	}
	if filled {
		fixes.Kconfig = []string{fmt.Sprintf("%s=%v", kconfigBPFCookie, feat.BPFCookie)}
	}
	if opts.Fixes != nil {
		*opts.Fixes = fixes
	}
	return spec, nil
}

// checkUSDTObjectLayout refuses an object whose usdt.bpf.h is not the one
// AttachUSDT writes specs for: it declares struct __bpf_usdt_spec, or has the
// spec map, and the struct is not libbpf 1.7's.
func checkUSDTObjectLayout(spec *ebpf.CollectionSpec) error {
	_, hasMap := spec.Maps[usdtSpecsMapName]
	hasStruct := false
	if spec.Types != nil {
		var s *btf.Struct
		hasStruct = spec.Types.TypeByName(usdtSpecStructName, &s) == nil
	}
	if !hasMap && !hasStruct {
		return nil
	}
	return checkUSDTSpecLayout(spec.Types)
}

// markHiddenFuncsStatic sets BTF_FUNC_STATIC on the FUNC types (in the
// spec's BTF, as libbpf edits the object's) of the named subprograms, as
// their instructions' func info reaches them, and returns the names changed.
func markHiddenFuncsStatic(spec *ebpf.CollectionSpec, hidden map[string]bool) []string {
	if len(hidden) == 0 {
		return nil
	}
	done := map[string]bool{}
	for _, ps := range spec.Programs {
		for i := range ps.Instructions {
			fn := btf.FuncMetadata(&ps.Instructions[i])
			if fn == nil || !hidden[fn.Name] || fn.Linkage != btf.GlobalFunc {
				continue
			}
			fn.Linkage = btf.StaticFunc
			done[fn.Name] = true
		}
	}
	return sortedNames(done)
}

func sortedNames(m map[string]bool) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// inspectSymbols reads the symbol table of a 64-bit little-endian ELF file
// in buf: it rewrites the binding of every STB_WEAK symbol defined in a map
// section (".maps", or legacy "maps*"), and with funcs of every STB_WEAK
// FUNC symbol of .text, to STB_GLOBAL, in buf, and returns their names; and
// it returns the global or weak FUNC symbols of .text (subprograms) with
// hidden or internal visibility. A file it cannot parse is left alone for
// cilium to report.
func inspectSymbols(buf []byte, funcs bool) (maps, weakFuncs []string, hidden map[string]bool) {
	ef, err := elf.NewFile(bytes.NewReader(buf))
	if err != nil || ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB {
		return nil, nil, nil
	}
	defer ef.Close()
	symtab := ef.SectionByType(elf.SHT_SYMTAB)
	if symtab == nil || symtab.Entsize != 24 || symtab.Offset+symtab.Size > uint64(len(buf)) {
		return nil, nil, nil
	}
	syms, err := ef.Symbols() // entry i+1 of the table (Go drops the null symbol)
	if err != nil {
		return nil, nil, nil
	}
	type rebind struct {
		at   uint64
		info byte
	}
	var todo []rebind
	for i, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Section == elf.SHN_UNDEF || int(s.Section) >= len(ef.Sections) || (bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) {
			continue
		}
		sec := ef.Sections[s.Section].Name
		isFunc := elf.ST_TYPE(s.Info) == elf.STT_FUNC && sec == ".text"
		if vis := elf.ST_VISIBILITY(s.Other); isFunc && (vis == elf.STV_HIDDEN || vis == elf.STV_INTERNAL) {
			if hidden == nil {
				hidden = map[string]bool{}
			}
			hidden[s.Name] = true
		}
		isMap := sec == ".maps" || strings.HasPrefix(sec, "maps")
		if bind != elf.STB_WEAK || !(isMap || funcs && isFunc) {
			continue
		}
		at := symtab.Offset + uint64(i+1)*24 + 4 // st_info of Elf64_Sym
		if buf[at] != s.Info {
			return nil, nil, hidden // not the table debug/elf read: leave the file alone
		}
		todo = append(todo, rebind{at, byte(elf.STB_GLOBAL)<<4 | s.Info&0xf})
		if isMap {
			maps = append(maps, s.Name)
		} else {
			weakFuncs = append(weakFuncs, s.Name)
		}
	}
	for _, r := range todo {
		buf[r.at] = r.info
	}
	sort.Strings(maps)
	sort.Strings(weakFuncs)
	return maps, weakFuncs, hidden
}

// kconfigBPFCookie is libbpf's virtual kconfig extern for BPF cookie support,
// declared by usdt.bpf.h: extern const _Bool LINUX_HAS_BPF_COOKIE __kconfig.
const kconfigBPFCookie = "LINUX_HAS_BPF_COOKIE"

// kconfigMapName is the map the bridge creates for the filled .kconfig.
const kconfigMapName = ".kconfig"

// fillBPFCookieKconfig gives the object's LINUX_HAS_BPF_COOKIE its value
// (what hasCookie says: libbpf's FEAT_BPF_COOKIE), which cilium (<= v0.22.0)
// does not do: it resolves only LINUX_KERNEL_VERSION and
// LINUX_HAS_SYSCALL_WRAPPER itself, takes every other .kconfig extern for a
// CONFIG_ option and fails the load: `resolve .kconfig: config option
// "LINUX_HAS_BPF_COOKIE" does not exist on this kernel` (or `cannot find a
// kconfig file`).
//
// cilium keeps .kconfig out of CollectionSpec.Maps and Variables: its loads
// are ldimm64 map-value instructions tagged with private metadata, resolved
// when the program is created. The bridge adds a BPF_F_RDONLY_PROG array map
// ".kconfig" holding the value, which cilium freezes after filling it for its
// name (v0.22.0: isKconfigSection), as libbpf's .kconfig map is, and
// replaces each such load by the same instruction referencing that map, at
// the variable's offset, keeping the instruction's line info, symbol and
// BTF func info. The verifier then sees the same constant as under libbpf.
//
// It returns false when the object declares no LINUX_HAS_BPF_COOKIE or no
// program reads it (then hasCookie is not called). A
// .kconfig that also declares other externs is refused (unsupported): the
// rewrite takes .kconfig away from cilium, and the bridge fills only this one.
func fillBPFCookieKconfig(spec *ebpf.CollectionSpec, hasCookie func() (bool, error)) (bool, error) {
	if spec.Types == nil {
		return false, nil
	}
	var ds *btf.Datasec
	if err := spec.Types.TypeByName(".kconfig", &ds); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf(".kconfig: %w", err)
	}
	var cookie *btf.VarSecinfo
	var others []string
	for i := range ds.Vars {
		if name := ds.Vars[i].Type.TypeName(); name == kconfigBPFCookie {
			cookie = &ds.Vars[i]
		} else {
			others = append(others, name)
		}
	}
	if cookie == nil {
		return false, nil
	}
	if len(others) > 0 {
		return false, fmt.Errorf("usdt: .kconfig declares %v besides %s: the cilium-usdt bridge fills only %s and cilium would no longer resolve the others: %w",
			others, kconfigBPFCookie, kconfigBPFCookie, ebpf.ErrNotSupported)
	}
	if _, ok := spec.Maps[kconfigMapName]; ok {
		return false, fmt.Errorf("usdt: the spec already has a map %q", kconfigMapName)
	}
	if cookie.Size == 0 || cookie.Offset+cookie.Size > ds.Size {
		return false, invalidf("usdt: .kconfig %s at %d+%d does not fit the %d-byte section", kconfigBPFCookie, cookie.Offset, cookie.Size, ds.Size)
	}

	rewritten := 0
	for name, ps := range spec.Programs {
		for i := range ps.Instructions {
			ins := &ps.Instructions[i]
			off, isKconfig, err := kconfigLoadOffset(ins)
			if err != nil {
				return false, fmt.Errorf("usdt: program %s instruction %d: %w", name, i, err)
			}
			if !isKconfig {
				continue
			}
			if off != cookie.Offset {
				return false, fmt.Errorf("usdt: program %s instruction %d reads .kconfig at %d, not %s at %d", name, i, off, kconfigBPFCookie, cookie.Offset)
			}
			repl, err := retargetKconfigLoad(*ins, off)
			if err != nil {
				return false, fmt.Errorf("usdt: program %s instruction %d: %w", name, i, err)
			}
			*ins = repl
			rewritten++
		}
	}

	if rewritten == 0 {
		return false, nil // the kept programs never read it: cilium has nothing to resolve
	}
	has, err := hasCookie()
	if err != nil {
		return false, err
	}
	data := make([]byte, ds.Size)
	if has {
		data[cookie.Offset] = 1 // _Bool (or a little-endian integer) true
	}
	spec.Maps[kconfigMapName] = &ebpf.MapSpec{
		Name:       kconfigMapName,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  ds.Size,
		MaxEntries: 1,
		Flags:      unix.BPF_F_RDONLY_PROG,
		Contents:   []ebpf.MapKV{{Key: uint32(0), Value: data}},
	}
	return true, nil
}

// Instruction metadata keys, by package path and type name: cilium's private
// .kconfig tag, and the exported kinds the rewrite carries over.
const (
	metaKconfig  = "github.com/cilium/ebpf.kconfigMetaKey"
	metaSource   = "github.com/cilium/ebpf/asm.sourceMeta"
	metaSymbol   = "github.com/cilium/ebpf/asm.symbolMeta"
	metaFuncInfo = "github.com/cilium/ebpf/btf.funcInfoMeta"
)

// kconfigLoadOffset reports whether ins is a load cilium tagged as reading
// .kconfig, and at which offset. cilium exports neither the tag nor its
// value (kconfigMetaKey → *kconfigMeta{Map, Offset}); the bridge reads them
// by reflection (read-only; no unsafe), so a cilium that changes them makes
// the load fail loudly here rather than load a wrong program.
func kconfigLoadOffset(ins *asm.Instruction) (uint32, bool, error) {
	if !ins.IsLoadFromMap() || ins.Src != asm.PseudoMapValue || ins.Reference() != "" {
		return 0, false, nil
	}
	entries, err := metadataEntries(ins)
	if err != nil {
		return 0, false, err
	}
	for _, e := range entries {
		if e.key != metaKconfig {
			continue
		}
		v := e.value
		for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return 0, false, errors.New("cilium's .kconfig tag has no value")
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return 0, false, fmt.Errorf("cilium's .kconfig tag is a %s, not a struct", v.Kind())
		}
		off := v.FieldByName("Offset")
		if !off.IsValid() || !off.CanUint() {
			return 0, false, fmt.Errorf("cilium's .kconfig tag %s has no unsigned Offset field", v.Type())
		}
		return uint32(off.Uint()), true, nil
	}
	return 0, false, nil
}

// retargetKconfigLoad returns ins as a fresh instruction (without cilium's
// .kconfig tag) that loads the address of offset off in the bridge's
// ".kconfig" map, with ins's line info, symbol and func info.
func retargetKconfigLoad(ins asm.Instruction, off uint32) (asm.Instruction, error) {
	entries, err := metadataEntries(&ins)
	if err != nil {
		return ins, err
	}
	for _, e := range entries {
		switch e.key {
		case metaKconfig, metaSource, metaSymbol, metaFuncInfo:
		default:
			return ins, fmt.Errorf("a .kconfig load carries metadata %s that the bridge cannot carry over", e.key)
		}
	}
	out := asm.Instruction{
		OpCode:   ins.OpCode,
		Dst:      ins.Dst,
		Src:      asm.PseudoMapValue,
		Offset:   ins.Offset,
		Constant: int64(uint64(off) << 32), // map value offset in the upper half, fd below
	}
	out = out.WithReference(kconfigMapName)
	if src := ins.Source(); src != nil {
		out = out.WithSource(src)
	}
	if sym := ins.Symbol(); sym != "" {
		out = out.WithSymbol(sym)
	}
	if fn := btf.FuncMetadata(&ins); fn != nil {
		out = btf.WithFuncMetadata(out, fn)
	}
	return out, nil
}

type metaEntry struct {
	key   string        // package path + "." + type name of the key
	value reflect.Value // the value (read-only)
}

// metadataEntries lists an instruction's metadata (asm.Metadata: a linked
// list of {next, key, value}) by reflection.
func metadataEntries(ins *asm.Instruction) ([]metaEntry, error) {
	head := reflect.ValueOf(&ins.Metadata).Elem().FieldByName("head")
	if !head.IsValid() || head.Kind() != reflect.Pointer {
		return nil, errors.New("cannot read cilium's asm.Metadata (no head pointer): cilium changed its layout")
	}
	var out []metaEntry
	for e := head; !e.IsNil(); {
		el := e.Elem()
		key, value, next := el.FieldByName("key"), el.FieldByName("value"), el.FieldByName("next")
		if !key.IsValid() || !value.IsValid() || !next.IsValid() || key.Kind() != reflect.Interface {
			return nil, errors.New("cannot read cilium's asm.Metadata elements: cilium changed its layout")
		}
		name := "<nil>"
		if !key.IsNil() {
			t := key.Elem().Type()
			name = t.PkgPath() + "." + t.Name()
		}
		out = append(out, metaEntry{key: name, value: value})
		e = next
	}
	return out, nil
}

// isUSDTSection reports whether a program's ELF section is one of libbpf's
// USDT sections: "usdt", "usdt/PATH:PROVIDER:NAME", and the sleepable
// "usdt.s" forms (SEC_DEF "usdt+" and "usdt.s+").
func isUSDTSection(section string) bool {
	for _, p := range []string{"usdt", "usdt.s"} {
		if section == p || strings.HasPrefix(section, p+"/") {
			return true
		}
	}
	return false
}

// prepareUSDTSpec types a USDT program as libbpf does: a kprobe program
// (sleepable for usdt.s), whose expected attach type is UPROBE_MULTI when the
// kernel has uprobe_multi links (libbpf's libbpf_prepare_prog_load: SEC_USDT
// and FEAT_UPROBE_MULTI_LINK), so that the bridge can link it with one
// uprobe_multi link; otherwise none (single perf-event uprobes). cilium types
// "usdt" as a kprobe without attach type, so UprobeMulti would get EINVAL.
// It reports whether it changed the spec.
func prepareUSDTSpec(ps *ebpf.ProgramSpec, feat USDTFeatures) bool {
	if !isUSDTSection(ps.SectionName) {
		return false
	}
	want := ebpf.AttachNone
	if feat.UprobeMulti {
		want = ebpf.AttachType(attachTraceUprobeMulti)
	}
	changed := ps.Type != ebpf.Kprobe || ps.AttachType != want
	ps.Type, ps.AttachType = ebpf.Kprobe, want
	if strings.HasPrefix(ps.SectionName, "usdt.s") && ps.Flags&unix.BPF_F_SLEEPABLE == 0 {
		ps.Flags |= unix.BPF_F_SLEEPABLE
		changed = true
	}
	return changed
}
