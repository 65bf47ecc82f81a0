package bridge

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The USDT bridge: USDT probes through cilium/ebpf, on the very object libbpf
// attaches (a program built with libbpf's usdt.bpf.h), mirroring libbpf
// 1.7's usdt.c. cilium/ebpf has no USDT support at all. The parts:
//
//   - loading (usdt_object.go): LoadCollectionSpec;
//   - sites (usdt_elf.go): .note.stapsdt notes, .stapsdt.base adjustment, pc
//     and semaphore to file offsets, `nop; nop5` moved by one byte;
//   - specs (usdt_arg.go, usdt_spec.go): libbpf's argument parser and the
//     binary layout of struct __bpf_usdt_spec;
//   - kernel features (usdt_features.go): libbpf's probes;
//   - attach (this file): spec ids, the two spec maps, and one uprobe_multi
//     link per USDT attachment, or one perf-event uprobe per site.

// USDTOptions are the options of AttachUSDT.
type USDTOptions struct {
	// PID restricts the probe to one process (for uprobe_multi links its
	// whole thread group from Linux 6.10 on). Zero means every process:
	// cilium's convention, not libbpf's (0 = the calling process).
	PID uint32
	// Cookie is the user's cookie, what bpf_usdt_cookie() returns (libbpf's
	// bpf_usdt_opts.usdt_cookie). bpf_get_attach_cookie() is the bridge's spec
	// id, as under libbpf: do not read it.
	Cookie uint64
	// Features are the kernel features to attach for. Nil: ProbeUSDTFeatures.
	// They must be the ones the program was loaded for (SpecOptions).
	Features *USDTFeatures
}

// USDTSite is one place a USDT probe was attached at.
type USDTSite struct {
	// Address is the site's address as the program sees it in the probed
	// binary (the note's pc adjusted for prelinking, + 1 for a `nop; nop5`
	// site; for a shared object without BPF cookies, its runtime address in
	// the process).
	Address uint64
	// FileOffset is where the uprobe is, in the file.
	FileOffset uint64
	// Semaphore is the file offset of the probe's semaphore, 0 without one.
	Semaphore uint64
	// Args is the note's argument string, e.g. "-4@$42 -8@%rdi".
	Args string
	// SpecID is the slot of the site's argument spec in __bpf_usdt_specs.
	SpecID uint32
	// NopCombo: the site is a `nop; nop5` pair and the kernel has the uprobe
	// syscall, so the probe sits on the nop5 (as libbpf 1.7 puts it), where
	// Linux 6.18 and later optimise it into a call.
	NopCombo bool
}

// usdtLinkBase is link.Link under an unexported name, so that embedding it
// gives USDTLink the interface's methods (link.Link has an unexported one)
// without an exported field.
type usdtLinkBase = link.Link

// USDTLink is the link AttachUSDT returns (as a link.Link): one uprobe_multi
// link for every site, or, on kernels without uprobe_multi, one perf-event
// uprobe per site. Close detaches all of them and releases their spec ids.
// Update, Pin and Unpin act on the one link, and wrap ErrNotSupported when
// there are several; Info describes the first.
type USDTLink struct {
	usdtLinkBase // the first link
	rest         []link.Link
	sites        []USDTSite
	multi        bool
	release      func()
	closeOnce    sync.Once
}

// Sites lists the places the probe was attached at, in note order.
func (l *USDTLink) Sites() []USDTSite { return append([]USDTSite(nil), l.sites...) }

// UprobeMulti reports whether the probe is one uprobe_multi link (true) or
// one perf-event uprobe per site (false).
func (l *USDTLink) UprobeMulti() bool { return l.multi }

// Close detaches every link of the probe.
func (l *USDTLink) Close() error {
	var err error
	l.closeOnce.Do(func() {
		for i := len(l.rest) - 1; i >= 0; i-- {
			err = errors.Join(err, l.rest[i].Close())
		}
		err = errors.Join(err, l.usdtLinkBase.Close())
		if l.release != nil {
			l.release()
		}
	})
	return err
}

func (l *USDTLink) single(op string) error {
	if len(l.rest) > 0 {
		return fmt.Errorf("usdt: %s a probe made of %d uprobes: %w", op, len(l.rest)+1, ErrNotSupported)
	}
	return nil
}

// Update replaces the program of a probe that is one link.
func (l *USDTLink) Update(prog *ebpf.Program) error {
	if err := l.single("update"); err != nil {
		return err
	}
	return l.usdtLinkBase.Update(prog)
}

// Pin pins a probe that is one link.
func (l *USDTLink) Pin(path string) error {
	if err := l.single("pin"); err != nil {
		return err
	}
	return l.usdtLinkBase.Pin(path)
}

