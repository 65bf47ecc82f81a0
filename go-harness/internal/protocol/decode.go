package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"probeconf/go-harness/internal/classify"
)

// decodeStrict decodes exactly one JSON value from line into v. Unknown fields
// and trailing data are errors: a typo in the runner's encoder must fail the
// case loudly rather than be ignored.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return classify.Invalidf("malformed JSON: %v", err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return classify.Invalidf("malformed JSON: trailing data after the object")
	}
	return nil
}

// DecodeRequest decodes and validates the request line.
func DecodeRequest(line []byte) (*Request, error) {
	var req Request
	if err := decodeStrict(line, &req); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	return &req, nil
}

// DecodeCommand decodes a command line and checks that it is a known command.
func DecodeCommand(line []byte) (*Command, error) {
	var cmd Command
	if err := decodeStrict(line, &cmd); err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	if cmd.Cmd != CmdDrain {
		return nil, classify.Invalidf("command: unknown cmd %q (want %q)", cmd.Cmd, CmdDrain)
	}
	return &cmd, nil
}

// Validate checks the request's shape: everything that can be known without
// touching the object, the binaries or the kernel.
func (r *Request) Validate() error {
	if r.Protocol != Version {
		return classify.Invalidf("protocol %d not supported (this harness speaks %d)", r.Protocol, Version)
	}
	switch {
	case r.Object == "" && r.Objects == nil:
		return classify.Invalidf(`one of the fields object and objects is required`)
	case r.Object != "" && r.Objects != nil:
		return classify.Invalidf(`fields object and objects are exclusive: send one`)
	case r.Objects != nil && (r.Objects.NoArg == "" || r.Objects.Ctx == ""):
		return classify.Invalidf(`objects: fields noarg and ctx are both required`)
	}
	if len(r.Probes) == 0 {
		return classify.Invalidf("field probes is empty")
	}
	seen := make(map[string]bool, len(r.Probes))
	for i := range r.Probes {
		p := &r.Probes[i]
		if p.Name == "" {
			return classify.Invalidf("probes[%d]: field name is required", i)
		}
		if seen[p.Name] {
			return classify.Invalidf("probes[%d]: duplicate probe name %q", i, p.Name)
		}
		seen[p.Name] = true
		if err := p.validate(); err != nil {
			return fmt.Errorf("probe %s: %w", p.Name, err)
		}
	}
	return nil
}

