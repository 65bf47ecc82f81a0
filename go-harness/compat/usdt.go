package compat

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The cilium-usdt bridge: USDT probes through cilium/ebpf, on the very object
// libbpf attaches (a program built with libbpf's usdt.bpf.h), mirroring libbpf
// 1.7's usdt.c. cilium/ebpf has no USDT support at all. The parts:
//
//   - loading (usdt_object.go): usdt.bpf.h's __weak maps rebound as global
//     (LoadCollectionSpec), and LINUX_HAS_BPF_COOKIE filled
//     (FillBPFCookieKconfig);
//   - sites (usdt_elf.go): .note.stapsdt notes, .stapsdt.base adjustment, pc
//     and semaphore to file offsets, `nop; nop5` moved by one byte;
//   - specs (usdt_arg.go, usdt_spec.go): libbpf's argument parser and the
//     binary layout of struct __bpf_usdt_spec, checked against the object's BTF;
//   - kernel features (usdt_features.go): libbpf's probes;
//   - attach (this file): spec ids, the two spec maps, and one uprobe_multi
//     link per USDT attachment, or one perf-event uprobe per site.

// USDTManager is libbpf's struct usdt_manager for one loaded object: the two
// spec maps and the spec ids handed out so far. libbpf has one per
// bpf_object; the harness has one per probe, whose instance is its object.
type USDTManager struct {
	specs, ipToSpec *ebpf.Map
	nextSpecID      uint32
	feat            USDTFeatures
}

// NewUSDTManager is usdt_manager_new: the object must have usdt.bpf.h's maps
// (ESRCH otherwise, as libbpf), and types (the object's BTF) the struct
// layout the harness writes (CheckUSDTSpecLayout).
func NewUSDTManager(coll *ebpf.Collection, types *btf.Spec, feat USDTFeatures) (*USDTManager, error) {
	specs, ok1 := coll.Maps[usdtSpecsMapName]
	ip, ok2 := coll.Maps[usdtIPToSpecMapName]
	if !ok1 || !ok2 {
		return nil, usdtErrorf(unix.ESRCH, "failed to find USDT support BPF maps, did you forget to include bpf/usdt.bpf.h?")
	}
	if err := CheckUSDTSpecLayout(types); err != nil {
		return nil, err
	}
	if specs.ValueSize() != usdtSpecSize || specs.KeySize() != 4 {
		return nil, invalidf("usdt: map %s has %d-byte keys and %d-byte values, want 4 and %d (struct %s)",
			usdtSpecsMapName, specs.KeySize(), specs.ValueSize(), usdtSpecSize, usdtSpecStructName)
	}
	if ip.KeySize() != 8 || ip.ValueSize() != 4 {
		return nil, invalidf("usdt: map %s has %d-byte keys and %d-byte values, want 8 and 4",
			usdtIPToSpecMapName, ip.KeySize(), ip.ValueSize())
	}
	return &USDTManager{specs: specs, ipToSpec: ip, feat: feat}, nil
}

// USDTTarget is one USDT attachment: bpf_program__attach_usdt's provider,
// name and bpf_usdt_opts.usdt_cookie.
type USDTTarget struct {
	Provider, Name string
	Cookie         uint64
}

// ParseUSDTTarget splits "provider:name" at its first colon (as the Rust
// runner does for libbpf): both parts must be non-empty.
func ParseUSDTTarget(symbol string, cookie uint64) (USDTTarget, error) {
	provider, name, ok := strings.Cut(symbol, ":")
	if !ok || provider == "" || name == "" {
		return USDTTarget{}, invalidf("usdt target %q: want provider:name", symbol)
	}
	return USDTTarget{Provider: provider, Name: name, Cookie: cookie}, nil
}

// USDTAttachment is what one Attach made.
type USDTAttachment struct {
	Links []link.Link
	Sites []USDTSite
	// Multi: one uprobe_multi link for all sites; else one uprobe per site.
	Multi bool
	// Fallback says why single uprobes were used ("" with Multi).
	Fallback string
}

// Close detaches the links.
func (a *USDTAttachment) Close() {
	for i := len(a.Links) - 1; i >= 0; i-- {
		_ = a.Links[i].Close()
	}
	a.Links = nil
}

