package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/protocol"
)

func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	status := run(args, strings.NewReader(stdin), &out, &errw)
	return status, out.String(), errw.String()
}

func TestGaps(t *testing.T) {
	status, out, _ := runMain(t, "", "gaps")
	if status != 0 {
		t.Fatalf("status %d", status)
	}
	var entries []compat.Entry
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != len(compat.Registry) {
		t.Fatalf("gaps output %q: %v", out, err)
	}
}

func TestVersion(t *testing.T) {
	status, out, _ := runMain(t, "", "version")
	var v protocol.VersionInfo
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if status != 0 || dec.Decode(&v) != nil || v.Protocol != 1 || v.Library != "github.com/cilium/ebpf" || !strings.HasPrefix(v.Go, "go") {
		t.Fatalf("version: status %d, %q", status, out)
	}
	// Test binaries carry no dependency build info; the built binary does
	// (checked by hand: bin/probeconf-harness version).
	if v.Version == "" {
		t.Error("empty library version")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"run", "extra"}} {
		if status, _, errw := runMain(t, "", args...); status != 2 || !strings.Contains(errw, "usage:") {
			t.Errorf("%v: status %d, stderr %q", args, status, errw)
		}
	}
}

func TestRunGarbage(t *testing.T) {
	status, out, _ := runMain(t, "garbage\n", "run")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if status != 1 || len(lines) != 2 {
		t.Fatalf("status %d, output %q", status, out)
	}
	var e protocol.ErrorLine
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Type != "error" || e.Phase != "protocol" {
		t.Errorf("error line %q", lines[1])
	}
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("reader exploded") }

func TestRunPanicBecomesErrorLine(t *testing.T) {
	var out, errw bytes.Buffer
	status := run([]string{"run"}, panicReader{}, &out, &errw)
	if status != 1 || !strings.Contains(out.String(), `"type":"error"`) || !strings.Contains(out.String(), "reader exploded") {
		t.Errorf("status %d, stdout %q", status, out.String())
	}
	if strings.Contains(out.String(), "goroutine ") {
		t.Errorf("stack trace on stdout: %q", out.String())
	}
}
