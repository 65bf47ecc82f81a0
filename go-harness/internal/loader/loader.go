// Package loader loads one instance of the recorder object per probe, as the
// protocol asks: only the probe's program kept, its data sections set from the
// request, and the shared maps taken from the first instance.
package loader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/bridge"
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
	Object     string // the file it was loaded from
	Collection *ebpf.Collection
	Program    *ebpf.Program
	// Types is the object's BTF (the USDT bridge checks its spec layout
	// against it).
	Types *btf.Spec
	// Bridges are the compat registry ids of the bridges that loaded the
	// program (cilium-fsession-load, cilium-tracing-multi), in order; the
	// attach step adds its own.
	Bridges []string
	// ownProgram: Program is not one of Collection's (a bridge loaded it)
	// and is closed with the instance.
	ownProgram bool
}

// Close closes the instance's program and collection.
func (inst *Instance) Close() {
	if inst.ownProgram {
		inst.Program.Close()
	}
	inst.Collection.Close()
}

// Options are the loader's knobs.
type Options struct {
	// Log receives human notes (stderr).
	Log io.Writer
	// USDTFeatures gives the kernel features of the cilium-usdt bridge
	// (asked for every object when set). nil: bridge.LoadCollectionSpec
	// probes the kernel, only for an object that needs them. The attach
	// step must see the same answer.
	USDTFeatures func() (bridge.USDTFeatures, error)
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
		s.Instances[i].Close()
	}
	s.Instances = nil
}

// Load is LoadWithOptions with only a log.
func Load(object string, req *protocol.Request, log io.Writer) (*Set, error) {
	return LoadWithOptions(object, req, Options{Log: log})
}

// LoadWithOptions loads one instance of an object per probe of req: the
// probe's own object when it names one (usdt probes), else object
// (req.Object, or the build the harness picked from req.Objects). It first
// reads the record size (struct pc_event) from object's BTF, once; a probe's
// own object must have the same size. On error, everything loaded so far is
// closed and the error is a *protocol.Failure naming the probe (none when
// the object itself is at fault: unparsable, or without struct pc_event).
func LoadWithOptions(object string, req *protocol.Request, opts Options) (_ *Set, err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	log := opts.Log
	set := &Set{}
	defer func() {
		if err != nil {
			set.Close()
		}
	}()
	spec, err := loadSpec(object, log, opts)
	if err != nil {
		return nil, protocol.Fail(protocol.PhaseLoad, nil, err)
	}
	if set.EventSize, err = EventSize(spec.Types); err != nil {
		return nil, protocol.Fail(protocol.PhaseLoad, nil, fmt.Errorf("%s: %w", object, err))
	}
	fmt.Fprintf(log, "object %s: struct %s is %d bytes\n", object, EventType, set.EventSize)

	for i := range req.Probes {
		p := &req.Probes[i]
		probeObject := object
		if p.Object != "" && p.Object != object {
			probeObject = p.Object
			own, err := loadSpec(probeObject, io.Discard, opts)
			if err != nil {
				return nil, protocol.Fail(protocol.PhaseLoad, p, err)
			}
			size, err := EventSize(own.Types)
			if err != nil {
				return nil, protocol.Fail(protocol.PhaseLoad, p, fmt.Errorf("%s: %w", probeObject, err))
			}
			if size != set.EventSize {
				return nil, protocol.Fail(protocol.PhaseLoad, p, classify.Invalidf(
					"%s: struct %s is %d bytes, but %d in %s: the probes of one case share one ring buffer",
					probeObject, EventType, size, set.EventSize, object))
			}
		}
		var shared map[string]*ebpf.Map
		if len(set.Instances) > 0 {
			shared = make(map[string]*ebpf.Map)
			for _, name := range SharedMaps {
				if m, ok := set.Instances[0].Collection.Maps[name]; ok {
					shared[name] = m
				}
			}
		}
		inst, err := loadOne(probeObject, p, shared, opts)
		if err != nil {
			return nil, protocol.Fail(protocol.PhaseLoad, p, err)
		}
		set.Instances = append(set.Instances, inst)
	}
	return set, nil
}

// loadSpec parses an object with bridge.LoadCollectionSpec (cilium's
// parser, plus what libbpf does and cilium does not: usdt.bpf.h's weak maps
// rebound, hidden subprograms made static, LINUX_HAS_BPF_COOKIE filled, usdt
// and uprobe.session sections typed as libbpf types them) and notes those
// changes on log.
func loadSpec(object string, log io.Writer, opts Options) (*ebpf.CollectionSpec, error) {
	var fixes bridge.SpecFixes
	so := &bridge.SpecOptions{Fixes: &fixes}
	if opts.USDTFeatures != nil {
		f, err := opts.USDTFeatures()
		if err != nil {
			return nil, err
		}
		so.USDTFeatures = &f
	}
	spec, err := bridge.LoadCollectionSpec(object, so)
	if err != nil {
		return nil, fmt.Errorf("load collection spec %s: %w", object, err)
	}
	if len(fixes.WeakMaps) > 0 {
		fmt.Fprintf(log, "object %s: weak map symbols %v read as global (cilium refuses STB_WEAK map references) [%s]\n",
			object, fixes.WeakMaps, compat.BridgeUSDT)
	}
	if len(fixes.WeakFuncs) > 0 {
		fmt.Fprintf(log, "object %s: weak subprograms %v read as global (this cilium refuses calls to STB_WEAK functions) [%s]\n",
			object, fixes.WeakFuncs, compat.BridgeUSDT)
	}
	if len(fixes.StaticFuncs) > 0 {
		fmt.Fprintf(log, "object %s: hidden subprograms %v marked static in BTF, as libbpf does [%s]\n",
			object, fixes.StaticFuncs, compat.BridgeUSDT)
	}
	if len(fixes.UprobeSessions) > 0 {
		fmt.Fprintf(log, "object %s: programs %v: cilium did not type section uprobe.session; set Kprobe/attach type %d (%s)\n",
			object, fixes.UprobeSessions, bridge.AttachTraceUprobeSession, compat.BridgeUprobeSession)
	}
	if len(fixes.USDTPrograms) > 0 {
		fmt.Fprintf(log, "object %s: programs %v: section usdt typed as libbpf does: kprobe, expected attach type UPROBE_MULTI [%s]\n",
			object, fixes.USDTPrograms, compat.BridgeUSDT)
	}
	if len(fixes.Kconfig) > 0 {
		fmt.Fprintf(log, "object %s: .kconfig %v (cilium does not resolve it) [%s]\n", object, fixes.Kconfig, compat.BridgeUSDT)
	}
	return spec, nil
}