// Attach is usdt_manager_attach_usdt: every site of the target in binary,
// one spec id per distinct argument string within this attachment (specs of
// one attachment share its cookie, so string + cookie is distinct), spec ids
// handed out in order from 0 for the object, each new spec written into
// __bpf_usdt_specs, and, without BPF cookies, each site's address into
// __bpf_usdt_ip_to_spec_id (BPF_NOEXIST: a collision is EEXIST). Then one
// uprobe_multi link for all sites (cookies = spec ids, ref_ctr_offsets =
// semaphore offsets), or, when the kernel lacks uprobe_multi (libbpf's probe,
// or cilium reports ErrNotSupported), one perf-event uprobe per site
// (cookie = spec id when cookies exist, ref_ctr_offset). pid is cilium's
// convention (0: every process).
func (m *USDTManager) Attach(prog *ebpf.Program, binary string, pid uint32, t USDTTarget) (_ *USDTAttachment, err error) {
	if prog == nil {
		return nil, errors.New("usdt: nil program")
	}
	f, ef, err := openUSDTBinary(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer ef.Close()

	libbpfPID := -1 // libbpf's pid convention; its 0 (self) never arises here
	if pid != 0 {
		libbpfPID = int(pid)
	}
	sites, err := collectUSDTSites(f, ef, binary, libbpfPID, t.Provider, t.Name, t.Cookie, m.feat)
	if err != nil {
		return nil, err
	}

	a := &USDTAttachment{Sites: sites}
	var ipKeys []uint64
	defer func() {
		if err != nil {
			a.Close()
			for _, k := range ipKeys {
				_ = m.ipToSpec.Delete(k)
			}
		}
	}()

	newIDs, err := m.allocateSpecIDs(sites)
	if err != nil {
		return nil, usdtErrorf(unix.E2BIG, "no free spec id for '%s:%s' in '%s': %s has %d entries",
			t.Provider, t.Name, binary, usdtSpecsMapName, m.specs.MaxEntries())
	}
	for i := range sites {
		s := &sites[i]
		id := s.SpecID
		if newIDs[i] {
			value, err := s.Spec.MarshalBinary()
			if err != nil {
				return nil, err
			}
			if err := m.specs.Update(id, value, ebpf.UpdateAny); err != nil {
				return nil, fmt.Errorf("usdt: failed to set USDT spec #%d for '%s:%s' in '%s': %w", id, t.Provider, t.Name, binary, err)
			}
		}
		if !m.feat.BPFCookie {
			if err := m.ipToSpec.Update(s.AbsIP, id, ebpf.UpdateNoExist); err != nil {
				if errors.Is(err, ebpf.ErrKeyExist) {
					return nil, fmt.Errorf("usdt: IP collision detected for spec #%d for '%s:%s' in '%s': %w", id, t.Provider, t.Name, binary, err)
				}
				return nil, fmt.Errorf("usdt: failed to map IP %#x to spec #%d for '%s:%s' in '%s': %w", s.AbsIP, id, t.Provider, t.Name, binary, err)
			}
			ipKeys = append(ipKeys, s.AbsIP)
		}
	}

	ex, err := link.OpenExecutable(binary)
	if err != nil {
		return nil, err
	}
	if m.feat.UprobeMulti {
		opts := &link.UprobeMultiOptions{PID: pid}
		for _, s := range sites {
			opts.Addresses = append(opts.Addresses, s.RelIP)
			opts.Cookies = append(opts.Cookies, uint64(s.SpecID))
			opts.RefCtrOffsets = append(opts.RefCtrOffsets, s.SemaOff)
		}
		l, err := ex.UprobeMulti(nil, prog, opts)
		switch {
		case err == nil:
			a.Links, a.Multi = []link.Link{l}, true
			return a, nil
		case errors.Is(err, ebpf.ErrNotSupported):
			a.Fallback = fmt.Sprintf("cilium's UprobeMulti: %v", err)
		default:
			return nil, fmt.Errorf("usdt: failed to attach uprobe multi for '%s:%s' in '%s': %w", t.Provider, t.Name, binary, err)
		}
	} else {
		a.Fallback = "the kernel has no uprobe_multi link with a process-wide pid filter (libbpf's probe)"
	}
	for i, s := range sites {
		opts := &link.UprobeOptions{Address: s.RelIP, RefCtrOffset: s.SemaOff, PID: int(pid)}
		if m.feat.BPFCookie {
			opts.Cookie = uint64(s.SpecID)
		}
		l, err := ex.Uprobe("", prog, opts)
		if err != nil {
			return nil, fmt.Errorf("usdt: failed to attach uprobe #%d for '%s:%s' in '%s': %w", i, t.Provider, t.Name, binary, err)
		}
		a.Links = append(a.Links, l)
	}
	return a, nil
}

// errNoSpecID: the spec map is full.
var errNoSpecID = errors.New("no free spec id")

// allocateSpecIDs is libbpf's allocate_spec_id over one attachment's sites:
// sites with the same argument string share a spec id (they share the
// attachment's cookie too, so string + cookie is distinct), new ids come in
// order from the object's next free one, below the spec map's size. It sets
// each site's SpecID and reports which sites introduce a new id (whose spec
// must be written). The ids stay taken: the harness never detaches before
// the object goes away, so libbpf's free list is not needed.
func (m *USDTManager) allocateSpecIDs(sites []USDTSite) ([]bool, error) {
	limit := uint32(256) // BPF_USDT_MAX_SPEC_CNT, when tests run without a map
	if m.specs != nil {
		limit = m.specs.MaxEntries()
	}
	byArgs := map[string]uint32{}
	isNew := make([]bool, len(sites))
	for i := range sites {
		s := &sites[i]
		if id, ok := byArgs[s.Note.Args]; ok {
			s.SpecID = id
			continue
		}
		if m.nextSpecID >= limit {
			return nil, errNoSpecID
		}
		s.SpecID = m.nextSpecID
		m.nextSpecID++
		byArgs[s.Note.Args] = s.SpecID
		isNew[i] = true
	}
	return isNew, nil
}

// Describe is one human line per site, for the harness's stderr.
func (a *USDTAttachment) Describe(w io.Writer, prefix string) {
	how := "one uprobe_multi link"
	if !a.Multi {
		how = "one uprobe per site (" + a.Fallback + ")"
	}
	fmt.Fprintf(w, "%s%d site(s), %s\n", prefix, len(a.Sites), how)
	for i, s := range a.Sites {
		moved := ""
		if s.NopCombo {
			moved = " (nop;nop5: +1)"
		}
		fmt.Fprintf(w, "%s  site %d: note pc %#x -> file offset %#x%s, address %#x, semaphore offset %#x, spec #%d, args %q\n",
			prefix, i, s.Note.Loc, s.RelIP, moved, s.AbsIP, s.SemaOff, s.SpecID, s.Note.Args)
	}
}
