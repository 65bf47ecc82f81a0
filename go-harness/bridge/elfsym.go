package bridge

import (
	"debug/elf"
	"errors"
	"fmt"
	"reflect"

	"github.com/cilium/ebpf/link"
)

// executablePath returns the path ex was opened with (link.OpenExecutable).
// cilium keeps it in an unexported field and has no accessor (v0.17.3 to
// v0.22.0 all call it path); it is read by reflection, read-only, so a cilium
// that renames it fails here with a clear error instead of attaching to the
// wrong file.
func executablePath(ex *link.Executable) (string, error) {
	if ex == nil {
		return "", invalidf("nil *link.Executable: open one with link.OpenExecutable")
	}
	v := reflect.ValueOf(ex).Elem().FieldByName("path")
	if !v.IsValid() || v.Kind() != reflect.String {
		return "", errors.New("cannot read the path of a *link.Executable: this cilium/ebpf changed its layout (the bridge knows v0.17.3 to v0.22.0)")
	}
	if v.String() == "" {
		return "", invalidf("*link.Executable has no path: open it with link.OpenExecutable")
	}
	return v.String(), nil
}

// elfSymbol is a function symbol resolved to a file offset.
type elfSymbol struct {
	offset uint64 // file offset of the first instruction
	size   uint64
}

// symbolTable resolves function symbols of one ELF file (executable or shared
// object) to file offsets the way cilium's link.Executable does, so the
// uprobe.session bridge attaches exactly where cilium's UprobeMulti would:
//
//	file offset = symbol value - vaddr of the executable PT_LOAD segment holding it + that segment's file offset
//
// Symbols come from .symtab and .dynsym; only STT_FUNC symbols count.
type symbolTable struct {
	path string
	syms map[string]elfSymbol
}

func loadSymbolTable(path string) (*symbolTable, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("parse ELF file %s: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, invalidf("%s is not an executable or a shared object (ELF type %s)", path, f.Type)
	}

	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .symtab of %s: %w", path, err)
	}
	dyn, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .dynsym of %s: %w", path, err)
	}

	t := &symbolTable{path: path, syms: make(map[string]elfSymbol)}
	for _, s := range append(syms, dyn...) {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		off := s.Value
		for _, p := range f.Progs {
			if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
				continue
			}
			if p.Vaddr <= s.Value && s.Value < p.Vaddr+p.Memsz {
				off = s.Value - p.Vaddr + p.Off
				break
			}
		}
		// Like cilium, a later entry (.dynsym) wins over an earlier one; for a
		// defined function both give the same offset.
		t.syms[s.Name] = elfSymbol{offset: off, size: s.Size}
	}
	return t, nil
}

// fileOffset returns the file offset of symbol+offset. An empty symbol means
// offset is already an absolute file offset.
func (t *symbolTable) fileOffset(symbol string, offset uint64) (uint64, error) {
	if symbol == "" {
		return offset, nil
	}
	s, ok := t.syms[symbol]
	if !ok {
		return 0, fmt.Errorf("symbol %s in %s: %w", symbol, t.path, link.ErrNoSymbol)
	}
	if s.offset == 0 {
		// An undefined (imported) function: it lives in a shared library.
		return 0, fmt.Errorf("symbol %s is not defined in %s (imported from a shared library? probe the .so instead): %w",
			symbol, t.path, link.ErrNoSymbol)
	}
	if s.size != 0 && offset >= s.size {
		return 0, invalidf("offset %d is out of range of symbol %s (size %d)", offset, symbol, s.size)
	}
	return s.offset + offset, nil
}

// symbolFileOffset resolves symbol+offset in the ELF file at path to a file
// offset, as cilium does for uprobes.
func symbolFileOffset(path, symbol string, offset uint64) (uint64, error) {
	t, err := loadSymbolTable(path)
	if err != nil {
		return 0, err
	}
	return t.fileOffset(symbol, offset)
}
