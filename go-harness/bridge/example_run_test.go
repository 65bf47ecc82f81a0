package bridge_test

import (
	"io"
	"os"
	"strings"
	"testing"

	"probeconf/bridge"
	"probeconf/bridge/bridgetest"
)

// TestExamplesRun runs the examples for real (root, and the artifacts beside
// PROBECONF_BPF_OBJECT) and checks what they print: they have no Output
// comment because they need both.
func TestExamplesRun(t *testing.T) {
	bridgetest.RequireObjects(t)
	bridgetest.ProbeTargetFile(t)
	for _, tc := range []struct {
		name string
		run  func()
		want []string
		// lacking: what the example prints where the kernel lacks the
		// feature (then want is not looked for), and whether it does.
		lacking string
		lacks   func() error
	}{
		{"UprobeSession", ExampleUprobeSession, []string{"entry, arg0 = 4", "return, value = 40"}, "", nil},
		{"AttachUSDT", ExampleAttachUSDT, []string{`args "-4@$42 -8@%rdi`, "cookie 0x77, arg0 42, arg1 3"}, "", nil},
		{"ObjectVariant", ExampleObjectVariant, []string{"load the build with bpf_session_cookie("}, "", nil},
		{"LoadFsession", ExampleLoadFsession, []string{"entry, cookie 0x51\nreturn, cookie 0x51, value -3\n"},
			"this kernel has no fsession: ", bridge.HaveFsession},
		{"TracingMulti", ExampleTracingMulti, []string{"entry, cookie 0x12\nentry, cookie 0x11\n"},
			"this kernel has no tracing multi links: ", bridge.HaveTracingMulti},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := stdoutOf(t, tc.run)
			t.Logf("%s", out)
			if tc.lacks != nil && tc.lacks() != nil {
				if !strings.HasPrefix(out, tc.lacking) {
					t.Errorf("the kernel lacks it (%v), but the output does not start with %q", tc.lacks(), tc.lacking)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
		})
	}
}

// stdoutOf runs f with os.Stdout going to a pipe and returns what it wrote.
func stdoutOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	defer func() { os.Stdout = saved }()
	f()
	w.Close()
	return <-done
}
