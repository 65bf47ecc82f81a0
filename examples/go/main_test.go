package main

// The tracer against probeconf's probe-target, checked against the suite's
// own expectations: the traces of cases/uprobe-session/
// uprobe-session-cookie-roundtrip.yaml and cases/usdt/usdt-args.yaml, parsed
// here from the YAML and compared field by field with what the tracer prints.
// The tracer is built twice, against cilium/ebpf v0.22.0 (this module's
// go.mod) and v0.20.0 (a copy of the module after `go get`).
//
// Needs root, Go, and the artifacts: PROBECONF_ARTIFACTS=DIR (or
// PROBECONF_BPF_OBJECT=DIR/recorders.bpf.o) after `probeconf artifacts DIR`.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var ciliumVersions = []string{"v0.22.0", "v0.20.0"}

// caseFile is the part of a probeconf case the test reads.
type caseFile struct {
	ID     string `yaml:"id"`
	Probes []struct {
		Kind    string `yaml:"kind"`
		Targets []struct {
			Symbol string `yaml:"symbol"`
			Cookie uint64 `yaml:"cookie"`
		} `yaml:"targets"`
		Record map[string]map[string]uint64 `yaml:"record"`
	} `yaml:"probes"`
	Run    string `yaml:"run"`
	Expect struct {
		Trace string `yaml:"trace"`
	} `yaml:"expect"`
}

func readCase(t *testing.T, path string) caseFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c caseFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(c.Probes) != 1 || len(c.Probes[0].Targets) != 1 {
		t.Fatalf("%s: want one probe with one target", path)
	}
	return c
}

// The trace lines of the two cases (src/trace.rs prints them).
var (
	entryLine  = regexp.MustCompile(`^P0/T0 \w+ entry (\w+)\((-?\d+), (-?\d+)\) cookie=(0x[0-9a-f]+) is_return=(true|false) session_cookie=(0x[0-9a-f]+) wrote=(0x[0-9a-f]+) prog_ret=(\d+)$`)
	returnLine = regexp.MustCompile(`^P0/T0 \w+ return (\w+) => (-?\d+) cookie=(0x[0-9a-f]+) is_return=(true|false) session_cookie=(0x[0-9a-f]+)$`)
	usdtLine   = regexp.MustCompile(`^P0/T0 \w+ usdt ([\w:]+)\(([^)]*)\) cookie=(0x[0-9a-f]+)$`)
)

func num(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(s, 0, 64)
		if uerr != nil {
			t.Fatalf("number %q: %v", s, err)
		}
		v = int64(u)
	}
	return v
}

// expected turns a case's trace into the tracer's events.
func expected(t *testing.T, c caseFile) []Event {
	t.Helper()
	var out []Event
	for _, line := range strings.Split(strings.TrimSpace(c.Expect.Trace), "\n") {
		line = strings.TrimSpace(line)
		u64 := func(s string) *uint64 { v := uint64(num(t, s)); return &v }
		boolean := func(s string) *bool { v := s == "true"; return &v }
		switch {
		case entryLine.MatchString(line):
			m := entryLine.FindStringSubmatch(line)
			progRet := int(num(t, m[8]))
			out = append(out, Event{Probe: "session", Phase: "entry", Func: m[1], Args: []int64{num(t, m[2]), num(t, m[3])},
				Cookie: *u64(m[4]), IsReturn: boolean(m[5]), SessionCookie: u64(m[6]), Wrote: u64(m[7]), ProgRet: &progRet})
		case returnLine.MatchString(line):
			m := returnLine.FindStringSubmatch(line)
			ret := num(t, m[2])
			out = append(out, Event{Probe: "session", Phase: "return", Func: m[1], Ret: &ret,
				Cookie: *u64(m[3]), IsReturn: boolean(m[4]), SessionCookie: u64(m[5])})
		case usdtLine.MatchString(line):
			m := usdtLine.FindStringSubmatch(line)
			var args []int64
			for _, a := range strings.Split(m[2], ",") {
				args = append(args, num(t, strings.TrimSpace(a)))
			}
			out = append(out, Event{Probe: "usdt", Phase: "usdt", Func: m[1], Args: args, Cookie: *u64(m[3])})
		default:
			t.Fatalf("case %s: trace line %q is not one this test reads", c.ID, line)
		}
	}
	return out
}

