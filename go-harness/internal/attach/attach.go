// Package attach attaches loaded probes with cilium/ebpf's link package, or
// through a compat bridge where cilium has no API for the kind.
package attach

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"probeconf/bridge"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/classify"
	"probeconf/go-harness/internal/loader"
	"probeconf/go-harness/internal/protocol"
)

// Attachment is the links of one probe and how they were made.
type Attachment struct {
	Name   string
	Via    string // protocol.ViaNative or protocol.ViaCompat
	Bridge string // compat registry id when Via is compat
	Links  []link.Link
	// ProgID is the kernel's id of the probe's program: the runner reads
	// per-program counters (recursion misses) by it, for either loader.
	ProgID uint32
}

// progID is the kernel's id of prog, 0 when the kernel does not say.
func progID(prog *ebpf.Program) uint32 {
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			return uint32(id)
		}
	}
	return 0
}

// Report is the protocol's view of the attachment.
func (a *Attachment) Report() protocol.AttachedProbe {
	return protocol.AttachedProbe{Name: a.Name, Via: a.Via, Bridge: a.Bridge, ProgID: a.ProgID}
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
	// bridge.PrefixSyscallSymbols.
	PrefixSyscalls func(symbols []string) ([]string, bool, error)
	// USDTFeatures gives the kernel features the cilium-usdt bridge decides
	// by (uprobe_multi or single uprobes, cookies or the ip map, nop;nop5);
	// nil means bridge.ProbeUSDTFeatures. Tests force the fallbacks with it.
	// It must agree with the loader's (LINUX_HAS_BPF_COOKIE).
	USDTFeatures func() (bridge.USDTFeatures, error)
}

// Probe attaches one loaded instance. On error nothing of it stays attached
// and the error is a *protocol.Failure of phase attach.
func Probe(inst *loader.Instance, opts Options) (*Attachment, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.PrefixSyscalls == nil {
		opts.PrefixSyscalls = bridge.PrefixSyscallSymbols
	}
	if opts.USDTFeatures == nil {
		opts.USDTFeatures = bridge.ProbeUSDTFeatures
	}
	var (
		a   *Attachment
		err error
	)
	switch plan := PlanFor(inst.Probe); {
	case plan.Call == CallUSDT:
		a, err = attachUSDT(inst, opts)
	case inst.Probe.Kind.Tracing():
		a, err = attachTracing(inst, plan)
	default:
		a, err = attach(inst.Probe, inst.Program, opts)
	}
	if err != nil {
		return nil, protocol.Fail(protocol.PhaseAttach, inst.Probe, err)
	}
	return a, nil
}

// Call names the library call (or bridge) that creates a probe's links.
type Call string

const (
	CallUprobe         Call = "link.Executable.Uprobe"
	CallUretprobe      Call = "link.Executable.Uretprobe"
	CallUprobeMulti    Call = "link.Executable.UprobeMulti"
	CallUretprobeMulti Call = "link.Executable.UretprobeMulti"
	CallUprobeSession  Call = "bridge.UprobeMultiSession" // bridge cilium-uprobe-session
	CallKprobe         Call = "link.Kprobe"
	CallKretprobe      Call = "link.Kretprobe"
	CallKprobeMulti    Call = "link.KprobeMulti"
	CallKretprobeMulti Call = "link.KretprobeMulti"
	CallUSDT           Call = "bridge.AttachUSDT" // bridge cilium-usdt
	CallTracing        Call = "link.AttachTracing"
	CallFsession       Call = "bridge.AttachFsession" // bridge cilium-fsession-link
	CallTracingMulti   Call = "bridge.TracingMulti"   // bridge cilium-tracing-multi
)