// Unpin unpins a probe that is one link.
func (l *USDTLink) Unpin() error {
	if err := l.single("unpin"); err != nil {
		return err
	}
	return l.usdtLinkBase.Unpin()
}

// Info describes the first link of the probe (the only one with uprobe_multi).
func (l *USDTLink) Info() (*link.Info, error) { return l.usdtLinkBase.Info() }

// AttachUSDT attaches prog to every site of the USDT probe provider:name in
// ex, the way libbpf's bpf_program__attach_usdt does (libbpf 1.7's usdt.c,
// x86_64), so that the program's bpf_usdt_arg(), bpf_usdt_arg_cnt() and
// bpf_usdt_cookie() (libbpf's usdt.bpf.h) work as under libbpf.
//
// prog must come from an object loaded through LoadCollectionSpec (plain
// cilium cannot load usdt.bpf.h objects) and use usdt.bpf.h's maps; they are
// found through the program itself, so a Collection or bpf2go objects serve
// alike. The sites come from the binary's .note.stapsdt notes; each distinct
// argument string gets a spec id in __bpf_usdt_specs (libbpf's layout of
// struct __bpf_usdt_spec, opts.Cookie in it), and semaphores are counted by
// the kernel while the probe is attached. opts may be nil.
//
// The link is one uprobe_multi link (Linux 6.6, with the process-wide pid
// filter: 6.10, 6.6.35, 6.9.5), else one perf-event uprobe per site. Spec ids
// travel as BPF cookies (Linux 5.15), else through __bpf_usdt_ip_to_spec_id
// keyed by address (a shared object then needs opts.PID). A semaphore needs
// the uprobe PMU's ref_ctr_offset (Linux 4.20). Where the kernel lacks what a
// probe needs, the error wraps ErrNotSupported (and, like libbpf's, carries
// an errno: EOPNOTSUPP).
//
// Errors carry libbpf's errnos: ENOENT for a missing binary, notes section or
// provider:name; EBADF for a file that is not a 64-bit ELF executable or
// shared object; EINVAL for an argument spec libbpf does not parse (such as
// "-8@sym(%rip)"); E2BIG when the spec map is full; ESRCH when the program
// does not use usdt.bpf.h's maps.
//
// Architectures other than x86_64 are not supported (libbpf has per-arch
// argument rules; the bridge has x86_64's only): the error wraps
// ErrNotSupported.
func AttachUSDT(ex *link.Executable, provider, name string, prog *ebpf.Program, opts *USDTOptions) (link.Link, error) {
	l, err := attachUSDT(ex, provider, name, prog, opts)
	if err != nil {
		return nil, err // not a typed nil
	}
	return l, nil
}

