// Package protocol holds the wire types of the probeconf ⇄ harness protocol
// (PROTOCOL.md, version 1): what the runner sends, what the harness answers,
// strict decoding of the runner's lines and validation of a request's shape.
package protocol

import (
	"strings"

	"probeconf/bridge"
)

// Version is the protocol version this harness speaks.
const Version = 1

// Library is the module path of the BPF library this harness drives.
const Library = "github.com/cilium/ebpf"

// Kind is a probe kind; its values are the ELF section names of the recorders.
type Kind string

const (
	KindUprobe         Kind = "uprobe"
	KindUretprobe      Kind = "uretprobe"
	KindUprobeMulti    Kind = "uprobe.multi"
	KindUretprobeMulti Kind = "uretprobe.multi"
	KindUprobeSession  Kind = "uprobe.session"
	KindKprobe         Kind = "kprobe"
	KindKretprobe      Kind = "kretprobe"
	KindKprobeMulti    Kind = "kprobe.multi"
	KindKretprobeMulti Kind = "kretprobe.multi"
	KindKprobeSession  Kind = "kprobe.session"
	// KindUSDT is a USDT probe (libbpf's usdt.bpf.h program, section "usdt"):
	// targets are "provider:name" sites of .note.stapsdt, attached through
	// the cilium-usdt bridge.
	KindUSDT Kind = "usdt"
	// BTF-based tracing of kernel functions. fentry, fexit and fsession
	// programs are bound to their one target at load; the multi kinds name
	// any number of targets (BTF ids and cookies) at link time.
	KindFentry        Kind = "fentry"
	KindFexit         Kind = "fexit"
	KindFsession      Kind = "fsession"
	KindFentryMulti   Kind = "fentry.multi"
	KindFexitMulti    Kind = "fexit.multi"
	KindFsessionMulti Kind = "fsession.multi"
)

