package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"probeconf/go-harness/internal/protocol"
)

// client drives Run over pipes, as the Rust runner does over stdin/stdout.
type client struct {
	t      *testing.T
	in     *io.PipeWriter
	out    *bufio.Reader
	status chan int
}

func startSession(t *testing.T, ctx context.Context) *client {
	t.Helper()
	return startSessionWith(t, ctx, Config{})
}

// startSessionWith is startSession with cfg's test hooks (In, Out and Log are
// set here).
func startSessionWith(t *testing.T, ctx context.Context, cfg Config) *client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &client{t: t, in: inW, out: bufio.NewReader(outR), status: make(chan int, 1)}
	cfg.In, cfg.Out, cfg.Log = inR, outW, testLog{t}
	go func() {
		status := Run(ctx, cfg)
		outW.Close()
		c.status <- status
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	return c
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("harness stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(b))
}

// recv reads one line, checks its type and decodes it into v (may be nil).
func (c *client) recv(wantType string, v any) {
	c.t.Helper()
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("recv %s: %v", wantType, err)
	}
	var head struct{ Type string }
	if err := json.Unmarshal(line, &head); err != nil {
		c.t.Fatalf("recv %s: not JSON: %q", wantType, line)
	}
	if head.Type != wantType {
		c.t.Fatalf("recv: got %s, want type %s", line, wantType)
	}
	if v != nil {
		dec := json.NewDecoder(strings.NewReader(string(line)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			c.t.Fatalf("decode %s: %v", line, err)
		}
	}
}

// drain asks for the events and reads them and the done line; the session
// must then end with status 0.
func (c *client) drain() protocol.Events {
	c.t.Helper()
	c.send(`{"cmd":"drain"}`)
	var events protocol.Events
	c.recv("events", &events)
	c.recv("done", nil)
	if s := c.wait(); s != 0 {
		c.t.Fatalf("status %d", s)
	}
	return events
}

func (c *client) wait() int {
	c.t.Helper()
	select {
	case s := <-c.status:
		return s
	case <-time.After(30 * time.Second):
		c.t.Fatal("harness did not exit")
		return -1
	}
}

func TestGarbageRequest(t *testing.T) {
	c := startSession(t, context.Background())
	var hello protocol.Hello
	c.recv("hello", &hello)
	if hello.Protocol != 1 || hello.Library != "github.com/cilium/ebpf" {
		t.Errorf("hello %+v", hello)
	}
	c.send("garbage")
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseProtocol || e.Class != "invalid" || !strings.Contains(e.Detail, "malformed JSON") {
		t.Errorf("error line %+v", e)
	}
	if s := c.wait(); s != 1 {
		t.Errorf("status %d, want 1", s)
	}
}

func TestUnknownKindNamesValidKinds(t *testing.T) {
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.send(`{"protocol":1,"object":"/x.o","probes":[{"name":"p","program":"x","kind":"uprobes","binary":"/bin/true","targets":[{"symbol":"main","offset":0,"cookie":0}]}]}`)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Class != "invalid" || !strings.Contains(e.Detail, "valid kinds: uprobe, uretprobe,") {
		t.Errorf("error line %+v", e)
	}
	c.wait()
}

func TestStdinEOFBeforeRequest(t *testing.T) {
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.in.Close()
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseProtocol || !strings.Contains(e.Detail, "stdin closed") {
		t.Errorf("error line %+v", e)
	}
	if s := c.wait(); s != 1 {
		t.Errorf("status %d", s)
	}
}

func TestSignalBeforeRequest(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := startSession(t, ctx)
	c.recv("hello", nil)
	cancel(errSignalForTest)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseProtocol || !strings.Contains(e.Detail, errSignalForTest.Error()) {
		t.Errorf("error line %+v", e)
	}
	if s := c.wait(); s != 1 {
		t.Errorf("status %d", s)
	}
}

var errSignalForTest = &signalError{"received terminated"}

type signalError struct{ s string }

func (e *signalError) Error() string { return e.s }

func TestMissingObjectIsNotFound(t *testing.T) {
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.send(`{"protocol":1,"object":"/nonexistent/recorders.bpf.o","probes":[{"name":"p","program":"pc_uprobe","kind":"uprobe","binary":"/bin/true","targets":[{"symbol":"main","offset":0,"cookie":0}]}]}`)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Class != "not-found" || e.Errno != 2 || !strings.Contains(e.Detail, "/nonexistent/recorders.bpf.o") {
		t.Errorf("error line %+v", e)
	}
	c.wait()
}
