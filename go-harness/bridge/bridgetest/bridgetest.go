// Package bridgetest is test support for probeconf's own Go tests (the bridge
// package's and the harness's): finding the BPF objects and probe-target that
// `probeconf artifacts DIR` writes, building small C programs with gcc,
// running probe-target, reading link info and ring buffers. It is not part of
// the bridge's API and makes no compatibility promise; tool authors have no
// use for it.
package bridgetest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ObjectEnv names the environment variable that points at recorders.bpf.o.
const ObjectEnv = "PROBECONF_BPF_OBJECT"

// RequireObject returns recorders.bpf.o (the non-session recorders) for tests
// that load programs. It skips
// the test, saying why, when the object is not given or the test is not root;
// once both hold, anything else missing is a failure, not a skip.
func RequireObject(t testing.TB) string {
	t.Helper()
	path := os.Getenv(ObjectEnv)
	if path == "" {
		t.Skipf("%s is not set: to run BPF tests, write the objects with `probeconf artifacts DIR` (see go-harness/README.md) "+
			"and point %s at DIR/recorders.bpf.o (%s, %s and %s are taken from beside it)",
			ObjectEnv, ObjectEnv, SessionsObjectName, SessionsCtxObjectName, USDTObjectName)
	}
	if os.Geteuid() != 0 {
		t.Skipf("not root (euid %d): loading and attaching BPF programs needs root", os.Geteuid())
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v", ObjectEnv, path, err)
	}
	return path
}

// The objects `probeconf artifacts DIR` writes beside recorders.bpf.o (the
// file PROBECONF_BPF_OBJECT names): the session programs live in their own
// objects, one build per session-kfunc prototype.
const (
	// SessionsObjectName: pc_uprobe_session and pc_kprobe_session for the
	// no-argument kfunc prototypes (kernels 6.10 to 6.19).
	SessionsObjectName = "sessions.bpf.o"
	// SessionsCtxObjectName: the same programs for the 7.0 prototypes (void *ctx).
	SessionsCtxObjectName = "sessions.ctx.bpf.o"
	// USDTObjectName: libbpf's usdt.bpf.h recorder.
	USDTObjectName = "usdt_recorder.bpf.o"
	// TracingObjectName: the fentry, fexit, fentry.multi and fexit.multi
	// recorders (fsession and fsession.multi are in the sessions builds).
	TracingObjectName = "tracing.bpf.o"
)

// Objects are the project's BPF objects, as the Rust runner uses them: the
// request's top-level object is a sessions build, and every non-session probe
// names its own object (Recorders, or USDT for usdt probes).
type Objects struct {
	Recorders   string // recorders.bpf.o: the non-session recorders (PROBECONF_BPF_OBJECT)
	Sessions    string // sessions.bpf.o: session programs, no-argument kfuncs (6.10–6.19)
	SessionsCtx string // sessions.ctx.bpf.o: session programs, void *ctx kfuncs (7.0 on)
	USDT        string // usdt_recorder.bpf.o
}

// ProbeObject is the per-probe "object" the Rust runner sends for a probe of
// a session kind (session true: none, the program is in the top-level
// sessions build) or of any other kind (recorders.bpf.o). USDT probes name
// o.USDT themselves.
func (o Objects) ProbeObject(session bool) string {
	if session {
		return ""
	}
	return o.Recorders
}

// sibling returns the file called name beside PROBECONF_BPF_OBJECT, failing
// the test when it is missing: callers have already decided to run (the
// variable is set, and they are root or only parse files).
func sibling(t testing.TB, object, name string) string {
	t.Helper()
	path := filepath.Join(filepath.Dir(object), name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is set (%s), but %s is not beside it: %v (write all the objects with `probeconf artifacts DIR` and point %s at DIR/recorders.bpf.o)",
			ObjectEnv, object, name, err, ObjectEnv)
	}
	return path
}

// RequireObjects is RequireObject for tests that need the whole set: it
// skips like RequireObject, then fails (not skips) when a sibling of
// PROBECONF_BPF_OBJECT is missing. USDT honours PROBECONF_USDT_OBJECT.
func RequireObjects(t testing.TB) Objects {
	t.Helper()
	recorders := RequireObject(t)
	return Objects{
		Recorders:   recorders,
		Sessions:    sibling(t, recorders, SessionsObjectName),
		SessionsCtx: sibling(t, recorders, SessionsCtxObjectName),
		USDT:        USDTObjectFile(t),
	}
}

// RequireSessionsObject returns sessions.bpf.o (the no-argument build of the
// session programs) for root tests that load pc_uprobe_session or
// pc_kprobe_session; it skips like RequireObject and fails when the file is
// missing.
func RequireSessionsObject(t testing.TB) string {
	t.Helper()
	return sibling(t, RequireObject(t), SessionsObjectName)
}

// TracingObjectFile returns tracing.bpf.o beside PROBECONF_BPF_OBJECT, for
// tests that only parse it (no root needed); it skips when the variable is
// unset and fails when the file is missing.
func TracingObjectFile(t testing.TB) string {
	t.Helper()
	return sibling(t, RequireObjectFile(t), TracingObjectName)
}

