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
	"github.com/cilium/ebpf/btf"

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
	// EventSize is sizeof(struct pc_event) in the object's BTF: the size of
	// every ring buffer record (104 bytes in ABI version 1).
	EventSize int
}

// EventType is the BTF struct whose size every ring buffer record has.
const EventType = "pc_event"

// EventSize returns the size of struct pc_event in types (an object's BTF).
// The recorders keep the type in BTF through the pc_event_layout variable
// (bpf/recorder_common.h). An object without it cannot be drained safely:
// that is an error, not a fallback to some built-in size.
func EventSize(types *btf.Spec) (int, error) {
	if types == nil {
		return 0, classify.Invalidf("object has no BTF, so no struct %s to size ring buffer records by (built without -g?)", EventType)
	}
	var ev *btf.Struct
	if err := types.TypeByName(EventType, &ev); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return 0, classify.Invalidf("object's BTF has no struct %s, the ring buffer record type (not a probeconf recorder object?)", EventType)
		}
		return 0, classify.Invalidf("object's BTF: struct %s: %v", EventType, err)
	}
	if ev.Size == 0 {
		return 0, classify.Invalidf("object's BTF: struct %s has size 0", EventType)
	}
	return int(ev.Size), nil
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

// Load loads one instance of object per probe of req (object is req.Object,
// or the build the harness picked from req.Objects). log receives human notes
// (stderr). It first reads the record size (struct pc_event) from the
// object's BTF, once. On error, everything loaded so far is closed and the
// error is a *protocol.Failure naming the probe (none when the object itself
// is at fault: unparsable, or without struct pc_event).
func Load(object string, req *protocol.Request, log io.Writer) (_ *Set, err error) {
	set := &Set{}
	defer func() {
		if err != nil {
			set.Close()
		}
	}()
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return nil, protocol.Fail(protocol.PhaseLoad, nil, fmt.Errorf("load collection spec %s: %w", object, err))
	}
	if set.EventSize, err = EventSize(spec.Types); err != nil {
		return nil, protocol.Fail(protocol.PhaseLoad, nil, fmt.Errorf("%s: %w", object, err))
	}
	fmt.Fprintf(log, "object %s: struct %s is %d bytes\n", object, EventType, set.EventSize)

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
		inst, err := loadOne(object, p, shared, log)
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