func attachUSDT(ex *link.Executable, provider, name string, prog *ebpf.Program, opts *USDTOptions) (_ *USDTLink, err error) {
	if prog == nil {
		return nil, errors.New("usdt: nil program")
	}
	if provider == "" || name == "" {
		return nil, invalidf("usdt: provider %q and name %q must both be non-empty", provider, name)
	}
	if opts == nil {
		opts = &USDTOptions{}
	}
	binary, err := executablePath(ex)
	if err != nil {
		return nil, fmt.Errorf("usdt: %w", err)
	}
	feat := opts.Features
	if feat == nil {
		f, err := ProbeUSDTFeatures()
		if err != nil {
			return nil, err
		}
		feat = &f
	}
	maps, err := usdtMapsOf(prog)
	if err != nil {
		return nil, err
	}
	defer maps.close()

	f, ef, err := openUSDTBinary(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer ef.Close()

	libbpfPID := -1 // libbpf's pid convention; its 0 (self) never arises here
	if opts.PID != 0 {
		libbpfPID = int(opts.PID)
	}
	sites, err := collectUSDTSites(f, ef, binary, libbpfPID, provider, name, opts.Cookie, *feat)
	if err != nil {
		return nil, err
	}

	alloc := specAllocators.get(maps.specsID, maps.specs.MaxEntries())
	var ids []uint32 // the spec ids this attachment took
	var ipKeys []uint64
	var links []link.Link
	defer func() {
		if err != nil {
			for i := len(links) - 1; i >= 0; i-- {
				_ = links[i].Close()
			}
			for _, k := range ipKeys {
				_ = maps.ipToSpec.Delete(k)
			}
			alloc.release(ids)
		}
	}()

	newIDs, err := alloc.assign(sites, &ids)
	if err != nil {
		return nil, usdtErrorf(unix.E2BIG, "no free spec id for '%s:%s' in '%s': %s has %d entries",
			provider, name, binary, usdtSpecsMapName, maps.specs.MaxEntries())
	}
	for i := range sites {
		s := &sites[i]
		id := s.SpecID
		if newIDs[i] {
			value, err := s.Spec.MarshalBinary()
			if err != nil {
				return nil, err
			}
			if err := maps.specs.Update(id, value, ebpf.UpdateAny); err != nil {
				return nil, fmt.Errorf("usdt: failed to set USDT spec #%d for '%s:%s' in '%s': %w", id, provider, name, binary, err)
			}
		}
		if !feat.BPFCookie {
			if err := maps.ipToSpec.Update(s.AbsIP, id, ebpf.UpdateNoExist); err != nil {
				if errors.Is(err, ebpf.ErrKeyExist) {
					return nil, fmt.Errorf("usdt: IP collision detected for spec #%d for '%s:%s' in '%s': %w", id, provider, name, binary, err)
				}
				return nil, fmt.Errorf("usdt: failed to map IP %#x to spec #%d for '%s:%s' in '%s': %w", s.AbsIP, id, provider, name, binary, err)
			}
			ipKeys = append(ipKeys, s.AbsIP)
		}
	}

	multi := false
	if feat.UprobeMulti {
		mo := &link.UprobeMultiOptions{PID: opts.PID}
		for _, s := range sites {
			mo.Addresses = append(mo.Addresses, s.RelIP)
			mo.Cookies = append(mo.Cookies, uint64(s.SpecID))
			mo.RefCtrOffsets = append(mo.RefCtrOffsets, s.SemaOff)
		}
		l, err := ex.UprobeMulti(nil, prog, mo)
		switch {
		case err == nil:
			links, multi = []link.Link{l}, true
		case errors.Is(err, ebpf.ErrNotSupported):
			// cilium's own probe says no: single uprobes, as libbpf falls back.
		default:
			return nil, fmt.Errorf("usdt: failed to attach uprobe multi for '%s:%s' in '%s': %w", provider, name, binary, err)
		}
	}
	if !multi {
		for i, s := range sites {
			uo := &link.UprobeOptions{Address: s.RelIP, RefCtrOffset: s.SemaOff, PID: int(opts.PID)}
			if feat.BPFCookie {
				uo.Cookie = uint64(s.SpecID)
			}
			l, err := ex.Uprobe("", prog, uo)
			if err != nil {
				return nil, fmt.Errorf("usdt: failed to attach uprobe #%d for '%s:%s' in '%s': %w", i, provider, name, binary, err)
			}
			links = append(links, l)
		}
	}

	ipMap, err := maps.ipToSpec.Clone() // outlives this call, for Close
	if err != nil {
		return nil, fmt.Errorf("usdt: %w", err)
	}
	out := &USDTLink{usdtLinkBase: links[0], rest: links[1:], multi: multi}
	for _, s := range sites {
		out.sites = append(out.sites, USDTSite{Address: s.AbsIP, FileOffset: s.RelIP, Semaphore: s.SemaOff,
			Args: s.Note.Args, SpecID: s.SpecID, NopCombo: s.NopCombo})
	}
	takenIDs, takenKeys := ids, ipKeys
	out.release = func() {
		// As libbpf's bpf_link_usdt_detach: forget the addresses, free the ids.
		for _, k := range takenKeys {
			_ = ipMap.Delete(k)
		}
		ipMap.Close()
		alloc.release(takenIDs)
	}
	return out, nil
}

// usdtMaps are usdt.bpf.h's two maps, as the program uses them.
type usdtMaps struct {
	specs, ipToSpec *ebpf.Map
	specsID         ebpf.MapID
}

func (m *usdtMaps) close() {
	m.specs.Close()
	m.ipToSpec.Close()
}

// usdtMapsOf finds __bpf_usdt_specs and __bpf_usdt_ip_to_spec_id among the
// maps prog uses (BPF_OBJ_GET_INFO_BY_FD), by their names as the kernel keeps
// them (15 characters: "__bpf_usdt_spec", "__bpf_usdt_ip_t") and their
// types and sizes. Missing, it is ESRCH, as libbpf's usdt_manager_new.
func usdtMapsOf(prog *ebpf.Program) (_ *usdtMaps, err error) {
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("usdt: program info: %w", err)
	}
	ids, ok := info.MapIDs()
	if !ok {
		return nil, fmt.Errorf("usdt: the kernel does not list the program's maps: %w", ErrNotSupported)
	}
	m := &usdtMaps{}
	defer func() {
		if err != nil {
			if m.specs != nil {
				m.specs.Close()
			}
			if m.ipToSpec != nil {
				m.ipToSpec.Close()
			}
		}
	}()
	for _, id := range ids {
		mp, err := ebpf.NewMapFromID(id)
		if err != nil {
			return nil, fmt.Errorf("usdt: map %d of the program: %w", id, err)
		}
		mi, err := mp.Info()
		if err != nil {
			mp.Close()
			return nil, fmt.Errorf("usdt: map %d of the program: %w", id, err)
		}
		switch {
		case m.specs == nil && kernelName(mi.Name, usdtSpecsMapName):
			if mp.Type() != ebpf.Array || mp.KeySize() != 4 || mp.ValueSize() != usdtSpecSize {
				mp.Close()
				return nil, invalidf("usdt: map %s is a %v with %d-byte keys and %d-byte values, want an array of 4 and %d (struct %s)",
					usdtSpecsMapName, mp.Type(), mp.KeySize(), mp.ValueSize(), usdtSpecSize, usdtSpecStructName)
			}
			m.specs, m.specsID = mp, id
		case m.ipToSpec == nil && kernelName(mi.Name, usdtIPToSpecMapName):
			if mp.Type() != ebpf.Hash || mp.KeySize() != 8 || mp.ValueSize() != 4 {
				mp.Close()
				return nil, invalidf("usdt: map %s is a %v with %d-byte keys and %d-byte values, want a hash of 8 and 4",
					usdtIPToSpecMapName, mp.Type(), mp.KeySize(), mp.ValueSize())
			}
			m.ipToSpec = mp
		default:
			mp.Close()
		}
	}
	if m.specs == nil || m.ipToSpec == nil {
		return nil, usdtErrorf(unix.ESRCH, "failed to find USDT support BPF maps, did you forget to include bpf/usdt.bpf.h?")
	}
	return m, nil
}