// SessionsObjectFile is TracingObjectFile for a build of the session
// programs: name is SessionsObjectName or SessionsCtxObjectName.
func SessionsObjectFile(t testing.TB, name string) string {
	t.Helper()
	return sibling(t, RequireObjectFile(t), name)
}

// RequireObjectPair is RequireObject for tests that need both builds of the
// session programs: sessions.bpf.o (no-argument kfuncs) and
// sessions.ctx.bpf.o (void *ctx), beside PROBECONF_BPF_OBJECT. A missing one
// fails the test.
func RequireObjectPair(t testing.TB) (noarg, ctx string) {
	t.Helper()
	object := RequireObject(t)
	return sibling(t, object, SessionsObjectName), sibling(t, object, SessionsCtxObjectName)
}

// USDTObjectEnv names the environment variable that points at
// usdt_recorder.bpf.o (libbpf's usdt.bpf.h program). Unset, it is the sibling
// of PROBECONF_BPF_OBJECT (`cargo run -- artifacts DIR` writes both).
const USDTObjectEnv = "PROBECONF_USDT_OBJECT"

// ProbeTargetEnv names the environment variable that points at the project's
// probe-target (its USDT sites). Unset, it is the sibling of
// PROBECONF_BPF_OBJECT.
const ProbeTargetEnv = "PROBECONF_PROBE_TARGET"

// artifact returns the file named by env, or the file called name beside
// PROBECONF_BPF_OBJECT; it skips the test when neither variable is set and
// fails it when the file is missing.
func artifact(t testing.TB, env, name string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		object := os.Getenv(ObjectEnv)
		if object == "" {
			t.Skipf("neither %s nor %s is set: run `cargo run -- artifacts DIR` and point %s at DIR/recorders.bpf.o",
				env, ObjectEnv, ObjectEnv)
		}
		path = filepath.Join(filepath.Dir(object), name)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v (write the artifacts with `cargo run -- artifacts DIR`, or set %s)", name, err, env)
	}
	return path
}

// USDTObjectFile returns usdt_recorder.bpf.o for tests that only parse it (no
// root needed), or skips.
func USDTObjectFile(t testing.TB) string {
	t.Helper()
	return artifact(t, USDTObjectEnv, USDTObjectName)
}

// RequireUSDTObject is RequireObject for tests that load and attach the USDT
// recorder: root, and usdt_recorder.bpf.o.
func RequireUSDTObject(t testing.TB) string {
	t.Helper()
	RequireObject(t)
	return USDTObjectFile(t)
}

// ProbeTargetFile returns the project's probe-target (no root needed), or
// skips.
func ProbeTargetFile(t testing.TB) string {
	t.Helper()
	return artifact(t, ProbeTargetEnv, "probe-target")
}

// KernelVersion returns the running kernel's major and minor version.
func KernelVersion(t testing.TB) (major, minor int) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("kernel release %q", release)
	}
	digits := func(s string) string { // "0-rc1" → "0"
		if i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			return s[:i]
		}
		return s
	}
	major, err1 := strconv.Atoi(digits(parts[0]))
	minor, err2 := strconv.Atoi(digits(parts[1]))
	if err1 != nil || err2 != nil {
		t.Fatalf("kernel release %q: %v %v", release, err1, err2)
	}
	return major, minor
}

// RequireGCC returns gcc's path or skips the test.
func RequireGCC(t testing.TB) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found: this test builds a small C program")
	}
	return gcc
}

// BuildC writes src to dir/name.c and compiles it to dir/name with gcc and
// the given extra arguments (placed after the source). It returns the output.
func BuildC(t testing.TB, gcc, dir, name, src string, args ...string) string {
	t.Helper()
	cfile := filepath.Join(dir, name+".c")
	if err := os.WriteFile(cfile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(gcc, append([]string{"-O1", "-g", "-o", out, cfile}, args...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", name, err, msg)
	}
	return out
}

// GCC returns gcc's path and fails the test without it: for tests that have
// already decided to run (root and object present).
func GCC(t testing.TB) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc not found, but %s is set and we are root: this test needs gcc to build its target", ObjectEnv)
	}
	return gcc
}

// RequireObjectFile returns the BPF object for tests that only parse it (no
// root needed), or skips.
func RequireObjectFile(t testing.TB) string {
	t.Helper()
	path := os.Getenv(ObjectEnv)
	if path == "" {
		t.Skipf("%s is not set: point it at a built bpf/recorders.bpf.o to run this test", ObjectEnv)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v", ObjectEnv, path, err)
	}
	return path
}

// BPFFDs counts this process's open BPF links, programs and maps, to check
// that a session released everything it created.
func BPFFDs(t testing.TB) map[string]int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the fd of ReadDir itself, closed meanwhile
		}
		switch target {
		case "anon_inode:bpf_link", "anon_inode:bpf-link":
			counts["link"]++
		case "anon_inode:bpf-prog":
			counts["prog"]++
		case "anon_inode:bpf-map":
			counts["map"]++
		}
	}
	return counts
}

