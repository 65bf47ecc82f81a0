package compat

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
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
// and how the cilium-usdt bridge makes it loadable without changing what the
// program does.

// ObjectFixes says what LoadCollectionSpec changed to make cilium load an
// object the way libbpf does.
type ObjectFixes struct {
	// ReboundMaps are map symbols bound STB_WEAK, read as STB_GLOBAL.
	ReboundMaps []string
	// ReboundFuncs are subprograms bound STB_WEAK, read as STB_GLOBAL
	// (cilium before v0.21.0 refuses calls to them).
	ReboundFuncs []string
	// StaticFuncs are hidden global subprograms whose BTF FUNC linkage was
	// made static.
	StaticFuncs []string
}

// Any reports whether anything was changed.
func (f ObjectFixes) Any() bool {
	return len(f.ReboundMaps)+len(f.ReboundFuncs)+len(f.StaticFuncs) > 0
}

// LoadCollectionSpec is ebpf.LoadCollectionSpec with two of libbpf's
// behaviours that cilium (<= v0.22.0) lacks and libbpf's usdt.bpf.h relies on.
// An object that needs neither is parsed from the same bytes unchanged, and
// errors read as cilium's own.
//
// Weak maps: usdt.bpf.h declares its maps (__bpf_usdt_specs,
// __bpf_usdt_ip_to_spec_id) __weak, and cilium refuses every reference to a
// weak map symbol: `map "__bpf_usdt_ip_to_spec_id": unsupported binding:
// STB_WEAK`. In one object a weak definition is the definition (libbpf loads
// it as any other map; weak matters only when static linking merges
// objects), so the symbols are rebound STB_GLOBAL in a private copy of the
// file before cilium parses it. The same goes for the weak subprograms
// (bpf_usdt_arg and friends): cilium v0.21.0 and later accept calls to them,
// earlier versions refuse them as they refuse weak maps (`call:
// bpf_usdt_arg_cnt: unsupported binding: STB_WEAK`); a call to a defined
// weak function calls that function either way, so when cilium fails to
// parse the object, it is tried again with those rebound as well.
//
// Hidden subprograms: usdt.bpf.h's bpf_usdt_arg, bpf_usdt_arg_cnt and
// bpf_usdt_cookie are `__weak __hidden` functions. libbpf marks a global
// subprogram (in .text) with hidden or internal visibility static in the
// object's BTF (mark_btf_static), so the verifier checks it in its caller's
// context; cilium keeps BTF_FUNC_GLOBAL, and the verifier then validates
// bpf_usdt_arg on its own and rejects it (`R3 invalid mem access
// 'mem_or_null'`: its `long *res` may be NULL for a global function). The
// FUNC types of those subprograms get static linkage in the parsed spec.
func LoadCollectionSpec(path string) (*ebpf.CollectionSpec, ObjectFixes, error) {
	var fixes ObjectFixes
	f, err := os.Open(path)
	if err != nil {
		return nil, fixes, err // as cilium: the *PathError itself
	}
	defer f.Close()
	buf, err := readAll(f)
	if err != nil {
		return nil, fixes, fmt.Errorf("file %s: %w", path, err)
	}
	orig := bytes.Clone(buf)
	var hidden map[string]bool
	fixes.ReboundMaps, _, hidden = inspectSymbols(buf, false)
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(buf))
	if err != nil {
		// cilium < v0.21.0 also refuses calls to weak functions.
		maps, funcs, _ := inspectSymbols(orig, true)
		if len(funcs) == 0 {
			return nil, ObjectFixes{}, fmt.Errorf("file %s: %w", path, err)
		}
		spec2, err2 := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(orig))
		if err2 != nil {
			return nil, ObjectFixes{}, fmt.Errorf("file %s: %w", path, err)
		}
		spec, fixes.ReboundMaps, fixes.ReboundFuncs = spec2, maps, funcs
	}
	fixes.StaticFuncs = markHiddenFuncsStatic(spec, hidden)
	return spec, fixes, nil
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

func readAll(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
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
	return maps, weakFuncs, hidden
}

// KconfigBPFCookie is libbpf's virtual kconfig extern for BPF cookie support,
// declared by usdt.bpf.h: extern const _Bool LINUX_HAS_BPF_COOKIE __kconfig.
const KconfigBPFCookie = "LINUX_HAS_BPF_COOKIE"

// kconfigMapName is the map the bridge creates for the filled .kconfig.
const kconfigMapName = ".kconfig"

// FillBPFCookieKconfig gives the object's LINUX_HAS_BPF_COOKIE its value
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
func FillBPFCookieKconfig(spec *ebpf.CollectionSpec, hasCookie func() (bool, error)) (bool, error) {
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
		if name := ds.Vars[i].Type.TypeName(); name == KconfigBPFCookie {
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
			others, KconfigBPFCookie, KconfigBPFCookie, ebpf.ErrNotSupported)
	}
	if _, ok := spec.Maps[kconfigMapName]; ok {
		return false, fmt.Errorf("usdt: the spec already has a map %q", kconfigMapName)
	}
	if cookie.Size == 0 || cookie.Offset+cookie.Size > ds.Size {
		return false, invalidf("usdt: .kconfig %s at %d+%d does not fit the %d-byte section", KconfigBPFCookie, cookie.Offset, cookie.Size, ds.Size)
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
				return false, fmt.Errorf("usdt: program %s instruction %d reads .kconfig at %d, not %s at %d", name, i, off, KconfigBPFCookie, cookie.Offset)
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

// IsUSDTSection reports whether a program's ELF section is one of libbpf's
// USDT sections: "usdt", "usdt/PATH:PROVIDER:NAME", and the sleepable
// "usdt.s" forms (SEC_DEF "usdt+" and "usdt.s+").
func IsUSDTSection(section string) bool {
	for _, p := range []string{"usdt", "usdt.s"} {
		if section == p || strings.HasPrefix(section, p+"/") {
			return true
		}
	}
	return false
}

// PrepareUSDTSpec types a USDT program as libbpf does: a kprobe program
// (sleepable for usdt.s), whose expected attach type is UPROBE_MULTI when the
// kernel has uprobe_multi links (libbpf's libbpf_prepare_prog_load: SEC_USDT
// and FEAT_UPROBE_MULTI_LINK), so that the bridge can link it with one
// uprobe_multi link; otherwise none (single perf-event uprobes). cilium types
// "usdt" as a kprobe without attach type, so UprobeMulti would get EINVAL.
// It reports whether it changed the spec.
func PrepareUSDTSpec(ps *ebpf.ProgramSpec, feat USDTFeatures) bool {
	if !IsUSDTSection(ps.SectionName) {
		return false
	}
	want := ebpf.AttachNone
	if feat.UprobeMulti {
		want = ebpf.AttachType(AttachTraceUprobeMulti)
	}
	changed := ps.Type != ebpf.Kprobe || ps.AttachType != want
	ps.Type, ps.AttachType = ebpf.Kprobe, want
	if strings.HasPrefix(ps.SectionName, "usdt.s") && ps.Flags&unix.BPF_F_SLEEPABLE == 0 {
		ps.Flags |= unix.BPF_F_SLEEPABLE
		changed = true
	}
	return changed
}
