// Package harness runs one `run` session of the protocol: hello, request,
// load, attach, wait for drain, drain, close, done. It owns every link and
// object it creates and releases them on every exit path.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"probeconf/bridge"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/attach"
	"probeconf/go-harness/internal/buildinfo"
	"probeconf/go-harness/internal/drain"
	"probeconf/go-harness/internal/loader"
	"probeconf/go-harness/internal/protocol"
)

// Config is what a session reads, writes and may replace in tests.
type Config struct {
	In     io.Reader // runner → harness lines
	Out    io.Writer // harness → runner lines
	Log    io.Writer // free text for humans (stderr)
	Attach attach.Options
	// SessionKfuncs tells the running kernel's session-kfunc prototype, to
	// pick a build from a request's "objects". nil: bridge.SessionKfuncPrototypeOf
	// the process's shared kernel BTF (loader.KernelTypes); tests may pretend
	// another kernel.
	SessionKfuncs func() (bridge.KfuncVariant, string)
	// USDTFeatures gives the kernel features of the cilium-usdt bridge to
	// both the loader (LINUX_HAS_BPF_COOKIE) and the attach step, so they
	// agree. nil: Attach.USDTFeatures if set, else bridge.ProbeUSDTFeatures;
	// tests force the fallbacks with it (then it is asked for every object).
	USDTFeatures func() (bridge.USDTFeatures, error)
}

// Run runs one session and returns the process exit status (0 after `done`,
// 1 after an error line). Cancelling ctx (SIGINT/SIGTERM in main) makes the
// session close every link and report a protocol error at its next step.
func Run(ctx context.Context, cfg Config) (status int) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Attach.Log == nil {
		cfg.Attach.Log = cfg.Log
	}
	if cfg.SessionKfuncs == nil {
		cfg.SessionKfuncs = sessionKfuncPrototype
	}
	if cfg.USDTFeatures == nil {
		cfg.USDTFeatures = cfg.Attach.USDTFeatures
	}
	// Still nil: loader and attach step both ask bridge.ProbeUSDTFeatures
	// (once per process), the loader only for an object that needs them.
	cfg.Attach.USDTFeatures = cfg.USDTFeatures
	out := json.NewEncoder(cfg.Out)
	out.SetEscapeHTML(false) // details quote kernel messages with < and >
	s := &session{cfg: cfg, out: out}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(cfg.Log, "panic: %v\n%s", r, debug.Stack())
			s.release()
			s.fail(fmt.Errorf("internal error (panic): %v", r))
			status = 1
		}
	}()
	if err := s.run(ctx); err != nil {
		s.release()
		s.fail(err)
		return 1
	}
	return 0
}

type session struct {
	cfg         Config
	out         *json.Encoder
	set         *loader.Set
	attachments []*attach.Attachment
	choice      protocol.ObjectChoice // set once a build is picked from "objects"
}

func (s *session) run(ctx context.Context) error {
	if err := s.send(protocol.Hello{Type: "hello", Protocol: protocol.Version, Library: protocol.Library,
		Version: buildinfo.LibraryVersion()}); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	lines := readLines(s.cfg.In, stop)

	line, err := nextLine(ctx, lines, "request")
	if err != nil {
		return err
	}
	req, err := protocol.DecodeRequest(line)
	if err != nil {
		return protocol.Fail(protocol.PhaseProtocol, nil, err)
	}
	if err := req.CheckObject(); err != nil {
		return protocol.Fail(protocol.PhaseProtocol, nil, err)
	}

	object := s.pickObject(req)
	if s.set, err = loader.LoadWithOptions(object, req, loader.Options{Log: s.cfg.Log, USDTFeatures: s.cfg.USDTFeatures}); err != nil {
		return err
	}
	if err := interrupted(ctx); err != nil {
		return err
	}

	report := protocol.Attached{Type: "attached", Probes: []protocol.AttachedProbe{}, ObjectChoice: s.choice}
	for _, inst := range s.set.Instances {
		a, err := attach.Probe(inst, s.cfg.Attach)
		if err != nil {
			return err
		}
		s.attachments = append(s.attachments, a)
		report.Probes = append(report.Probes, a.Report())
		if err := interrupted(ctx); err != nil {
			return err
		}
	}
	if err := s.send(report); err != nil {
		return err
	}

	// The runner runs its workload now; the harness only waits.
	line, err = nextLine(ctx, lines, "drain command")
	if err != nil {
		return err
	}
	if _, err := protocol.DecodeCommand(line); err != nil {
		return protocol.Fail(protocol.PhaseProtocol, nil, err)
	}

	res, err := s.drain()
	if err != nil {
		return protocol.Fail(protocol.PhaseDrain, nil, err)
	}
	if err := s.send(protocol.Events{Type: "events", Events: res.Events, Dropped: res.Dropped}); err != nil {
		return err
	}
	s.release()
	return s.send(protocol.Done{Type: "done"})
}