func (p *Probe) validate() error {
	if p.Program == "" {
		return classify.Invalidf("field program is required")
	}
	if !p.Kind.Valid() {
		return classify.Invalidf("unknown kind %q (valid kinds: %s)", p.Kind, kindList())
	}
	if len(p.Targets) == 0 {
		return classify.Invalidf("field targets is empty")
	}
	if p.Kind.SingleLink() && p.Session != nil && *p.Session {
		return classify.Invalidf("kind %s creates one perf-event link per target: field session must be absent or false", p.Kind)
	}
	if p.Object != "" && !filepath.IsAbs(p.Object) {
		return classify.Invalidf("object %q: must be an absolute path", p.Object)
	}
	if p.Kind.Tracing() {
		// The kind says where the program runs: the flags of the kprobe and
		// uprobe multi links do not apply.
		if (p.Session != nil && *p.Session != p.Kind.Session()) || (p.Retprobe != nil && *p.Retprobe != p.Kind.ReturnOnly()) {
			return classify.Invalidf("kind %s: fields session and retprobe must be absent or the kind's own (%t, %t)",
				p.Kind, p.Kind.Session(), p.Kind.ReturnOnly())
		}
		if !p.Kind.TracingMulti() && len(p.Targets) != 1 {
			return classify.Invalidf("kind %s is bound to one kernel function at load: exactly one target (found %d)", p.Kind, len(p.Targets))
		}
	}
	if p.Kind == KindUSDT {
		if p.Session != nil && *p.Session {
			return classify.Invalidf("kind usdt has no session: field session must be absent or false")
		}
		if p.Retprobe != nil && *p.Retprobe {
			return classify.Invalidf("kind usdt fires at the site only: field retprobe must be absent or false")
		}
		for i, t := range p.Targets {
			provider, name, ok := strings.Cut(t.Symbol, ":")
			if !ok || provider == "" || name == "" {
				return classify.Invalidf("targets[%d]: kind usdt: symbol %q must be provider:name", i, t.Symbol)
			}
			if t.Offset != 0 {
				return classify.Invalidf("targets[%d]: kind usdt: offset must be 0 (the sites come from .note.stapsdt)", i)
			}
		}
	}
	if p.Kind.User() {
		// Only the path's shape is checked here: whether the file exists and is
		// an ELF file is the library's to find out, at attach.
		if p.Binary == "" {
			return classify.Invalidf("kind %s needs field binary", p.Kind)
		}
		if !filepath.IsAbs(p.Binary) {
			return classify.Invalidf("binary %q: must be an absolute path", p.Binary)
		}
		for i, t := range p.Targets {
			// File offset 0 is the ELF header: never a probe point, so an empty
			// symbol with offset 0 is a runner bug, not a request to probe it.
			if t.Symbol == "" && t.Offset == 0 {
				return classify.Invalidf("targets[%d]: empty symbol needs a non-zero absolute file offset", i)
			}
		}
	} else {
		if p.Binary != "" {
			return classify.Invalidf("kind %s is a kernel probe: field binary must be absent", p.Kind)
		}
		for i, t := range p.Targets {
			if t.Symbol == "" {
				return classify.Invalidf("targets[%d]: kind %s needs a kernel symbol", i, p.Kind)
			}
			// kprobe.multi/session attach at function entry only; the protocol
			// keeps single kprobes to that too, so both loaders get the same cases.
			if t.Offset != 0 {
				return classify.Invalidf("targets[%d]: kind %s: offset must be 0 (kernel probes attach at the function entry)", i, p.Kind)
			}
		}
	}
	if p.PID != nil {
		switch p.PID.Scope {
		case ScopeAll:
			if p.PID.PID != nil {
				return classify.Invalidf(`pid: scope "all" takes no pid`)
			}
		case ScopePID:
			if p.PID.PID == nil || *p.PID.PID == 0 {
				return classify.Invalidf(`pid: scope "pid" needs a non-zero pid`)
			}
			if !p.Kind.User() {
				return classify.Invalidf(`pid: kind %s has no pid filter (use rodata filter_tgid)`, p.Kind)
			}
		default:
			return classify.Invalidf(`pid: unknown scope %q (valid scopes: "all", "pid")`, p.PID.Scope)
		}
	}
	for name, data := range p.Rodata {
		if name == "" || len(data) == 0 {
			return classify.Invalidf("rodata: section %q: name and bytes are required", name)
		}
	}
	return nil
}

// CheckObject checks that the object exists and is a regular file (with
// objects: both builds, whichever the kernel will pick), so a wrong path is
// reported as such (phase protocol) and not as an ELF error. Probed binaries
// are not checked here: link.OpenExecutable (or the compat bridge) reports a
// missing or unreadable binary at attach, through the classifier.
func (r *Request) CheckObject() error {
	if r.Objects == nil {
		if err := regularFile(r.Object); err != nil {
			return fmt.Errorf("object: %w", err)
		}
	} else {
		for _, v := range []string{VariantNoArg, VariantCtx} {
			if err := regularFile(r.Objects.Path(v)); err != nil {
				return fmt.Errorf("objects.%s: %w", v, err)
			}
		}
	}
	for i := range r.Probes {
		if p := &r.Probes[i]; p.Object != "" {
			if err := regularFile(p.Object); err != nil {
				return fmt.Errorf("probe %s: object: %w", p.Name, err)
			}
		}
	}
	return nil
}

func regularFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err // *PathError wrapping ENOENT/EACCES: the classifier keeps the errno
	}
	if !st.Mode().IsRegular() {
		return classify.Invalidf("%s is not a regular file", path)
	}
	return nil
}
