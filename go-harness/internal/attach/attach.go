// Package attach attaches loaded probes with cilium/ebpf's link package, or
// through a compat bridge where cilium has no API for the kind.
package attach

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/loader"
	"probeconf/go-harness/internal/protocol"
)

// Attachment is the links of one probe and how they were made.
type Attachment struct {
	Name   string
	Via    string // protocol.ViaNative or protocol.ViaCompat
	Bridge string // compat registry id when Via is compat
	Links  []link.Link
}

// Report is the protocol's view of the attachment.
func (a *Attachment) Report() protocol.AttachedProbe {
	return protocol.AttachedProbe{Name: a.Name, Via: a.Via, Bridge: a.Bridge}
}

// Close detaches every link of a.
func (a *Attachment) Close() {
	closeLinks(a.Links)
	a.Links = nil
}

func closeLinks(links []link.Link) {
	for i := len(links) - 1; i >= 0; i-- {
		_ = links[i].Close()
	}
}

// Options are the attach-time knobs that tests replace.
type Options struct {
	// Log receives human notes (stderr).
	Log io.Writer
	// PrefixSyscalls is the kprobe-multi syscall bridge; nil means
	// compat.PrefixSyscallSymbolsFromKernel.
	PrefixSyscalls func(symbols []string) ([]string, bool, error)
}

// Probe attaches one loaded instance. On error nothing of it stays attached
// and the error is a *protocol.Failure of phase attach.
func Probe(inst *loader.Instance, opts Options) (*Attachment, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.PrefixSyscalls == nil {
		opts.PrefixSyscalls = compat.PrefixSyscallSymbolsFromKernel
	}
	a, err := attach(inst.Probe, inst.Program, opts)
	if err != nil {
		return nil, protocol.Fail(protocol.PhaseAttach, inst.Probe, err)
	}
	return a, nil
}

func attach(p *protocol.Probe, prog *ebpf.Program, opts Options) (*Attachment, error) {
	a := &Attachment{Name: p.Name, Via: protocol.ViaNative}
	switch {
	case p.Kind.User():
		scope, pidN := pidOf(p)
		pid, err := compat.CiliumPID(scope, pidN)
		if err != nil {
			return nil, err
		}
		if p.Kind == protocol.KindUprobeSession {
			targets := make([]compat.UprobeTarget, len(p.Targets))
			for i, t := range p.Targets {
				targets[i] = compat.UprobeTarget{Symbol: t.Symbol, Offset: t.Offset, Cookie: t.Cookie}
			}
			l, err := compat.AttachUprobeSession(prog, p.Binary, targets, pid)
			if err != nil {
				return nil, err
			}
			a.Via, a.Bridge, a.Links = protocol.ViaCompat, compat.BridgeUprobeSession, []link.Link{l}
			return a, nil
		}
		ex, err := link.OpenExecutable(p.Binary)
		if err != nil {
			return nil, err
		}
		if a.Links, err = attachUser(ex, p, prog, pid); err != nil {
			return nil, err
		}
		return a, nil

	default:
		links, bridged, err := attachKernel(p, prog, opts)
		if err != nil {
			return nil, err
		}
		a.Links = links
		if bridged {
			a.Via, a.Bridge = protocol.ViaCompat, compat.BridgeKprobeMultiSyscall
		}
		return a, nil
	}
}

func pidOf(p *protocol.Probe) (string, uint32) {
	if p.PID == nil {
		return protocol.ScopeAll, 0
	}
	if p.PID.PID == nil {
		return p.PID.Scope, 0
	}
	return p.PID.Scope, *p.PID.PID
}