// artifacts is the directory with the BPF objects and probe-target, or "".
func artifacts() string {
	if d := os.Getenv("PROBECONF_ARTIFACTS"); d != "" {
		return d
	}
	if o := os.Getenv("PROBECONF_BPF_OBJECT"); o != "" {
		return filepath.Dir(o)
	}
	return ""
}

// buildTracer builds this module's tracer against cilium/ebpf version: as it
// is for the go.mod's version, else from a copy after `go get`.
func buildTracer(t *testing.T, version string) string {
	t.Helper()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tracer")
	goCmd := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
		}
	}
	dir := here
	if pinned := goList(t, here); pinned != version {
		// What a user does to try another cilium: a copy, so the checkout's
		// go.mod stays as it is. The replace must then point at the bridge
		// by an absolute path.
		dir = t.TempDir()
		for _, name := range []string{"go.mod", "go.sum", "main.go"} {
			b, err := os.ReadFile(filepath.Join(here, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		goCmd(dir, "mod", "edit", "-replace=probeconf/bridge="+filepath.Join(here, "..", "..", "go-harness", "bridge"))
		goCmd(dir, "get", "github.com/cilium/ebpf@"+version)
		goCmd(dir, "mod", "tidy")
	}
	goCmd(dir, "build", "-o", bin, ".")
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil || !regexp.MustCompile(`dep\s+github.com/cilium/ebpf\s+`+regexp.QuoteMeta(version)+`\s`).Match(out) {
		t.Fatalf("the tracer was not built with cilium/ebpf %s (%v):\n%s", version, err, out)
	}
	return bin
}

// goList is the cilium/ebpf version dir's go.mod selects.
func goList(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/cilium/ebpf")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestTracerMatchesTheSuite(t *testing.T) {
	dir := artifacts()
	if dir == "" {
		t.Skip("PROBECONF_ARTIFACTS (or PROBECONF_BPF_OBJECT) is not set: write the artifacts with `probeconf artifacts DIR`")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: loading BPF programs needs root")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH to build the tracer with")
	}
	session := readCase(t, filepath.Join("..", "..", "cases", "uprobe-session", "uprobe-session-cookie-roundtrip.yaml"))
	usdt := readCase(t, filepath.Join("..", "..", "cases", "usdt", "usdt-args.yaml"))
	sp, up := session.Probes[0], usdt.Probes[0]
	base, ok := sp.Record["session_cookie"]["const-plus-arg0"]
	if sp.Kind != "uprobe.session" || !ok || sp.Targets[0].Cookie != 0 || up.Kind != "usdt" {
		t.Fatalf("the cases changed: session %+v, usdt %+v; this test reads a uprobe.session writing const-plus-arg0 (no attach cookie) and one usdt probe", sp, up)
	}
	want := append(expected(t, session), expected(t, usdt)...)
	args := []string{
		"-objects", dir,
		"-session", sp.Targets[0].Symbol, "-session-cookie-base", fmt.Sprint(base),
		"-usdt", up.Targets[0].Symbol, "-usdt-cookie", fmt.Sprint(up.Targets[0].Cookie),
		"--", filepath.Join(dir, "probe-target"), "--wait", session.Run + "; " + usdt.Run,
	}

	for _, version := range ciliumVersions {
		t.Run("cilium-"+version, func(t *testing.T) {
			tracer := buildTracer(t, version)
			cmd := exec.Command(tracer, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tracer: %v\n%s", err, stderr.Bytes())
			}
			var got []Event
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				var e Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("tracer line %q: %v", sc.Text(), err)
				}
				got = append(got, e)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("tracer (cilium/ebpf %s) printed\n%s\nwant (from the cases' traces)\n%s", version, out, jsonLines(want))
			}
		})
	}
}

func jsonLines(events []Event) string {
	var b strings.Builder
	for _, e := range events {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}
