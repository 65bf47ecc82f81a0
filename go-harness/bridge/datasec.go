package bridge

import (
	"bytes"
	"fmt"
	"os"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// SetDataSection replaces the contents of the data section named section
// (e.g. ".rodata.cfg", or ".rodata" for all const volatile globals) with data,
// which must have exactly the section's size, the same way on every cilium
// version from v0.17.3 to v0.22.0.
//
// Writing MapSpec.Contents alone is not enough: from v0.21.0 cilium rebuilds a
// data section from CollectionSpec.Variables when it creates the map, so the
// ELF's values would silently win. Older versions (v0.17.3, v0.20.0) write
// VariableSpec.Set through to Contents instead. Setting both, with the
// variables' offsets taken from the section's BTF Datasec, works with each.
// Callers should still read the map back after load (VerifyDataSection).
func SetDataSection(spec *ebpf.CollectionSpec, section string, data []byte) error {
	ms, ok := spec.Maps[section]
	if !ok {
		return fmt.Errorf("data section %s not in the object (data sections: %v): %w",
			section, dataSectionNames(spec), os.ErrNotExist)
	}
	if len(ms.Contents) != 1 {
		return invalidf("data section %s has %d entries, want 1", section, len(ms.Contents))
	}
	cur, ok := ms.Contents[0].Value.([]byte)
	if !ok {
		return invalidf("data section %s: contents are %T, want []byte", section, ms.Contents[0].Value)
	}
	if len(cur) != len(data) {
		return invalidf("data section %s is %d bytes but the data has %d (caller and object disagree on the layout)",
			section, len(cur), len(data))
	}
	ms.Contents[0].Value = bytes.Clone(data)

	ds, ok := ms.Value.(*btf.Datasec)
	if !ok {
		return nil // no BTF: no VariableSpecs to keep in step
	}
	for _, v := range ds.Vars {
		vs := spec.Variables[v.Type.TypeName()]
		if vs == nil {
			continue // hidden or static: cilium made no VariableSpec
		}
		end := uint64(v.Offset) + uint64(v.Size)
		if end > uint64(len(data)) {
			return invalidf("data section %s: variable %s at %d+%d exceeds the section",
				section, v.Type.TypeName(), v.Offset, v.Size)
		}
		if err := vs.Set(bytes.Clone(data[v.Offset:end])); err != nil {
			return fmt.Errorf("data section %s: set variable %s: %w", section, v.Type.TypeName(), err)
		}
	}
	return nil
}

// VerifyDataSection reads a loaded data section back and compares it with
// want, so a library change in how sections are assembled fails loudly
// instead of running with a zeroed configuration. It needs the section's map
// to be readable from user space (Linux 5.2 for BPF_F_RDONLY_PROG maps of
// .rodata).
func VerifyDataSection(coll *ebpf.Collection, section string, want []byte) error {
	m, ok := coll.Maps[section]
	if !ok {
		return fmt.Errorf("data section %s: no map after load: %w", section, os.ErrNotExist)
	}
	got := make([]byte, len(want))
	if err := m.Lookup(uint32(0), &got); err != nil {
		return fmt.Errorf("data section %s: read back: %w", section, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("data section %s: the loaded map holds %x, not the requested %x (the library re-assembled the section)",
			section, got, want)
	}
	return nil
}

func dataSectionNames(spec *ebpf.CollectionSpec) []string {
	var names []string
	for name := range spec.Maps {
		if len(name) > 0 && name[0] == '.' {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
