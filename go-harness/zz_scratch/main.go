package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func patch(buf []byte) []byte {
	f, err := elf.NewFile(bytes.NewReader(buf))
	if err != nil {
		panic(err)
	}
	out := bytes.Clone(buf)
	symtab := f.SectionByType(elf.SHT_SYMTAB)
	for i := 0; i*24 < int(symtab.Size); i++ {
		off := int(symtab.Offset) + i*24
		info := out[off+4]
		shndx := binary.LittleEndian.Uint16(out[off+6:])
		if elf.ST_BIND(info) == elf.STB_WEAK && int(shndx) < len(f.Sections) && f.Sections[shndx].Name == ".maps" {
			out[off+4] = byte(elf.STB_GLOBAL)<<4 | info&0xf
			fmt.Println("patched sym", i)
		}
	}
	return out
}

func main() {
	buf, _ := os.ReadFile("/tmp/pcart/usdt_recorder.bpf.o")
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(patch(buf)))
	if err != nil {
		panic(err)
	}
	for n, m := range spec.Maps {
		fmt.Println("map", n, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags, m.Value)
	}
	for n := range spec.Variables {
		fmt.Println("var", n)
	}
	for n, p := range spec.Programs {
		fmt.Println("prog", n, p.SectionName, p.Type, p.AttachType)
		for i, ins := range p.Instructions {
			if ins.IsLoadFromMap() {
				fmt.Println(i, ins, "ref=", ins.Reference(), ins.Src == asm.PseudoMapValue, ins.Source())
			}
		}
	}
	coll, err := ebpf.NewCollection(spec)
	fmt.Println("load:", err)
	if coll != nil {
		coll.Close()
	}
}
