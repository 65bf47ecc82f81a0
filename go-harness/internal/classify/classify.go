// Package classify turns the errors of cilium/ebpf (and of the harness's own
// bridges) into the protocol's error classes. It is the only place that decides
// a class, so the runner can compare "unsupported" from cilium with
// "unsupported" from libbpf without knowing how either library spells it.
package classify

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Class is the protocol's error class.
type Class string

const (
	Unsupported Class = "unsupported"
	NotFound    Class = "not-found"
	Permission  Class = "permission"
	Invalid     Class = "invalid"
	Other       Class = "other"
)

//go:generate go run ./gen

// ClassOfErrno is the class of errno in probeconf's one errno table
// (bpf/errno-classes.tsv); ok is false for an errno the table does not list.
func ClassOfErrno(errno syscall.Errno) (class Class, ok bool) {
	class, ok = errnoClasses[errno]
	return class, ok
}

// ENOTSUPP is the kernel-internal errno 524 that leaks out of the bpf syscall.
// It is not in x/sys/unix because userspace is not supposed to see it.
const ENOTSUPP = syscall.Errno(524)

// Where says in which step and for which probe kind an error happened, so the
// hint can name the likely cause (the same errno means different things for a
// uprobe.session attach and for a map lookup).
type Where struct {
	Phase string // protocol | load | attach | drain
	Kind  string // probe kind, empty when not about one probe
}

// Result is what an error line carries.
type Result struct {
	Class  Class
	Errno  int    // 0 when the error carries no errno
	Detail string // the library's own message, plus a hint when one applies
}

// Classify maps err to its class, keeps its errno and wraps its message with a
// hint. Every error path of the harness goes through here.
func Classify(err error, where Where) Result {
	if err == nil {
		return Result{Class: Other, Detail: "no error"}
	}
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno)

	class := classOf(err, errno, hasErrno, where)
	res := Result{Class: class, Detail: err.Error()}
	if hasErrno {
		res.Errno = int(errno)
	}
	if h := hint(err, class, errno, where); h != "" {
		res.Detail = fmt.Sprintf("%s (hint: %s)", res.Detail, h)
	}
	return res
}

func classOf(err error, errno syscall.Errno, hasErrno bool, where Where) Class {
	// The verifier answers EACCES or EINVAL; neither is about privileges.
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		return Invalid
	}
	// ErrNotSupported covers cilium's (internal) UnsupportedFeatureError too:
	// its Is method reports ErrNotSupported.
	if errors.Is(err, ebpf.ErrNotSupported) {
		return Unsupported
	}
	// A kfunc the kernel has, with another prototype than the object's (the
	// session kfuncs of the other build variant): the object does not fit
	// this kernel. It carries no errno.
	if IsIncompatibleKfunc(err) {
		return Invalid
	}
	if hasErrno {
		// The one table shared with the Rust loaders (bpf/errno-classes.tsv,
		// generated into errno_table.go).
		if c, ok := ClassOfErrno(errno); ok {
			return c
		}
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, link.ErrNoSymbol) {
		return NotFound
	}
	if errors.Is(err, os.ErrPermission) {
		return Permission
	}
	var ferr *elf.FormatError
	if errors.As(err, &ferr) {
		return Invalid
	}
	// Go's ELF reader answers a file shorter than its headers (a short text
	// file given as the probed binary, a truncated object) with io.EOF or
	// io.ErrUnexpectedEOF, not a FormatError. Only load and attach read files.
	if (where.Phase == "load" || where.Phase == "attach") && isEOF(err) {
		return Invalid
	}
	var invalid *InvalidError
	if errors.As(err, &invalid) || errors.Is(err, os.ErrInvalid) {
		return Invalid
	}
	// cilium's link package rejects bad options with an unexported sentinel
	// (tracefs.ErrInvalidInput, text "invalid input") that errors.Is cannot name.
	if chainHasText(err, "invalid input") {
		return Invalid
	}
	return Other
}

// IsIncompatibleKfunc reports whether err comes from cilium's kfunc fix-up
// finding a kernel kfunc whose prototype differs from the object's
// (btf.CheckTypeCompatibility failed): "fixing up kfuncs: kfunc
// \"bpf_session_is_return\": function param mismatch: incompatible types".
//
// cilium exports no sentinel for it: fixupKfuncs returns an unexported
// *ebpf.incompatibleKfuncError (v0.17.3 to v0.22.0) that has no Unwrap, so
// neither errors.Is nor errors.As can reach it or the btf package's
// (unexported) errIncompatibleTypes behind it. The type is matched by its
// package path and name instead, which no message wording can change. A
// kfunc the kernel lacks altogether is a different error, wrapping
// ebpf.ErrNotSupported ("kfunc \"x\": not supported"): unsupported.
func IsIncompatibleKfunc(err error) bool {
	for _, e := range chain(err) {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.PkgPath() == ciliumPkg && t.Name() == "incompatibleKfuncError" {
			return true
		}
	}
	return false
}

const ciliumPkg = "github.com/cilium/ebpf"

// chain lists every error in err's tree (err first, depth first).
func chain(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, chain(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, chain(e)...)
		}
	}
	return out
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// chainHasText reports whether some error in err's tree has exactly this text.
func chainHasText(err error, text string) bool {
	for _, e := range chain(err) {
		if e.Error() == text {
			return true
		}
	}
	return false
}

// InvalidError marks an error the harness itself found in its input (a bad
// request, a wrong section size): class "invalid" without an errno.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// Invalidf builds an *InvalidError.
func Invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// NotFoundError marks something the request names that does not exist (a
// program, a map): class "not-found"; errors.Is(err, os.ErrNotExist) holds.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string        { return e.Msg }
func (e *NotFoundError) Is(target error) bool { return target == os.ErrNotExist }

