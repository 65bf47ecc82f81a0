package harness

// End-to-end sessions for the binary checks at attach and for the probe's
// retprobe/session fields, as root with PROBECONF_BPF_OBJECT (requests built
// as the Rust runner builds them: runnerRequest).

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"probeconf/bridge/bridgetest"
	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/protocol"
)

// requestError sends one request and returns the error line it ends with.
func requestError(t *testing.T, req protocol.Request) protocol.ErrorLine {
	t.Helper()
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.sendJSON(req)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if s := c.wait(); s != 1 {
		t.Errorf("status %d, want 1", s)
	}
	return e
}

// TestEndToEndBinaryErrorsAtAttach: a probed binary that is missing or not
// ELF is the library's to find (link.OpenExecutable, or the session bridge's
// ELF open), at attach; the request's validation only checks the path's shape.
func TestEndToEndBinaryErrorsAtAttach(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "not-elf.txt")
	if err := os.WriteFile(text, []byte("this is not an ELF file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Shorter than an ELF header: Go's ELF reader answers io.EOF, not a FormatError.
	short := filepath.Join(dir, "short.txt")
	if err := os.WriteFile(short, []byte("hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-file")
	before := bridgetest.BPFFDs(t)

	for _, tc := range []struct {
		name, program string
		kind          protocol.Kind
		binary        string
		class         string
		errno         syscall.Errno
		detail        string
		path          bool // the library's message names the file (cilium's ELF parse error does not)
	}{
		// cilium's own words differ by version (v0.21.0 on: "stat executable: ...",
		// before: "parse ELF file: open ..."); phase, class and errno do not.
		{"missing binary, uprobe", "pc_uprobe", protocol.KindUprobe, missing, "not-found", syscall.ENOENT, "no such file or directory", true},
		{"missing binary, uprobe.multi", "pc_uprobe_multi", protocol.KindUprobeMulti, missing, "not-found", syscall.ENOENT, "no such file or directory", true},
		{"missing binary, uprobe.session (bridge)", "pc_uprobe_session", protocol.KindUprobeSession, missing, "not-found", syscall.ENOENT, "uprobe session: stat executable", true},
		{"text file, uprobe", "pc_uprobe", protocol.KindUprobe, text, "invalid", 0, "bad magic number", false},
		{"text file, uprobe.session (bridge)", "pc_uprobe_session", protocol.KindUprobeSession, text, "invalid", 0, "bad magic number", true},
		{"short text file, uprobe", "pc_uprobe", protocol.KindUprobe, short, "invalid", 0, "EOF", false},
		{"short text file, uprobe.session (bridge)", "pc_uprobe_session", protocol.KindUprobeSession, short, "invalid", 0, "EOF", true},
		{"directory, uprobe", "pc_uprobe", protocol.KindUprobe, dir, "invalid", syscall.EISDIR, "is a directory", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := requestError(t, runnerRequest(objs, protocol.Probe{
				Name: "up", Program: tc.program, Kind: tc.kind, Binary: tc.binary,
				Targets: []protocol.Target{{Symbol: "pc_leaf"}},
			}))
			if e.Phase != protocol.PhaseAttach || e.Class != tc.class || e.Probe != "up" || e.Errno != int(tc.errno) ||
				!strings.Contains(e.Detail, tc.detail) || tc.path != strings.Contains(e.Detail, tc.binary) {
				t.Errorf("error line %+v: want phase attach, class %s, probe up, errno %d, detail with %q (path named: %v)",
					e, tc.class, tc.errno, tc.detail, tc.path)
			}
		})
	}

	// The object files themselves are still checked up front: the top-level
	// one, and a probe's own.
	t.Run("missing object", func(t *testing.T) {
		req := runnerRequest(objs, protocol.Probe{
			Name: "up", Program: "pc_uprobe", Kind: protocol.KindUprobe, Binary: missing,
			Targets: []protocol.Target{{Symbol: "pc_leaf"}},
		})
		req.Object = filepath.Join(dir, "no-such.bpf.o")
		e := requestError(t, req)
		if e.Phase != protocol.PhaseProtocol || e.Class != "not-found" || e.Probe != "" || e.Errno != int(syscall.ENOENT) {
			t.Errorf("error line %+v: want phase protocol, class not-found, no probe", e)
		}
	})
	t.Run("missing probe object", func(t *testing.T) {
		e := requestError(t, runnerRequest(objs, protocol.Probe{
			Name: "up", Program: "pc_uprobe", Kind: protocol.KindUprobe, Object: filepath.Join(dir, "no-such.bpf.o"), Binary: missing,
			Targets: []protocol.Target{{Symbol: "pc_leaf"}},
		}))
		if e.Phase != protocol.PhaseProtocol || e.Class != "not-found" || e.Errno != int(syscall.ENOENT) ||
			!strings.Contains(e.Detail, "no-such.bpf.o") {
			t.Errorf("error line %+v: want phase protocol, class not-found, naming the probe's object", e)
		}
	})

	if after := bridgetest.BPFFDs(t); after["link"] != before["link"] || after["prog"] != before["prog"] {
		t.Errorf("BPF fds before %v, after %v: a failed attach left something behind", before, after)
	}
}

// TestEndToEndUprobeSessionReturnFlag pins what the kernel does with a
// uprobe.session program linked with BPF_F_UPROBE_MULTI_RETURN (probe field
// retprobe: true). libbpf refuses this pair before the syscall; the harness
// passes it to the kernel (through the cilium-uprobe-session bridge).
//
// Kernel behaviour measured on Linux 6.18: BPF_LINK_CREATE (attach type 57,
// uprobe_multi.flags 1) succeeds, and for each call of the target function the
// program runs once, at return only: bpf_session_is_return() = 1, no entry
// run at all, so the session cookie reads 0 (nothing wrote it). (In
// bpf_uprobe_multi_link_attach the RETURN flag drops the entry handler, and a
// session program keeps its return handler.) If this fails on another kernel,
// the kernel's answer changed: record the new behaviour, do not "fix" the harness.
func TestEndToEndUprobeSessionReturnFlag(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	target := startTarget(t)
	pid := uint32(target.cmd.Process.Pid)
	yes := true

	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.sendJSON(runnerRequest(objs, protocol.Probe{
		Name: "s", Program: "pc_uprobe_session", Kind: protocol.KindUprobeSession, Binary: target.path,
		Retprobe: &yes,
		Targets:  []protocol.Target{{Symbol: "pc_leaf", Cookie: 17}},
		PID:      &protocol.PID{Scope: protocol.ScopePID, PID: u32p(pid)},
		// The entry would write 0x1001 into the session cookie, if it ran.
		Rodata: map[string][]byte{".rodata.pc_cfg": pcConfig(0, 0, 0, cmConst, 0, 0x1001)},
	}))
	var attached protocol.Attached
	c.recv("attached", &attached)
	if want := (protocol.AttachedProbe{Name: "s", Via: protocol.ViaCompat, Bridge: compat.BridgeUprobeSession}); len(attached.Probes) != 1 || withoutProgIDs(t, attached.Probes)[0] != want {
		t.Errorf("attached %+v, want [%+v]", attached.Probes, want)
	}

	const n = 3
	target.run(t, n)
	events := c.drain()

	var got []event
	for _, raw := range events.Events {
		got = append(got, decodeEvent(t, raw))
	}
	t.Logf("events: %+v", got)
	if len(got) != n {
		t.Fatalf("%d events, want %d (one return run per call, no entry run): %+v", len(got), n, got)
	}
	for i, e := range got {
		if e.Tgid != pid || e.AttachCookie != 17 || e.Phase != phaseReturn || e.IsReturn != 1 ||
			e.Flags != fSession|fHasRet || e.CookieIn != 0 || e.Ret != uint64(2*i+1) {
			t.Errorf("event %d: %+v; want a return run (is_return 1, flags SESSION|HAS_RET, attach cookie 17, cookie_in 0, ret %d)",
				i, e, 2*i+1)
		}
	}
}

// TestEndToEndSessionFlagAttachTypeMismatch: the session field asks for a
// link whose attach type differs from the one the program was loaded with.
// The harness does not second-guess it; on Linux 6.18 the kernel answers
// EINVAL for each (bpf_prog_attach_check_attach_type).
func TestEndToEndSessionFlagAttachTypeMismatch(t *testing.T) {
	objs := bridgetest.RequireObjects(t)
	target := startTarget(t)
	yes, no := true, false
	for _, tc := range []struct {
		name, program string
		kind          protocol.Kind
		session       *bool
		detail        string
	}{
		// A uprobe.multi program (expected attach type 48) on a session link (57), through the bridge.
		{"uprobe.multi with session", "pc_uprobe_multi", protocol.KindUprobeMulti, &yes, "attach type 57, flags 0x0"},
		{"uretprobe.multi with session", "pc_uretprobe_multi", protocol.KindUretprobeMulti, &yes, "attach type 57, flags 0x1"},
		// A uprobe.session program (57) on cilium's UprobeMulti link (48).
		{"uprobe.session without session", "pc_uprobe_session", protocol.KindUprobeSession, &no, "AttachTraceUprobeMulti"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := requestError(t, runnerRequest(objs, protocol.Probe{
				Name: "m", Program: tc.program, Kind: tc.kind, Binary: target.path, Session: tc.session,
				Targets: []protocol.Target{{Symbol: "pc_leaf"}},
			}))
			if e.Phase != protocol.PhaseAttach || e.Class != "invalid" || e.Probe != "m" || e.Errno != int(syscall.EINVAL) ||
				!strings.Contains(e.Detail, tc.detail) || !strings.Contains(e.Detail, "session field") {
				t.Errorf("error line %+v: want attach/invalid EINVAL with %q and the session-field hint", e, tc.detail)
			}
		})
	}
}