// pickObject returns the object to load: the request's "object" as given, or
// from "objects" the build for the running kernel's session-kfunc prototype
// (the noarg build when the kernel has no session kfuncs), which it records
// for the attached and error lines (cilium-session-kfunc-variant).
func (s *session) pickObject(req *protocol.Request) string {
	if req.Objects == nil {
		return req.Object
	}
	kernel, reason := s.cfg.SessionKfuncs()
	variant := bridge.ObjectVariant(kernel)
	if kernel == bridge.KfuncNone {
		reason += "; no session kfuncs: the noarg build"
	}
	s.choice = protocol.ObjectChoice{ObjectVariant: string(variant), ObjectReason: reason}
	object := req.Objects.Path(string(variant))
	fmt.Fprintf(s.cfg.Log, "objects: picked the %s build %s (%s) [%s]\n", variant, object, reason, compat.BridgeSessionKfuncVar)
	return object
}

func (s *session) drain() (*drain.Result, error) {
	events, err := s.set.Map("events")
	if err != nil {
		return nil, err
	}
	dropped, err := s.set.Map("dropped")
	if err != nil {
		return nil, err
	}
	return drain.Read(events, dropped, s.set.EventSize)
}

// release detaches every link, then closes every object. Idempotent.
func (s *session) release() {
	for i := len(s.attachments) - 1; i >= 0; i-- {
		s.attachments[i].Close()
	}
	s.attachments = nil
	if s.set != nil {
		s.set.Close()
		s.set = nil
	}
}

func (s *session) send(v any) error {
	if err := s.out.Encode(v); err != nil { // Encode appends the newline
		fmt.Fprintf(s.cfg.Log, "write to runner: %v\n", err)
		return fmt.Errorf("write to runner: %w", err)
	}
	return nil
}

func (s *session) fail(err error) {
	line := protocol.ErrorLineFor(err, protocol.PhaseProtocol)
	line.ObjectChoice = s.choice
	fmt.Fprintf(s.cfg.Log, "error: %s\n", line.Detail)
	_ = s.out.Encode(line)
}

func interrupted(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return protocol.Fail(protocol.PhaseProtocol, nil, context.Cause(ctx))
}

type lineOrErr struct {
	line []byte
	err  error
}

// readLines delivers the runner's lines on a channel, so that waiting for the
// next line can be interrupted by a signal. The channel closes at EOF. Blank
// lines are skipped. Closing stop releases the goroutine once nobody listens
// (it may still sit in a blocked read until the process exits).
func readLines(in io.Reader, stop <-chan struct{}) <-chan lineOrErr {
	ch := make(chan lineOrErr)
	deliver := func(l lineOrErr) bool {
		select {
		case ch <- l:
			return true
		case <-stop:
			return false
		}
	}
	go func() {
		defer close(ch)
		// A panic here would kill the process past every recover; report it
		// as a read error instead.
		defer func() {
			if r := recover(); r != nil {
				deliver(lineOrErr{err: fmt.Errorf("internal error (panic) reading stdin: %v", r)})
			}
		}()
		r := bufio.NewReader(in)
		for {
			line, err := r.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 && !deliver(lineOrErr{line: line}) {
				return
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				deliver(lineOrErr{err: err})
				return
			}
		}
	}()
	return ch
}

// errStdinClosed reports EOF on stdin before the session ended.
var errStdinClosed = errors.New("stdin closed")

func nextLine(ctx context.Context, lines <-chan lineOrErr, what string) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, protocol.Fail(protocol.PhaseProtocol, nil,
			fmt.Errorf("waiting for the %s: %w", what, context.Cause(ctx)))
	case l, ok := <-lines:
		if !ok {
			return nil, protocol.Fail(protocol.PhaseProtocol, nil,
				fmt.Errorf("waiting for the %s: %w", what, errStdinClosed))
		}
		if l.err != nil {
			return nil, protocol.Fail(protocol.PhaseProtocol, nil, fmt.Errorf("read the %s: %w", what, l.err))
		}
		return l.line, nil
	}
}

// sessionKfuncPrototype is bridge.SessionKfuncPrototype on the kernel BTF the
// loads share (loader.KernelTypes), so the pick does not parse it again.
func sessionKfuncPrototype() (bridge.KfuncVariant, string) {
	kernel, err := loader.KernelTypes()
	if err != nil {
		return bridge.KfuncNone, fmt.Sprintf("no kernel BTF: %v", err)
	}
	return bridge.SessionKfuncPrototypeOf(kernel)
}