// Plan is how one probe is attached: the call and the flags it gets. It
// depends only on the kind, the probe's retprobe/session fields
// (protocol.Probe.WantRetprobe, WantSession) and, for fsession, whether its
// target has a cookie; the kernel decides whether the combination works with
// the loaded program.
type Plan struct {
	Call Call
	// AttachType is the attach type of the tracing calls (fentry/fexit: the
	// program's own; the multi kinds: 59, 60, 61). AttachNone for
	// link.AttachTracing means BPF_RAW_TRACEPOINT_OPEN (no cookie).
	AttachType ebpf.AttachType
	// Session: KprobeMultiOptions.Session (attach type KPROBE_SESSION, 56) for
	// the kprobe calls; always true for CallUprobeSession (attach type 57).
	Session bool
	// Return: BPF_F_UPROBE_MULTI_RETURN in the uprobe session bridge's flags.
	// The other calls express retprobe by their choice of function.
	Return bool
}

// PlanFor maps a validated probe to its Plan.
//
//   - uprobe/uretprobe: retprobe picks Uprobe or Uretprobe (session is refused
//     by validation).
//   - uprobe.multi/uretprobe.multi/uprobe.session: without session, retprobe
//     picks UprobeMulti or UretprobeMulti (attach type 48, whatever the
//     program); with session, the bridge links with attach type 57 and sets
//     BPF_F_UPROBE_MULTI_RETURN when retprobe is asked.
//   - kprobe/kretprobe: retprobe picks Kprobe or Kretprobe.
//   - kprobe.multi/kretprobe.multi/kprobe.session: retprobe picks KprobeMulti
//     or KretprobeMulti, session sets KprobeMultiOptions.Session. cilium
//     expresses both together (KretprobeMulti with Session: attach type 56
//     and BPF_F_KPROBE_MULTI_RETURN), so the pair goes to the kernel too.
//   - usdt: the cilium-usdt bridge (validation refuses retprobe and session).
//   - fentry/fexit: link.AttachTracing with the kind's attach type and the
//     target's cookie (validation allows only the kind's own flags).
//   - fsession: with a cookie the cilium-fsession-link bridge
//     (link.AttachTracing refuses attach type 58); without one,
//     link.AttachTracing with AttachNone, which cilium sends as
//     BPF_RAW_TRACEPOINT_OPEN (no cookie; the kernel links any tracing
//     program so), as the libbpf harness uses attach_trace without a cookie.
//   - fentry.multi/fexit.multi/fsession.multi: the cilium-tracing-multi
//     bridge with attach type 59, 60 or 61.
func PlanFor(p *protocol.Probe) Plan {
	switch p.Kind {
	case protocol.KindUSDT:
		return Plan{Call: CallUSDT}
	case protocol.KindFentry:
		return Plan{Call: CallTracing, AttachType: ebpf.AttachTraceFEntry}
	case protocol.KindFexit:
		return Plan{Call: CallTracing, AttachType: ebpf.AttachTraceFExit}
	case protocol.KindFsession:
		if p.Targets[0].Cookie == 0 {
			return Plan{Call: CallTracing, AttachType: ebpf.AttachNone}
		}
		return Plan{Call: CallFsession, AttachType: bridge.AttachTraceFSession}
	case protocol.KindFentryMulti:
		return Plan{Call: CallTracingMulti, AttachType: bridge.AttachTraceFEntryMulti}
	case protocol.KindFexitMulti:
		return Plan{Call: CallTracingMulti, AttachType: bridge.AttachTraceFExitMulti}
	case protocol.KindFsessionMulti:
		return Plan{Call: CallTracingMulti, AttachType: bridge.AttachTraceFSessionMulti}
	}
	ret, session := p.WantRetprobe(), p.WantSession()
	pick := func(entry, exit Call) Call {
		if ret {
			return exit
		}
		return entry
	}
	switch {
	case p.Kind.User() && p.Kind.SingleLink():
		return Plan{Call: pick(CallUprobe, CallUretprobe)}
	case p.Kind.User() && session:
		return Plan{Call: CallUprobeSession, Session: true, Return: ret}
	case p.Kind.User():
		return Plan{Call: pick(CallUprobeMulti, CallUretprobeMulti)}
	case p.Kind.SingleLink():
		return Plan{Call: pick(CallKprobe, CallKretprobe)}
	default:
		return Plan{Call: pick(CallKprobeMulti, CallKretprobeMulti), Session: session}
	}
}

