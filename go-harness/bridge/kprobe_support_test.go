package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
)

func TestNormalizeKprobeError(t *testing.T) {
	tracefsErr := errors.New("creating tracefs event: neither debugfs nor tracefs are mounted")
	missing := filepath.Join(t.TempDir(), "kprobe")

	err := normalizeKprobeError(tracefsErr, missing)
	if !errors.Is(err, ebpf.ErrNotSupported) || !errors.Is(err, tracefsErr) {
		t.Errorf("no PMU: %v, want ErrNotSupported wrapping the original", err)
	}
	enoent := &os.PathError{Op: "open", Path: "/sys/kernel/tracing/kprobe_events", Err: syscall.ENOENT}
	var errno syscall.Errno
	if err := normalizeKprobeError(enoent, missing); !errors.Is(err, ebpf.ErrNotSupported) || !errors.As(err, &errno) || errno != syscall.ENOENT {
		t.Errorf("no PMU, ENOENT: %v, want ErrNotSupported and errno kept", err)
	}

	present := t.TempDir()
	if err := os.WriteFile(filepath.Join(present, "type"), []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := normalizeKprobeError(enoent, present); err != error(enoent) {
		t.Errorf("PMU present: %v, want the error unchanged", err)
	}
	if normalizeKprobeError(nil, missing) != nil {
		t.Error("nil error changed")
	}
}