func attachUser(ex *link.Executable, p *protocol.Probe, prog *ebpf.Program, pid uint32) (_ []link.Link, err error) {
	switch p.Kind {
	case protocol.KindUprobe, protocol.KindUretprobe:
		var links []link.Link
		defer func() {
			if err != nil {
				closeLinks(links)
			}
		}()
		for i, t := range p.Targets {
			opts := &link.UprobeOptions{Cookie: t.Cookie, PID: int(pid)}
			if t.Symbol == "" {
				opts.Address = t.Offset // absolute file offset
			} else {
				opts.Offset = t.Offset // relative to the symbol
			}
			var l link.Link
			if p.Kind == protocol.KindUprobe {
				l, err = ex.Uprobe(t.Symbol, prog, opts)
			} else {
				l, err = ex.Uretprobe(t.Symbol, prog, opts)
			}
			if err != nil {
				return nil, fmt.Errorf("targets[%d] %s+%#x: %w", i, t.Symbol, t.Offset, err)
			}
			links = append(links, l)
		}
		return links, nil

	case protocol.KindUprobeMulti, protocol.KindUretprobeMulti:
		symbols := make([]string, len(p.Targets))
		opts := &link.UprobeMultiOptions{
			Cookies: make([]uint64, len(p.Targets)),
			Offsets: make([]uint64, len(p.Targets)),
			PID:     pid,
		}
		// cilium resolves target i from Addresses[i] when it is non-zero and
		// from symbols[i] otherwise, adding Offsets[i] either way.
		var addresses []uint64
		for i, t := range p.Targets {
			symbols[i] = t.Symbol
			opts.Cookies[i] = t.Cookie
			if t.Symbol == "" {
				if addresses == nil {
					addresses = make([]uint64, len(p.Targets))
				}
				addresses[i] = t.Offset
			} else {
				opts.Offsets[i] = t.Offset
			}
		}
		opts.Addresses = addresses
		var l link.Link
		if p.Kind == protocol.KindUprobeMulti {
			l, err = ex.UprobeMulti(symbols, prog, opts)
		} else {
			l, err = ex.UretprobeMulti(symbols, prog, opts)
		}
		if err != nil {
			return nil, err
		}
		return []link.Link{l}, nil
	}
	return nil, fmt.Errorf("kind %s is not a uprobe kind", p.Kind)
}

func attachKernel(p *protocol.Probe, prog *ebpf.Program, opts Options) (_ []link.Link, bridged bool, err error) {
	switch p.Kind {
	case protocol.KindKprobe, protocol.KindKretprobe:
		var links []link.Link
		defer func() {
			if err != nil {
				closeLinks(links)
			}
		}()
		for i, t := range p.Targets {
			ko := &link.KprobeOptions{Cookie: t.Cookie} // offset is 0 by protocol
			var l link.Link
			if p.Kind == protocol.KindKprobe {
				l, err = link.Kprobe(t.Symbol, prog, ko)
			} else {
				l, err = link.Kretprobe(t.Symbol, prog, ko)
			}
			if err != nil {
				return nil, false, fmt.Errorf("targets[%d] %s: %w", i, t.Symbol, compat.NormalizeKprobeError(err))
			}
			links = append(links, l)
		}
		return links, false, nil

	case protocol.KindKprobeMulti, protocol.KindKretprobeMulti, protocol.KindKprobeSession:
		symbols := make([]string, len(p.Targets))
		cookies := make([]uint64, len(p.Targets))
		for i, t := range p.Targets {
			symbols[i], cookies[i] = t.Symbol, t.Cookie
		}
		prefixed, changed, perr := opts.PrefixSyscalls(symbols)
		switch {
		case perr != nil:
			// Without kallsyms the bridge cannot decide; attach as asked and
			// let the kernel name a missing symbol.
			fmt.Fprintf(opts.Log, "probe %s: %s bridge skipped: %v\n", p.Name, compat.BridgeKprobeMultiSyscall, perr)
		case changed:
			fmt.Fprintf(opts.Log, "probe %s: %s: %v -> %v\n", p.Name, compat.BridgeKprobeMultiSyscall, symbols, prefixed)
			symbols = prefixed
		}
		ko := link.KprobeMultiOptions{Symbols: symbols, Cookies: cookies, Session: p.Kind == protocol.KindKprobeSession}
		var l link.Link
		if p.Kind == protocol.KindKretprobeMulti {
			l, err = link.KretprobeMulti(prog, ko)
		} else {
			l, err = link.KprobeMulti(prog, ko)
		}
		if err != nil {
			return nil, false, err
		}
		return []link.Link{l}, perr == nil && changed, nil
	}
	return nil, false, errors.New("unreachable: kind " + string(p.Kind))
}