func attach(p *protocol.Probe, prog *ebpf.Program, opts Options) (*Attachment, error) {
	a := &Attachment{Name: p.Name, Via: protocol.ViaNative, ProgID: progID(prog)}
	plan := PlanFor(p)
	switch {
	case p.Kind.User():
		scope, pidN := pidOf(p)
		pid, err := compat.CiliumPID(scope, pidN)
		if err != nil {
			return nil, err
		}
		// A missing binary fails here (stat), a file that is not ELF at the
		// first symbol lookup (v0.17.3 and v0.20.0: here too): both at
		// attach, classified by the classifier.
		ex, err := link.OpenExecutable(p.Binary)
		if err != nil {
			if plan.Call == CallUprobeSession {
				err = fmt.Errorf("uprobe session: %w", err)
			}
			return nil, err
		}
		if plan.Call == CallUprobeSession {
			a.Via, a.Bridge = protocol.ViaCompat, compat.BridgeUprobeSession
		}
		if a.Links, err = attachUser(ex, p, plan, prog, pid); err != nil {
			return nil, err
		}
		return a, nil

	default:
		links, bridged, err := attachKernel(p, plan, prog, opts)
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

func attachUser(ex *link.Executable, p *protocol.Probe, plan Plan, prog *ebpf.Program, pid uint32) (_ []link.Link, err error) {
	switch plan.Call {
	case CallUprobe, CallUretprobe:
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
			if plan.Call == CallUprobe {
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

	case CallUprobeMulti, CallUretprobeMulti, CallUprobeSession:
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
		switch plan.Call {
		case CallUprobeMulti:
			l, err = ex.UprobeMulti(symbols, prog, opts)
		case CallUretprobeMulti:
			l, err = ex.UretprobeMulti(symbols, prog, opts)
		default:
			l, err = bridge.UprobeMultiSession(ex, symbols, prog, &bridge.UprobeSessionOptions{
				Addresses: opts.Addresses, Offsets: opts.Offsets, Cookies: opts.Cookies, PID: pid, Return: plan.Return})
		}
		if err != nil {
			return nil, err
		}
		return []link.Link{l}, nil
	}
	return nil, fmt.Errorf("unreachable: %s for uprobe kind %s", plan.Call, p.Kind)
}

func attachKernel(p *protocol.Probe, plan Plan, prog *ebpf.Program, opts Options) (_ []link.Link, bridged bool, err error) {
	switch plan.Call {
	case CallKprobe, CallKretprobe:
		var links []link.Link
		defer func() {
			if err != nil {
				closeLinks(links)
			}
		}()
		for i, t := range p.Targets {
			ko := &link.KprobeOptions{Cookie: t.Cookie} // offset is 0 by protocol
			var l link.Link
			if plan.Call == CallKprobe {
				l, err = link.Kprobe(t.Symbol, prog, ko)
			} else {
				l, err = link.Kretprobe(t.Symbol, prog, ko)
			}
			if err != nil {
				return nil, false, fmt.Errorf("targets[%d] %s: %w", i, t.Symbol, bridge.KprobeError(err))
			}
			links = append(links, l)
		}
		return links, false, nil

	case CallKprobeMulti, CallKretprobeMulti:
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
		ko := link.KprobeMultiOptions{Symbols: symbols, Cookies: cookies, Session: plan.Session}
		var l link.Link
		if plan.Call == CallKretprobeMulti {
			l, err = link.KretprobeMulti(prog, ko)
		} else {
			l, err = link.KprobeMulti(prog, ko)
		}
		if err != nil {
			return nil, false, err
		}
		return []link.Link{l}, perr == nil && changed, nil
	}
	return nil, false, errors.New("unreachable: " + string(plan.Call) + " for kernel kind " + string(p.Kind))
}

// attachTracing links a BTF-based tracing probe (plan: PlanFor). Its via is
// compat when the loader or the link went through a bridge; the bridge field
// then names every bridge, load first, joined by ",".
func attachTracing(inst *loader.Instance, plan Plan) (*Attachment, error) {
	p := inst.Probe
	bridges := append([]string(nil), inst.Bridges...)
	var (
		l   link.Link
		err error
	)
	switch plan.Call {
	case CallTracing:
		l, err = link.AttachTracing(link.TracingOptions{Program: inst.Program, AttachType: plan.AttachType, Cookie: p.Targets[0].Cookie})
	case CallFsession:
		l, err = bridge.AttachFsession(inst.Program, p.Targets[0].Cookie)
		bridges = append(bridges, compat.BridgeFsessionLink)
	case CallTracingMulti:
		opts := bridge.TracingMultiOptions{AttachType: plan.AttachType}
		if kernel, err := loader.KernelTypes(); err == nil {
			opts.KernelTypes = kernel // else the bridge reads it and reports
		}
		for _, t := range p.Targets {
			opts.Symbols = append(opts.Symbols, t.Symbol)
			opts.Cookies = append(opts.Cookies, t.Cookie)
		}
		l, err = bridge.TracingMulti(inst.Program, opts)
	default:
		return nil, fmt.Errorf("unreachable: %s for tracing kind %s", plan.Call, p.Kind)
	}
	if err != nil {
		return nil, err
	}
	a := &Attachment{Name: p.Name, Via: protocol.ViaNative, Links: []link.Link{l}, ProgID: progID(inst.Program)}
	if len(bridges) > 0 {
		a.Via, a.Bridge = protocol.ViaCompat, strings.Join(slices.Compact(bridges), ",")
	}
	return a, nil
}

// attachUSDT attaches a usdt probe through the cilium-usdt bridge, one
// bridge.AttachUSDT per target, as the libbpf loader makes one
// bpf_program__attach_usdt call per target (each a uprobe_multi link, or
// single uprobes as a fallback). Spec ids are per object (= per probe: each
// probe loads its own instance).
func attachUSDT(inst *loader.Instance, opts Options) (_ *Attachment, err error) {
	p := inst.Probe
	scope, pidN := pidOf(p)
	pid, err := compat.CiliumPID(scope, pidN)
	if err != nil {
		return nil, err
	}
	feat, err := opts.USDTFeatures()
	if err != nil {
		return nil, err
	}
	ex, err := link.OpenExecutable(p.Binary)
	if err != nil {
		return nil, fmt.Errorf("usdt: %w", err)
	}
	a := &Attachment{Name: p.Name, Via: protocol.ViaCompat, Bridge: compat.BridgeUSDT, ProgID: progID(inst.Program)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	fmt.Fprintf(opts.Log, "probe %s: %s: kernel features: %v\n", p.Name, compat.BridgeUSDT, feat)
	for i, t := range p.Targets {
		provider, name, ok := strings.Cut(t.Symbol, ":")
		if !ok || provider == "" || name == "" {
			return nil, fmt.Errorf("targets[%d]: %w", i, classify.Invalidf("usdt target %q: want provider:name", t.Symbol))
		}
		l, err := bridge.AttachUSDT(ex, provider, name, inst.Program, &bridge.USDTOptions{PID: pid, Cookie: t.Cookie, Features: &feat})
		if err != nil {
			return nil, fmt.Errorf("targets[%d] %s: %w", i, t.Symbol, err)
		}
		a.Links = append(a.Links, l)
		describeUSDT(opts.Log, fmt.Sprintf("probe %s: %s: %s: ", p.Name, compat.BridgeUSDT, t.Symbol), l)
	}
	return a, nil
}

// describeUSDT is one human line per site of a USDT link, for stderr.
func describeUSDT(w io.Writer, prefix string, l link.Link) {
	ul, ok := l.(*bridge.USDTLink)
	if !ok {
		return
	}
	sites := ul.Sites()
	how := "one uprobe_multi link"
	if !ul.UprobeMulti() {
		how = "one uprobe per site"
	}
	fmt.Fprintf(w, "%s%d site(s), %s\n", prefix, len(sites), how)
	for i, s := range sites {
		moved := ""
		if s.NopCombo {
			moved = " (nop;nop5: +1)"
		}
		fmt.Fprintf(w, "%s  site %d: address %#x, file offset %#x%s, semaphore offset %#x, spec #%d, args %q\n",
			prefix, i, s.Address, s.FileOffset, moved, s.Semaphore, s.SpecID, s.Args)
	}
}