// TestSessionOnSingleKindIsProtocolError needs no kernel: validation refuses it.
func TestSessionOnSingleKindIsProtocolError(t *testing.T) {
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.send(`{"protocol":1,"object":"/x.o","probes":[{"name":"p","program":"pc_uprobe","kind":"uprobe","session":true,"binary":"/bin/true","targets":[{"symbol":"main","offset":0,"cookie":0}]}]}`)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseProtocol || e.Class != "invalid" || !strings.Contains(e.Detail, "field session must be absent or false") {
		t.Errorf("error line %+v", e)
	}
	c.wait()
}

// TestRelativeBinaryIsProtocolError: validation checks the binary path's
// shape only (absolute, non-empty); existence is checked at attach.
func TestRelativeBinaryIsProtocolError(t *testing.T) {
	c := startSession(t, context.Background())
	c.recv("hello", nil)
	c.send(`{"protocol":1,"object":"/x.o","probes":[{"name":"p","program":"pc_uprobe","kind":"uprobe","binary":"bin/true","targets":[{"symbol":"main","offset":0,"cookie":0}]}]}`)
	var e protocol.ErrorLine
	c.recv("error", &e)
	if e.Phase != protocol.PhaseProtocol || e.Class != "invalid" || !strings.Contains(e.Detail, "must be an absolute path") {
		t.Errorf("error line %+v", e)
	}
	c.wait()
}
