package bridge

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"probeconf/bridge/bridgetest"
)

// wantLinkCreateUprobeMulti is union bpf_attr's link_create.uprobe_multi
// layout, from include/uapi/linux/bpf.h (6.6+): byte offsets and the size of
// the prefix the bridge passes to the kernel.
var wantLinkCreateUprobeMulti = map[string]uintptr{
	"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12,
	"uprobe_multi.path": 16, "uprobe_multi.offsets": 24, "uprobe_multi.ref_ctr_offsets": 32,
	"uprobe_multi.cookies": 40, "uprobe_multi.cnt": 48, "uprobe_multi.flags": 52, "uprobe_multi.pid": 56,
	"sizeof(uprobe_multi part)": 64,
}

func goLinkCreateUprobeMulti() map[string]uintptr {
	var a linkCreateUprobeMultiAttr
	return map[string]uintptr{
		"prog_fd": unsafe.Offsetof(a.progFD), "target_fd": unsafe.Offsetof(a.targetFD),
		"attach_type": unsafe.Offsetof(a.attachType), "flags": unsafe.Offsetof(a.flags),
		"uprobe_multi.path": unsafe.Offsetof(a.path), "uprobe_multi.offsets": unsafe.Offsetof(a.offsets),
		"uprobe_multi.ref_ctr_offsets": unsafe.Offsetof(a.refCtrOffsets),
		"uprobe_multi.cookies":         unsafe.Offsetof(a.cookies), "uprobe_multi.cnt": unsafe.Offsetof(a.cnt),
		"uprobe_multi.flags": unsafe.Offsetof(a.uprobeFlags), "uprobe_multi.pid": unsafe.Offsetof(a.pid),
		"sizeof(uprobe_multi part)": unsafe.Sizeof(a),
	}
}

func TestLinkCreateUprobeMultiAttrLayout(t *testing.T) {
	got := goLinkCreateUprobeMulti()
	for field, want := range wantLinkCreateUprobeMulti {
		if got[field] != want {
			t.Errorf("%s: Go offset %d, uapi %d", field, got[field], want)
		}
	}
	if s := unsafe.Sizeof(bpfPointer{}); s != 8 {
		t.Errorf("bpfPointer is %d bytes, want 8 (__aligned_u64)", s)
	}
}

// uapiCandidates are the include dirs whose linux/bpf.h the layout tests
// look at, in order: PROBECONF_UAPI_INCLUDE, the system's (Debian bookworm
// ships 6.1 headers) and the copies libbpf vendors, which the Rust crate's
// libbpf-sys brings along.
func uapiCandidates() []string {
	candidates := []string{os.Getenv("PROBECONF_UAPI_INCLUDE"), "/usr/include"}
	home, _ := os.UserHomeDir()
	vendored, _ := filepath.Glob(filepath.Join(home, ".cargo/registry/src/*/libbpf-sys-*/libbpf/include/uapi"))
	var out []string
	for _, dir := range append(candidates, vendored...) {
		if dir != "" {
			out = append(out, dir)
		}
	}
	return out
}

// uapiWith finds the first candidate include dir whose linux/bpf.h contains
// every one of want, with the header's text, and the dirs it tried.
func uapiWith(want ...string) (dir, header string, tried []string) {
next:
	for _, dir := range uapiCandidates() {
		tried = append(tried, dir)
		h, err := os.ReadFile(filepath.Join(dir, "linux/bpf.h"))
		if err != nil {
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(h), w) {
				continue next
			}
		}
		return dir, string(h), tried
	}
	return "", "", tried
}

// uapiIncludeDir finds an include dir whose linux/bpf.h has uprobe_multi
// (6.6+) and uprobe sessions.
func uapiIncludeDir() (string, []string) {
	dir, _, tried := uapiWith("} uprobe_multi;", "BPF_TRACE_UPROBE_SESSION")
	return dir, tried
}

// cValues builds src with gcc (args added) and runs it: each line it prints
// is "NAME NUMBER", returned by name.
func cValues(t *testing.T, gcc, name, src string, args ...string) map[string]uintptr {
	t.Helper()
	bin := bridgetest.BuildC(t, gcc, t.TempDir(), name, src, args...)
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]uintptr{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseUint(line[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		values[line[:i]] = uintptr(v)
	}
	return values
}

// TestLinkCreateUprobeMultiAttrMatchesUapi compiles the layout from the uapi
// header with gcc and compares it with the Go struct and the enum values.
func TestLinkCreateUprobeMultiAttrMatchesUapi(t *testing.T) {
	gcc := bridgetest.RequireGCC(t)
	inc, tried := uapiIncludeDir()
	if inc == "" {
		t.Skipf("no linux/bpf.h with uprobe_multi and BPF_TRACE_UPROBE_SESSION in %v (set PROBECONF_UAPI_INCLUDE)", tried)
	}
	t.Logf("uapi header: %s/linux/bpf.h", inc)
	const src = `#include <stdio.h>
#include <stddef.h>
#include <linux/bpf.h>
#define OFF(f) printf("%s %zu\n", #f, offsetof(union bpf_attr, link_create.f))
int main(void) {
	OFF(prog_fd); OFF(target_fd); OFF(attach_type); OFF(flags);
	OFF(uprobe_multi.path); OFF(uprobe_multi.offsets); OFF(uprobe_multi.ref_ctr_offsets);
	OFF(uprobe_multi.cookies); OFF(uprobe_multi.cnt); OFF(uprobe_multi.flags); OFF(uprobe_multi.pid);
	printf("sizeof(uprobe_multi part) %zu\n",
		(offsetof(union bpf_attr, link_create.uprobe_multi.pid) + sizeof(__u32) + 7) / 8 * 8);
	printf("BPF_LINK_CREATE %d\nBPF_TRACE_UPROBE_MULTI %d\nBPF_TRACE_UPROBE_SESSION %d\nBPF_F_UPROBE_MULTI_RETURN %d\n",
		BPF_LINK_CREATE, BPF_TRACE_UPROBE_MULTI, BPF_TRACE_UPROBE_SESSION, (int)BPF_F_UPROBE_MULTI_RETURN);
	return 0;
}
`
	want := cValues(t, gcc, "layout", src, "-I"+inc)
	got := goLinkCreateUprobeMulti()
	for field := range wantLinkCreateUprobeMulti {
		if got[field] != want[field] {
			t.Errorf("%s: Go %d, C %d", field, got[field], want[field])
		}
	}
	consts := map[string]uintptr{
		"BPF_LINK_CREATE": bpfLinkCreate, "BPF_TRACE_UPROBE_MULTI": attachTraceUprobeMulti,
		"BPF_TRACE_UPROBE_SESSION": attachTraceUprobeSession, "BPF_F_UPROBE_MULTI_RETURN": bpfFUprobeMultiReturn,
	}
	for name, v := range consts {
		if want[name] != v {
			t.Errorf("%s: Go %d, uapi %d", name, v, want[name])
		}
	}
}