// kernelName reports whether name, as the kernel reports a map's name
// (BPF_OBJ_NAME_LEN: at most 15 characters), is full.
func kernelName(name, full string) bool {
	const max = 15
	if len(full) > max {
		full = full[:max]
	}
	return name == full
}

// specAllocator hands out the spec ids of one __bpf_usdt_specs map, as
// libbpf's usdt_manager does for one object: freed ids first, then the next
// unused one, below the map's size.
type specAllocator struct {
	mu    sync.Mutex
	key   ebpf.MapID
	limit uint32
	next  uint32
	free  []uint32
	users int // attachments holding ids (or being made)
}

// specAllocatorTable keys allocators by the kernel's id of the spec map, so
// that every attachment using one map (whichever *ebpf.Map or collection it
// came through) shares its ids. An allocator goes away with its last
// attachment: while a probe is attached its program, and so the map and its
// id, stay alive.
type specAllocatorTable struct {
	mu sync.Mutex
	m  map[ebpf.MapID]*specAllocator
}

var specAllocators = &specAllocatorTable{m: map[ebpf.MapID]*specAllocator{}}

func (t *specAllocatorTable) get(id ebpf.MapID, limit uint32) *specAllocator {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.m[id]
	if a == nil {
		a = &specAllocator{key: id, limit: limit}
		t.m[id] = a
	}
	a.mu.Lock()
	a.users++
	a.mu.Unlock()
	return a
}

// errNoSpecID: the spec map is full.
var errNoSpecID = errors.New("no free spec id")

// assign is libbpf's allocate_spec_id over one attachment's sites: sites with
// the same argument string share a spec id (they share the attachment's
// cookie too, so string + cookie is distinct). It sets each site's SpecID,
// appends the ids it took to *taken and reports which sites introduce a new
// id (whose spec must be written).
func (a *specAllocator) assign(sites []usdtSite, taken *[]uint32) ([]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	byArgs := map[string]uint32{}
	isNew := make([]bool, len(sites))
	for i := range sites {
		s := &sites[i]
		if id, ok := byArgs[s.Note.Args]; ok {
			s.SpecID = id
			continue
		}
		var id uint32
		switch {
		case len(a.free) > 0:
			id, a.free = a.free[len(a.free)-1], a.free[:len(a.free)-1]
		case a.next < a.limit:
			id = a.next
			a.next++
		default:
			return nil, errNoSpecID
		}
		*taken = append(*taken, id)
		s.SpecID = id
		byArgs[s.Note.Args] = id
		isNew[i] = true
	}
	return isNew, nil
}

// release returns ids to the free list and drops one user; the last user
// removes the allocator.
func (a *specAllocator) release(ids []uint32) {
	specAllocators.mu.Lock()
	defer specAllocators.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free = append(a.free, ids...)
	a.users--
	if a.users <= 0 {
		delete(specAllocators.m, a.key)
	}
}