func loadOne(object string, p *protocol.Probe, shared map[string]*ebpf.Map, opts Options) (*Instance, error) {
	log := opts.Log
	spec, err := loadSpec(object, log, opts)
	if err != nil {
		return nil, err
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

	for _, section := range sortedKeys(p.Rodata) {
		if err := bridge.SetDataSection(spec, section, p.Rodata[section]); err != nil {
			return nil, fmt.Errorf("rodata: %w", err)
		}
	}

	// BTF-based tracing: the program is bound to its target at load.
	var bridges []string
	switch {
	case p.Kind == protocol.KindFentry || p.Kind == protocol.KindFexit:
		ps.AttachTo = p.Targets[0].Symbol // cilium resolves it in the kernel's BTF
	case p.Kind == protocol.KindFsession:
		// cilium cannot load it (cilium-fsession-load): the maps come from
		// cilium, the program from the bridge.
		ps.AttachTo = p.Targets[0].Symbol
		delete(spec.Programs, p.Program)
		bridges = append(bridges, compat.BridgeFsessionLoad)
	case p.Kind.TracingMulti():
		if bridge.PrepareTracingMultiSpec(ps) {
			fmt.Fprintf(log, "probe %s: program %s: cilium does not know section %s; typed Tracing, attach type %d, no target [%s]\n",
				p.Name, p.Program, ps.SectionName, ps.AttachType, compat.BridgeTracingMulti)
		}
		bridges = append(bridges, compat.BridgeTracingMulti)
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, withKernelCache(ebpf.CollectionOptions{MapReplacements: shared}))
	if err != nil {
		return nil, loadError(p, err, log)
	}
	for _, section := range sortedKeys(p.Rodata) {
		if err := bridge.VerifyDataSection(coll, section, p.Rodata[section]); err != nil {
			coll.Close()
			return nil, fmt.Errorf("rodata: %w", err)
		}
	}
	inst := &Instance{Probe: p, Object: object, Collection: coll, Types: spec.Types, Bridges: bridges}
	if p.Kind == protocol.KindFsession {
		if inst.Program, err = bridge.LoadFsession(ps, coll.Maps, fsessionOptions()); err != nil {
			coll.Close()
			return nil, loadError(p, err, log)
		}
		inst.ownProgram = true
		return inst, nil
	}
	prog, ok := coll.Programs[p.Program]
	if !ok {
		coll.Close()
		// cilium skips programs whose type it could not determine.
		return nil, fmt.Errorf("program %s (section %q) was not loaded: cilium does not know its section type: %w",
			p.Program, ps.SectionName, ebpf.ErrNotSupported)
	}
	inst.Program = prog
	return inst, nil
}

// loadError is the error of loading p's program: the verifier's log goes to
// log, and the tracing kinds' errors say what the kernel lacks.
//
//   - fentry/fexit: cilium reports a target function that is not in the
//     kernel's BTF as an UnsupportedFeatureError ("fentry NAME not
//     supported", errors.Is ErrNotSupported), as it reports a kernel without
//     BTF. When the kernel has BTF and no such function, the error is made a
//     not-found one (ENOENT), as libbpf's set_attach_target answers ESRCH
//     (cilium-tracing-missing-function).
//   - fentry.multi & co.: cilium reports the kernel's EINVAL for an attach
//     type it does not know as a verifier error; bridge.TracingMultiError
//     makes it ErrNotSupported when the kernel has no tracing multi links.
func loadError(p *protocol.Probe, err error, log io.Writer) error {
	var verr *ebpf.VerifierError
	isVerifier := errors.As(err, &verr)
	switch {
	case (p.Kind == protocol.KindFentry || p.Kind == protocol.KindFexit) && !isVerifier && errors.Is(err, ebpf.ErrNotSupported):
		if _, ferr := bridge.KernelFuncID(p.Targets[0].Symbol); errors.Is(ferr, os.ErrNotExist) {
			fmt.Fprintf(log, "probe %s: %v; the kernel's BTF has no such function: not found [%s]\n", p.Name, err, compat.BridgeTracingNotFound)
			return fmt.Errorf("load %s: %v: %w", p.Program, err, ferr)
		}
	case p.Kind.TracingMulti():
		err = bridge.TracingMultiError(err)
		isVerifier = errors.As(err, &verr)
	}
	if isVerifier {
		fmt.Fprintf(log, "probe %s: verifier log:\n%+v\n", p.Name, verr)
	}
	return fmt.Errorf("load %s: %w", p.Program, err)
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

// fsessionOptions resolves the fsession bridge's target and kfuncs in the
// process's shared kernel BTF (KernelTypes); nil, the bridge's own read, when
// that failed, so the bridge reports the failure itself.
func fsessionOptions() *bridge.FsessionOptions {
	kernel, err := KernelTypes()
	if err != nil {
		return nil
	}
	return &bridge.FsessionOptions{KernelTypes: kernel}
}
