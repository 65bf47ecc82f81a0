package classify

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// incompatibleKfuncError has the name of cilium's unexported type, in this
// package: IsIncompatibleKfunc must tell them apart by package path.
type incompatibleKfuncError struct{}

func (*incompatibleKfuncError) Error() string { return `kfunc "x": incompatible types` }

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		where     Where
		class     Class
		errno     int
		hintHas   string // substring of the hint, "" for no hint check
		detailHas string
	}{
		{"ErrNotSupported", fmt.Errorf("kprobe_multi: %w", ebpf.ErrNotSupported), Where{"attach", "kprobe.multi"},
			Unsupported, 0, "CONFIG_FPROBE", "kprobe_multi"},
		{"requires version (cilium's UnsupportedFeatureError text)",
			fmt.Errorf("bpf_link_kprobe_multi not supported (requires >= v5.18): %w", ebpf.ErrNotSupported),
			Where{"attach", "kprobe.session"}, Unsupported, 0, "usually means CONFIG_FPROBE", "requires >= v5.18"},
		{"EOPNOTSUPP", fmt.Errorf("create: %w", syscall.EOPNOTSUPP), Where{"attach", "kprobe"}, Unsupported, 95, "CONFIG_KPROBES", ""},
		{"ENOTSUPP 524", fmt.Errorf("create: %w", ENOTSUPP), Where{"attach", "uprobe.multi"}, Unsupported, 524, "", ""},
		{"ENOENT", fmt.Errorf("open: %w", syscall.ENOENT), Where{"attach", "kretprobe"}, NotFound, 2, "kallsyms", ""},
		{"ESRCH", syscall.ESRCH, Where{"attach", "uprobe.session"}, NotFound, 3, "pid", ""},
		{"os.ErrNotExist without errno", fmt.Errorf("couldn't find one or more symbols: %w", os.ErrNotExist),
			Where{"attach", "kprobe.multi"}, NotFound, 0, "__x64_sys_", ""},
		{"link.ErrNoSymbol", fmt.Errorf("symbol nope: %w", link.ErrNoSymbol), Where{"attach", "uprobe"}, NotFound, 0, "ELF symbol table", ""},
		{"EPERM", syscall.EPERM, Where{"load", ""}, Permission, 1, "CAP_BPF", ""},
		{"EACCES", fmt.Errorf("x: %w", syscall.EACCES), Where{"attach", "uprobe"}, Permission, 13, "root", ""},
		{"EINVAL uprobe.session", fmt.Errorf("link_create: %w", syscall.EINVAL), Where{"attach", "uprobe.session"},
			Invalid, 22, "kernel lacks UPROBE_SESSION", "invalid argument"},
		{"EINVAL uprobe.multi", fmt.Errorf("%w (invalid pid, missing symbol or prog's AttachType not AttachTraceUprobeMulti?)", syscall.EINVAL),
			Where{"attach", "uprobe.multi"}, Invalid, 22, "multi links 48, session links 57", "AttachTraceUprobeMulti"},
		{"EINVAL uprobe.multi through the session bridge", fmt.Errorf("uprobe session link_create (attach type 57, flags 0x0): %w", syscall.EINVAL),
			Where{"attach", "uprobe.multi"}, Invalid, 22, "see the probe's session field", ""},
		{"binary not ELF (cilium's lazy symbol load)", fmt.Errorf("lazy load symbols: parse ELF file: %w", &elf.FormatError{}),
			Where{"attach", "uprobe"}, Invalid, 0, "not an ELF file", ""},
		{"binary shorter than an ELF header", fmt.Errorf("targets[0] pc_leaf+0x0: lazy load symbols: parse ELF file: %w", io.EOF),
			Where{"attach", "uprobe"}, Invalid, 0, "not an ELF file", ""},
		{"truncated object", fmt.Errorf("load collection spec: %w", io.ErrUnexpectedEOF), Where{"load", ""}, Invalid, 0, "", ""},
		{"EOF outside load/attach is other", fmt.Errorf("read: %w", io.EOF), Where{"protocol", ""}, Other, 0, "", ""},
		{"binary is a directory", fmt.Errorf("parse ELF file: %w", &os.PathError{Op: "read", Path: "/tmp", Err: syscall.EISDIR}),
			Where{"attach", "uprobe.session"}, Invalid, 21, "is a directory", ""},
		{"binary missing (link.OpenExecutable)", fmt.Errorf("stat executable: %w", &os.PathError{Op: "stat", Path: "/x/no-such-file", Err: syscall.ENOENT}),
			Where{"attach", "uprobe"}, NotFound, 2, "binary missing", ""},
		{"EBADF", syscall.EBADF, Where{"attach", "uprobe.multi"}, Invalid, 9, "", ""},
		{"ENOEXEC", syscall.ENOEXEC, Where{"load", ""}, Invalid, 8, "", ""},
		{"E2BIG", syscall.E2BIG, Where{"attach", "uprobe.multi"}, Invalid, 7, "too many targets", ""},
		{"ELF format error", fmt.Errorf("load spec: %w", &elf.FormatError{}), Where{"load", ""}, Invalid, 0, "", ""},
		{"verifier EACCES is not permission", fmt.Errorf("load: %w", &ebpf.VerifierError{Cause: syscall.EACCES, Log: []string{"R1 invalid mem access"}}),
			Where{"load", "uprobe"}, Invalid, 13, "verifier rejected", ""},
		{"kfunc param mismatch", fmt.Errorf("fixup for kfunc bpf_session_cookie: function param mismatch: %w", syscall.EINVAL),
			Where{"load", "uprobe.session"}, Invalid, 22, "take ctx from 7.0", ""},
		// cilium's linker: a non-weak kfunc the kernel's BTF lacks wraps ErrNotSupported.
		{"kfunc missing from the kernel stays unsupported",
			fmt.Errorf("program pc_x: fixing up kfuncs: %w", fmt.Errorf("kfunc %q: %w", "bpf_no_such_kfunc", ebpf.ErrNotSupported)),
			Where{"load", "uprobe.session"}, Unsupported, 0, "kernel lacks UPROBE_SESSION", `kfunc "bpf_no_such_kfunc": not supported`},
		{"kfunc missing from the kernel, no kind", fmt.Errorf("fixing up kfuncs: %w", fmt.Errorf("kfunc %q: %w", "x", ebpf.ErrNotSupported)),
			Where{"load", ""}, Unsupported, 0, "helper or kfunc", ""},
		// Same name as cilium's type, other package: not cilium's kfunc error.
		{"a look-alike type is not cilium's", fmt.Errorf("fixing up kfuncs: %w", &incompatibleKfuncError{}),
			Where{"load", "uprobe.session"}, Other, 0, "", ""},
		// BTF-based tracing (the bridges' and the loader's error shapes).
		{"fentry: function not in the kernel's BTF (loader)",
			fmt.Errorf("load pc_fentry: %v: %w", "attach Tracing/TraceFEntry: fentry nope not supported", fmt.Errorf("kernel BTF has no function %q: %w", "nope", syscall.ENOENT)),
			Where{"load", "fentry"}, NotFound, 2, "not in the kernel's BTF", "fentry nope not supported"},
		{"fsession: kernel without it", fmt.Errorf("fsession p: fsession programs (BPF_TRACE_FSESSION) not supported (requires Linux >= 7.0): load program: %w: %w", syscall.EINVAL, ebpf.ErrNotSupported),
			Where{"load", "fsession"}, Unsupported, 22, "needs >= 7.0", ""},
		{"fentry.multi: kernel without the link", fmt.Errorf("load p: tracing multi links not supported: %w: %w", syscall.EINVAL, ebpf.ErrNotSupported),
			Where{"load", "fentry.multi"}, Unsupported, 22, "Linux 7.3 has them", ""},
		{"fsession.multi: kernel without the link", fmt.Errorf("load p: tracing multi links not supported: %w", ebpf.ErrNotSupported),
			Where{"load", "fsession.multi"}, Unsupported, 0, "tracing multi links", ""},
		{"fentry: no trampolines (ENOTSUPP at attach)", fmt.Errorf("create tracing link: %w", ENOTSUPP), Where{"attach", "fentry"},
			Unsupported, 524, "trampolines", ""},
		{"fsession: verifier refusal", fmt.Errorf("fsession p: %w", &ebpf.VerifierError{Cause: syscall.EINVAL, Log: []string{"At program exit the register R0 has smin=0 smax=1 should have been in [0, 0]"}}),
			Where{"load", "fsession"}, Invalid, 22, "verifier rejected", ""},
		{"tracing multi: a function twice", fmt.Errorf("tracing multi link_create (attach type 59, 2 functions): %w", syscall.EINVAL),
			Where{"attach", "fentry.multi"}, Invalid, 22, "listed twice", ""},
		{"tracing multi: missing function before the link", fmt.Errorf("tracing multi: kernel BTF has no function %q: %w", "nope", syscall.ENOENT),
			Where{"attach", "fexit.multi"}, NotFound, 2, "not in the kernel's BTF", ""},
		{"fentry: a program not in the object is not about the kernel's BTF", NotFoundf("program %q not in x.o", "pc_nope"),
			Where{"load", "fentry"}, NotFound, 0, "", ""},
		{"harness invalid", Invalidf("data section is 8 bytes"), Where{"load", ""}, Invalid, 0, "", "8 bytes"},
		{"cilium invalid input sentinel", fmt.Errorf("field Cookies must be exactly Addresses in length: %w", errors.New("invalid input")),
			Where{"attach", "uprobe.multi"}, Invalid, 0, "", ""},
		{"plain error", errors.New("stdin closed"), Where{"protocol", ""}, Other, 0, "", "stdin closed"},
		{"EINTR is other", syscall.EINTR, Where{"attach", "uprobe"}, Other, 4, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err, tc.where)
			if got.Class != tc.class || got.Errno != tc.errno {
				t.Errorf("Classify(%v) = class %s errno %d, want %s %d", tc.err, got.Class, got.Errno, tc.class, tc.errno)
			}
			if !strings.HasPrefix(got.Detail, tc.err.Error()) {
				t.Errorf("detail %q does not start with the library's message %q", got.Detail, tc.err)
			}
			if tc.hintHas != "" && (!strings.Contains(got.Detail, "(hint: ") || !strings.Contains(got.Detail, tc.hintHas)) {
				t.Errorf("detail %q: want hint containing %q", got.Detail, tc.hintHas)
			}
			if tc.hintHas == "" && tc.class == NotFound && strings.Contains(got.Detail, "(hint: ") {
				t.Errorf("detail %q: want no hint", got.Detail)
			}
			if tc.detailHas != "" && !strings.Contains(got.Detail, tc.detailHas) {
				t.Errorf("detail %q: want %q", got.Detail, tc.detailHas)
			}
		})
	}
}