// NotFoundf builds a *NotFoundError.
func NotFoundf(format string, args ...any) error {
	return &NotFoundError{Msg: fmt.Sprintf(format, args...)}
}

const kfuncPrototypeHint = "a kfunc prototype does not match the kernel's; the session kfuncs take no argument on 6.10-6.19 " +
	"and take ctx from 7.0 on (sessions.bpf.o vs sessions.ctx.bpf.o; send \"objects\" to let the harness pick)"

// cilium phrases an UnsupportedFeatureError as "X not supported (requires >= vN)".
var requiresVersion = regexp.MustCompile(`requires >= v?[0-9.]+`)

func hint(err error, class Class, errno syscall.Errno, where Where) string {
	kind := where.Kind
	isKprobeMultiFamily := kind == "kprobe.multi" || kind == "kretprobe.multi" || kind == "kprobe.session"
	isUprobeMultiFamily := kind == "uprobe.multi" || kind == "uretprobe.multi"
	isTracingMulti := kind == "fentry.multi" || kind == "fexit.multi" || kind == "fsession.multi"
	isTracing := isTracingMulti || kind == "fentry" || kind == "fexit" || kind == "fsession"
	msg := err.Error()

	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		if strings.Contains(strings.Join(verr.Log, "\n"), "param mismatch") || strings.Contains(msg, "param mismatch") {
			return kfuncPrototypeHint
		}
		return "the verifier rejected the program (full log on stderr)"
	}
	if IsIncompatibleKfunc(err) || strings.Contains(msg, "param mismatch") {
		return kfuncPrototypeHint
	}

	switch class {
	case Unsupported:
		switch {
		case isKprobeMultiFamily && requiresVersion.MatchString(msg):
			return "cilium names a minimum kernel version, but on a newer kernel this usually means CONFIG_FPROBE (kprobe_multi) is not set"
		case isKprobeMultiFamily:
			return "kernel lacks kprobe_multi/kprobe_session: needs >= 5.18 (session >= 6.10) and CONFIG_FPROBE"
		case kind == "kprobe" || kind == "kretprobe":
			return "kernel built without CONFIG_KPROBES, or neither the kprobe PMU nor tracefs kprobe_events is available"
		case kind == "uprobe.session":
			return "kernel lacks UPROBE_SESSION (needs >= 6.13)"
		case isUprobeMultiFamily:
			return "kernel lacks uprobe_multi links (needs >= 6.6)"
		case kind == "fsession":
			return "kernel lacks fsession (needs >= 7.0 and a JIT that supports it: x86_64)"
		case isTracingMulti:
			return "kernel lacks tracing multi links (attach types 59-61; Linux 7.3 has them), or the ftrace direct calls they need"
		case isTracing:
			return "kernel lacks BPF trampolines for this program (BTF, CONFIG_FUNCTION_TRACER with ftrace direct calls, a JIT)"
		case where.Phase == "load":
			return "the kernel lacks a program type, helper or kfunc this program needs"
		}
	case Invalid:
		var ferr *elf.FormatError
		if strings.HasPrefix(kind, "u") && where.Phase == "attach" {
			switch {
			case errors.As(err, &ferr) || isEOF(err):
				return "the probed binary is not an ELF file (or is truncated)"
			case errno == syscall.EISDIR:
				return "the probed binary is a directory"
			}
		}
		if errno == syscall.EINVAL {
			switch {
			case isTracingMulti && where.Phase == "attach":
				return "a function listed twice, a function the program may not trace, or an attach type that does not match the program's"
			case isTracing && where.Phase == "attach":
				return "the link's attach type does not match the program's expected one, or the function may not be traced"
			case kind == "uprobe.session":
				return "kernel lacks UPROBE_SESSION (needs >= 6.13), the link's attach type does not match the program's expected one " +
					"(session links 57, multi links 48: see the probe's session field), or an offset is not an instruction boundary"
			case isUprobeMultiFamily:
				return "kernel lacks UPROBE_MULTI (needs >= 6.6), the link's attach type does not match the program's expected one " +
					"(multi links 48, session links 57: see the probe's session field), or a pid/offset is invalid"
			case isKprobeMultiFamily:
				return "missing kernel symbol, or the program's attach type does not match (kprobe.multi=42, kprobe.session=56)"
			case kind == "kprobe" || kind == "kretprobe":
				return "kernel symbol missing or not probeable (on >= 6.11 tracefs reports a missing symbol as EINVAL)"
			}
		}
		if errno == syscall.E2BIG {
			return "too many targets for one link, or a bpf_attr field the kernel does not know is set"
		}
	case NotFound:
		if isTracing && errno == syscall.ENOENT {
			return "kernel function not in the kernel's BTF (absent, no BTF FUNC for it, or in a module): see bpftool btf dump file /sys/kernel/btf/vmlinux"
		}
		if where.Phase != "attach" {
			break
		}
		switch {
		case isKprobeMultiFamily || kind == "kprobe" || kind == "kretprobe":
			return "kernel symbol not found (see /proc/kallsyms; syscalls need the arch prefix, e.g. __x64_sys_)"
		case strings.HasPrefix(kind, "u"):
			return "symbol not in the binary's ELF symbol table, binary missing, or the pid is not running"
		}
	case Permission:
		return "needs root, or CAP_BPF + CAP_PERFMON (check kernel.unprivileged_bpf_disabled and lockdown)"
	}
	return ""
}