// LinkInfo is the part of a BPF link's kernel info (BPF_OBJ_GET_INFO_BY_FD)
// that tests check: which link was made, with which flags.
type LinkInfo struct {
	Type          uint32 // enum bpf_link_type: 7 perf_event, 12 uprobe_multi
	PerfEventType uint32 // perf_event links: enum bpf_perf_event_type, 1 uprobe, 2 uretprobe
	MultiFlags    uint32 // uprobe_multi links: uprobe_multi.flags (1 = BPF_F_UPROBE_MULTI_RETURN)
	MultiCount    uint32 // uprobe_multi links: number of offsets
}

// enum bpf_link_type and enum bpf_perf_event_type values, and the
// uprobe_multi RETURN flag, from the uapi.
const (
	LinkTypePerfEvent   = 7
	LinkTypeUprobeMulti = 12
	PerfEventUprobe     = 1
	PerfEventUretprobe  = 2
	UprobeMultiReturn   = 1 // BPF_F_UPROBE_MULTI_RETURN
)

// ReadLinkInfo asks the kernel about the link behind fd. It issues the
// syscall itself rather than use cilium's Link.Info, which does not report
// these fields in every cilium version the harness builds against.
func ReadLinkInfo(t testing.TB, fd int) LinkInfo {
	t.Helper()
	// struct bpf_link_info: type, id, prog_id, then the union at 16. All the
	// union's pointers stay 0, so the kernel copies out only scalars.
	// The buffer is referenced through an unsafe.Pointer field (not a
	// uintptr), so it lives on the heap and cannot move during the syscall.
	info := new(struct {
		linkType, id, progID, _ uint32
		union                   [96]byte
	})
	attr := &struct {
		fd, infoLen uint32
		info        unsafe.Pointer
	}{uint32(fd), uint32(unsafe.Sizeof(*info)), unsafe.Pointer(info)}
	const bpfObjGetInfoByFD = 15
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfObjGetInfoByFD, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	runtime.KeepAlive(attr)
	runtime.KeepAlive(info)
	if errno != 0 {
		t.Fatalf("BPF_OBJ_GET_INFO_BY_FD on fd %d: %v", fd, errno)
	}
	le := binary.NativeEndian
	out := LinkInfo{Type: info.linkType}
	switch info.linkType {
	case LinkTypePerfEvent:
		out.PerfEventType = le.Uint32(info.union[0:]) // perf_event.type
	case LinkTypeUprobeMulti:
		// uprobe_multi: path, offsets, ref_ctr_offsets, cookies (4 × u64),
		// then path_size, count, flags, pid.
		out.MultiCount = le.Uint32(info.union[36:])
		out.MultiFlags = le.Uint32(info.union[40:])
	}
	return out
}

// RequireAMD64 skips tests of x86_64-only logic (USDT argument specs, the
// nop;nop5 pair) elsewhere.
func RequireAMD64(t testing.TB) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("x86_64 only (this is %s)", runtime.GOARCH)
	}
}

// ProbeTarget is a running probe-target started with --wait: it has printed
// "ready PID" and runs its steps once Go is called.
type ProbeTarget struct {
	Pid    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// StartProbeTarget starts path --wait steps and waits for its "ready" line.
// The process is killed at the end of the test if it is still running.
func StartProbeTarget(t testing.TB, path, steps string) *ProbeTarget {
	t.Helper()
	cmd := exec.Command(path, "--wait", steps)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pt := &ProbeTarget{Pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out)}
	line, err := pt.stdout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("probe-target: %q, %v (want \"ready PID\")", line, err)
	}
	return pt
}

// Go lets the target run its steps and returns its output lines (without
// the final "done"), failing the test if it does not exit 0.
func (pt *ProbeTarget) Go(t testing.TB) []string {
	t.Helper()
	if _, err := io.WriteString(pt.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	pt.stdin.Close()
	rest, err := io.ReadAll(pt.stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.cmd.Wait(); err != nil {
		t.Fatalf("probe-target: %v\n%s", err, rest)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != "done" {
		t.Fatalf("probe-target output %q does not end with done", rest)
	}
	return lines[:len(lines)-1]
}

// RunProbeTarget runs path steps to completion and returns its output lines
// (without "done").
func RunProbeTarget(t testing.TB, path, steps string) []string {
	t.Helper()
	out, err := exec.Command(path, steps).Output()
	if err != nil {
		t.Fatalf("probe-target %q: %v", steps, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != "done" {
		t.Fatalf("probe-target output %q does not end with done", out)
	}
	return lines[:len(lines)-1]
}

// ReadRingbuf empties a BPF ring buffer map and returns its records in order,
// without waiting for more.
func ReadRingbuf(t testing.TB, events *ebpf.Map) [][]byte {
	t.Helper()
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rd.SetDeadline(time.Now()) // return os.ErrDeadlineExceeded once empty
	var out [][]byte
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.RawSample)
	}
}
