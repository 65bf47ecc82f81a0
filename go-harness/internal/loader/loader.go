// Package loader loads one instance of the recorder object per probe, as the
// protocol asks: only the probe's program kept, its data sections set from the
// request, and the shared maps taken from the first instance.
package loader

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cilium/ebpf"

	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/classify"
	"probeconf/go-harness/internal/protocol"
)

// SharedMaps are the maps every instance of a case shares: one ring buffer,
// one sequence counter per CPU and one drop counter for the whole case.
var SharedMaps = []string{"events", "seq_by_cpu", "dropped"}

// Instance is one loaded copy of the object for one probe.
type Instance struct {
	Probe      *protocol.Probe
	Collection *ebpf.Collection
	Program    *ebpf.Program
}

// Set is every instance of a request, in request order.
type Set struct {
	Instances []*Instance
}

// Map returns a shared map (from the first instance, which created it).
func (s *Set) Map(name string) (*ebpf.Map, error) {
	if len(s.Instances) == 0 {
		return nil, errors.New("no instances loaded")
	}
	m, ok := s.Instances[0].Collection.Maps[name]
	if !ok {
		return nil, classify.NotFoundf("object has no map %q", name)
	}
	return m, nil
}

// Close closes every collection (programs and maps). Links must be closed first.
func (s *Set) Close() {
	for i := len(s.Instances) - 1; i >= 0; i-- {
		s.Instances[i].Collection.Close()
	}
	s.Instances = nil
}

// Load loads one instance per probe. log receives human notes (stderr). On
// error, everything loaded so far is closed and the error is a
// *protocol.Failure naming the probe.
func Load(req *protocol.Request, log io.Writer) (_ *Set, err error) {
	set := &Set{}
	defer func() {
		if err != nil {
			set.Close()
		}
	}()
	for i := range req.Probes {
		p := &req.Probes[i]
		var shared map[string]*ebpf.Map
		if len(set.Instances) > 0 {
			shared = make(map[string]*ebpf.Map)
			for _, name := range SharedMaps {
				if m, ok := set.Instances[0].Collection.Maps[name]; ok {
					shared[name] = m
				}
			}
		}
		inst, err := loadOne(req.Object, p, shared, log)
		if err != nil {
			return nil, protocol.Fail(protocol.PhaseLoad, p, err)
		}
		set.Instances = append(set.Instances, inst)
	}
	return set, nil
}

func loadOne(object string, p *protocol.Probe, shared map[string]*ebpf.Map, log io.Writer) (*Instance, error) {
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return nil, fmt.Errorf("load collection spec %s: %w", object, err)
	}

	ps, ok := spec.Programs[p.Program]
	if !ok {
		return nil, classify.NotFoundf("program %q not in %s (programs: %s)", p.Program, object, programNames(spec))
	}
	// One instance per probe, one program per instance: each probe gets its
	// own .rodata.pc_cfg, and programs of other kinds are never loaded.
	for name := range spec.Programs {
		if name != p.Program {
			delete(spec.Programs, name)
		}
	}

	// Keyed on the program's section, not the probe's kind: a uprobe.session
	// program is loaded as one whatever link the probe asks for (the kernel
	// then judges the link's attach type against it).
	if compat.PrepareUprobeSessionSpec(ps) {
		fmt.Fprintf(log, "probe %s: %s: cilium did not type section %q as a uprobe session; set Kprobe/attach type %d (%s)\n",
			p.Name, p.Program, ps.SectionName, compat.AttachTraceUprobeSession, compat.BridgeUprobeSession)
	}

	for _, section := range sortedKeys(p.Rodata) {
		if err := compat.SetDataSection(spec, section, p.Rodata[section]); err != nil {
			return nil, fmt.Errorf("rodata: %w", err)
		}
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: shared})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			fmt.Fprintf(log, "probe %s: verifier log:\n%+v\n", p.Name, verr)
		}
		return nil, fmt.Errorf("load %s: %w", p.Program, err)
	}
	for _, section := range sortedKeys(p.Rodata) {
		if err := compat.VerifyDataSection(coll, section, p.Rodata[section]); err != nil {
			coll.Close()
			return nil, fmt.Errorf("rodata: %w", err)
		}
	}
	prog, ok := coll.Programs[p.Program]
	if !ok {
		coll.Close()
		// cilium skips programs whose type it could not determine.
		return nil, fmt.Errorf("program %s (section %q) was not loaded: cilium does not know its section type: %w",
			p.Program, ps.SectionName, ebpf.ErrNotSupported)
	}
	return &Instance{Probe: p, Collection: coll, Program: prog}, nil
}

func programNames(spec *ebpf.CollectionSpec) string {
	names := make([]string, 0, len(spec.Programs))
	for name, ps := range spec.Programs {
		names = append(names, fmt.Sprintf("%s (%s)", name, ps.SectionName))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
