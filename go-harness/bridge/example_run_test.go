package bridge_test

import (
	"io"
	"os"
	"strings"
	"testing"

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
	}{
		{"UprobeSession", ExampleUprobeSession, []string{"entry, arg0 = 4", "return, value = 40"}},
		{"AttachUSDT", ExampleAttachUSDT, []string{`args "-4@$42 -8@%rdi`, "cookie 0x77, arg0 42, arg1 3"}},
		{"ObjectVariant", ExampleObjectVariant, []string{"load the build with bpf_session_cookie("}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := stdoutOf(t, tc.run)
			t.Logf("%s", out)
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
