package bridge

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
)

// ErrNotSupported is returned, wrapped, when the running kernel lacks what a
// bridge needs (a link type, a kprobe PMU, semaphore reference counting). It
// is ebpf.ErrNotSupported, as link.ErrNotSupported is, so either sentinel
// matches with errors.Is. The message names the feature, the minimum kernel
// and the likely cause; the kernel's errno, when there is one, stays in the
// chain (errors.As with a syscall.Errno).
var ErrNotSupported = ebpf.ErrNotSupported

// unsupportedError is a feature the kernel lacks, phrased like cilium's
// UnsupportedFeatureError: "FEATURE not supported (requires >= VERSION): HINT".
type unsupportedError struct {
	feature   string // what is missing
	minKernel string // the first Linux release that has it, or "" (not a kernel matter)
	hint      string // the likely cause, or ""
	err       error  // the kernel's answer, or nil
}

func (e *unsupportedError) Error() string {
	msg := e.feature + " not supported"
	if e.minKernel != "" {
		msg += " (requires Linux >= " + e.minKernel + ")"
	}
	if e.hint != "" {
		msg += ": " + e.hint
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotSupported) hold.
func (e *unsupportedError) Is(target error) bool { return target == ErrNotSupported }

// Unwrap keeps the kernel's errno reachable.
func (e *unsupportedError) Unwrap() error { return e.err }

// invalidError is an input the bridges refuse before asking the kernel.
// errors.Is(err, os.ErrInvalid) holds, but the text does not end in
// "invalid argument", which would read like a kernel EINVAL.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == os.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}
