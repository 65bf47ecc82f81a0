package compat

import (
	"debug/elf"
	"errors"
	"fmt"

	"github.com/cilium/ebpf/link"
)

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

// SymbolFileOffset resolves symbol+offset in the ELF file at path to a file
// offset, as cilium does for uprobes.
func SymbolFileOffset(path, symbol string, offset uint64) (uint64, error) {
	t, err := loadSymbolTable(path)
	if err != nil {
		return 0, err
	}
	return t.fileOffset(symbol, offset)
}