// Kinds lists every valid kind, in PROTOCOL.md order (used in error messages).
var Kinds = []Kind{
	KindUprobe, KindUretprobe, KindUprobeMulti, KindUretprobeMulti, KindUprobeSession,
	KindKprobe, KindKretprobe, KindKprobeMulti, KindKretprobeMulti, KindKprobeSession,
	KindUSDT,
	KindFentry, KindFexit, KindFsession, KindFentryMulti, KindFexitMulti, KindFsessionMulti,
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// User reports whether k probes a user-space binary (needs `binary`): the
// uprobe family and usdt.
func (k Kind) User() bool { return strings.HasPrefix(string(k), "u") }

// SingleLink reports whether k creates one link per target (perf-event based
// kinds) rather than one link for all targets (multi and session kinds).
func (k Kind) SingleLink() bool {
	switch k {
	case KindUprobe, KindUretprobe, KindKprobe, KindKretprobe:
		return true
	}
	return false
}

// Tracing reports whether k is a BTF-based tracing kind (fentry, fexit,
// fsession and their multi forms): its retprobe and session fields can only
// restate the kind's own.
func (k Kind) Tracing() bool {
	switch k {
	case KindFentry, KindFexit, KindFsession, KindFentryMulti, KindFexitMulti, KindFsessionMulti:
		return true
	}
	return false
}

// TracingMulti reports whether k is linked by a tracing multi link (attach
// types 59, 60, 61): any number of targets, each with its cookie.
func (k Kind) TracingMulti() bool {
	return k == KindFentryMulti || k == KindFexitMulti || k == KindFsessionMulti
}

// ReturnOnly reports whether k fires at function return only: the default of
// a probe's retprobe field.
func (k Kind) ReturnOnly() bool {
	switch k {
	case KindUretprobe, KindUretprobeMulti, KindKretprobe, KindKretprobeMulti, KindFexit, KindFexitMulti:
		return true
	}
	return false
}

// Session reports whether k is a session kind: the default of a probe's
// session field.
func (k Kind) Session() bool {
	switch k {
	case KindUprobeSession, KindKprobeSession, KindFsession, KindFsessionMulti:
		return true
	}
	return false
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// ---- runner → harness ----

// Request is the one request line of a `run` session. It names the object
// either directly (Object: loaded as given) or as both builds of the
// recorders (Objects: the harness picks one for the running kernel); exactly
// one of the two.
type Request struct {
	Protocol int      `json:"protocol"`
	Object   string   `json:"object,omitempty"`
	Objects  *Objects `json:"objects,omitempty"`
	Probes   []Probe  `json:"probes"`
}

// Objects are the two builds of one object, by the session-kfunc prototype
// they declare (bridge.KfuncNoArg, bridge.KfuncCtx).
type Objects struct {
	NoArg string `json:"noarg"`
	Ctx   string `json:"ctx"`
}

// Object variants, as in the attached and error lines' object_variant: the
// names compat gives the session-kfunc prototypes.
const (
	VariantNoArg = string(bridge.KfuncNoArg)
	VariantCtx   = string(bridge.KfuncCtx)
)

// Path returns the build for variant ("" for an unknown variant).
func (o *Objects) Path(variant string) string {
	switch variant {
	case VariantNoArg:
		return o.NoArg
	case VariantCtx:
		return o.Ctx
	}
	return ""
}

// Probe is one attachment: one object instance with one program kept.
type Probe struct {
	Name    string `json:"name"`
	Program string `json:"program"`
	Kind    Kind   `json:"kind"`
	// Object is the probe's own object file, when its program is not in the
	// request's object (usdt probes: usdt_recorder.bpf.o). Empty: the
	// request's object (or the build picked from objects).
	Object  string   `json:"object,omitempty"`
	Binary  string   `json:"binary,omitempty"`
	Targets []Target `json:"targets"`
	PID     *PID     `json:"pid,omitempty"`
	// Retprobe and Session override the kind's defaults (Kind.ReturnOnly,
	// Kind.Session) when present: see WantRetprobe and WantSession.
	Retprobe *bool `json:"retprobe,omitempty"`
	Session  *bool `json:"session,omitempty"`
	// Rodata maps a data section name to its exact new contents. encoding/json
	// decodes []byte from standard (padded) base64.
	Rodata map[string][]byte `json:"rodata,omitempty"`
}

// WantRetprobe is the probe's retprobe flag: the request's value, or the
// kind's default (true for uretprobe, uretprobe.multi, kretprobe, kretprobe.multi).
func (p *Probe) WantRetprobe() bool {
	if p.Retprobe != nil {
		return *p.Retprobe
	}
	return p.Kind.ReturnOnly()
}

// WantSession is the probe's session flag: the request's value, or the kind's
// default (true for uprobe.session and kprobe.session). Validation refuses
// true for single-link kinds.
func (p *Probe) WantSession() bool {
	if p.Session != nil {
		return *p.Session
	}
	return p.Kind.Session()
}

// Target is one attach point of a probe.
type Target struct {
	Symbol string `json:"symbol"`
	Offset uint64 `json:"offset"`
	Cookie uint64 `json:"cookie"`
}

// PID scopes a user-space probe to processes.
type PID struct {
	Scope string  `json:"scope"`
	PID   *uint32 `json:"pid,omitempty"`
}

const (
	ScopeAll = "all"
	ScopePID = "pid"
)

// Command is a runner line after the request; only {"cmd":"drain"} exists.
type Command struct {
	Cmd string `json:"cmd"`
}

// CmdDrain asks the harness to read the ring buffer and finish.
const CmdDrain = "drain"

// ---- harness → runner ----

// Hello is the first line of a `run` session.
type Hello struct {
	Type     string `json:"type"` // "hello"
	Protocol int    `json:"protocol"`
	Library  string `json:"library"`
	Version  string `json:"version"`
}

// VersionInfo is the output of the `version` subcommand.
type VersionInfo struct {
	Protocol int    `json:"protocol"`
	Library  string `json:"library"`
	Version  string `json:"version"`
	Go       string `json:"go"`
}

// Attached reports that every probe is attached.
type Attached struct {
	Type   string          `json:"type"` // "attached"
	Probes []AttachedProbe `json:"probes"`
	ObjectChoice
}

// ObjectChoice says which build the harness picked from a request's
// "objects", and why. Both fields are omitted when the request named one
// "object" (nothing was picked).
type ObjectChoice struct {
	ObjectVariant string `json:"object_variant,omitempty"` // VariantNoArg or VariantCtx
	ObjectReason  string `json:"object_reason,omitempty"`
}

// Via values of AttachedProbe.
const (
	ViaNative = "native"
	ViaCompat = "compat"
)

// AttachedProbe says how one probe was attached.
type AttachedProbe struct {
	Name string `json:"name"`
	Via  string `json:"via"` // ViaNative or ViaCompat
	// Bridge is the compat registry id ("" when native); ids joined by ","
	// when the probe went through several bridges (an fsession probe: its
	// load and its link).
	Bridge string `json:"bridge"`
	// ProgID is the kernel's program id (0 when unknown): the runner reads
	// per-program counters such as recursion misses by it.
	ProgID uint32 `json:"prog_id,omitempty"`
}

// Events carries every record read from the ring buffer.
type Events struct {
	Type    string   `json:"type"`   // "events"
	Events  [][]byte `json:"events"` // each is one raw struct pc_event, base64 on the wire
	Dropped uint64   `json:"dropped"`
}

// Done ends a successful session.
type Done struct {
	Type string `json:"type"` // "done"
}

// Phase says in which step an error happened.
type Phase string

const (
	PhaseProtocol Phase = "protocol"
	PhaseLoad     Phase = "load"
	PhaseAttach   Phase = "attach"
	PhaseDrain    Phase = "drain"
)

// ErrorLine reports a failure; the harness exits 1 after writing it.
type ErrorLine struct {
	Type         string `json:"type"` // "error"
	Phase        Phase  `json:"phase"`
	Class        string `json:"class"`
	Probe        string `json:"probe,omitempty"` // omitted when the error is not about one probe
	Errno        int    `json:"errno,omitempty"` // omitted when the error carries no errno
	Detail       string `json:"detail"`
	ObjectChoice        // set once the harness has picked a build from "objects"
}
