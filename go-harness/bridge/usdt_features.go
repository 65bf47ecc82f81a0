package bridge

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// USDTFeatures are the kernel features libbpf's usdt_manager_new detects
// before its first USDT attach; the USDT bridge decides the same things from
// the same probes (ProbeUSDTFeatures). LoadCollectionSpec and AttachUSDT
// probe them themselves; pass them explicitly (SpecOptions.USDTFeatures,
// USDTOptions.Features) only to build for other answers, e.g. to force the
// single-uprobe fallback in a test. Both calls must then get the same value.
type USDTFeatures struct {
	// BPFCookie: bpf_get_attach_cookie() exists (libbpf FEAT_BPF_COOKIE: a
	// tracepoint program calling the helper loads). It is the value of the
	// object's LINUX_HAS_BPF_COOKIE kconfig extern, and says whether a site's
	// spec id travels as the link's cookie or through __bpf_usdt_ip_to_spec_id.
	BPFCookie bool
	// SemaRefcnt: the uprobe PMU has ref_ctr_offset (semaphores), i.e.
	// /sys/bus/event_source/devices/uprobe/format/ref_ctr_offset exists.
	SemaRefcnt bool
	// UprobeMulti: libbpf's FEAT_UPROBE_MULTI_LINK: a uprobe_multi link on "/"
	// fails with EBADF, and with pid -1 with EINVAL (the fixed, process-wide
	// pid filter). Without it every site gets its own perf-event uprobe.
	UprobeMulti bool
	// UprobeSyscall: x86_64 uprobe syscall (336) answers ENXIO outside the
	// kernel's trampoline (libbpf FEAT_UPROBE_SYSCALL); then `nop; nop5`
	// sites are attached on the nop5.
	UprobeSyscall bool
}

// String lists the features as key=value pairs, for logs.
func (f USDTFeatures) String() string {
	return fmt.Sprintf("bpf_cookie=%v sema_refcnt=%v uprobe_multi=%v uprobe_syscall=%v",
		f.BPFCookie, f.SemaRefcnt, f.UprobeMulti, f.UprobeSyscall)
}

const refCtrOffsetFormat = "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset"

// sysUprobe is __NR_uprobe on x86_64 (arch/x86/entry/syscalls/syscall_64.tbl).
const sysUprobe = 336

var (
	usdtFeaturesOnce sync.Once
	usdtFeatures     USDTFeatures
	usdtFeaturesErr  error
)

// ProbeUSDTFeatures detects the running kernel's USDTFeatures, once per
// process (libbpf probes once per object and caches per process too). An
// error means a probe failed in an unexpected way (not merely "no").
func ProbeUSDTFeatures() (USDTFeatures, error) {
	usdtFeaturesOnce.Do(func() { usdtFeatures, usdtFeaturesErr = probeUSDTFeatures() })
	return usdtFeatures, usdtFeaturesErr
}

func probeUSDTFeatures() (USDTFeatures, error) {
	var f USDTFeatures
	// FEAT_BPF_COOKIE: cilium's helper probe loads a program of the given
	// type calling the helper, like libbpf's probe_kern_bpf_cookie
	// (BPF_PROG_TYPE_TRACEPOINT).
	switch err := features.HaveProgramHelper(ebpf.TracePoint, asm.FnGetAttachCookie); {
	case err == nil:
		f.BPFCookie = true
	case errors.Is(err, ebpf.ErrNotSupported):
	default:
		return f, fmt.Errorf("usdt: probe bpf_get_attach_cookie: %w", err)
	}
	_, err := os.Stat(refCtrOffsetFormat)
	f.SemaRefcnt = err == nil
	if f.UprobeMulti, err = probeUprobeMultiLink(); err != nil {
		return f, err
	}
	f.UprobeSyscall = probeUprobeSyscall()
	return f, nil
}

// probeUprobeMultiLink is libbpf's probe_uprobe_multi_link: a kprobe program
// with expected attach type UPROBE_MULTI, linked to "/" (EBADF on kernels
// with uprobe_multi links), then again with pid -1, which a kernel with the
// fixed (process-wide) pid filter refuses with EINVAL. Anything else (the
// probe program not loading included) means libbpf would not use uprobe_multi
// for USDTs.
func probeUprobeMultiLink() (bool, error) {
	if err := probeUprobeMultiKind(attachTraceUprobeMulti, 0); !errors.Is(err, unix.EBADF) {
		return false, nil
	}
	return errors.Is(probeUprobeMultiKind(attachTraceUprobeMulti, ^uint32(0)), unix.EINVAL), nil
}

// probeUprobeSyscall is libbpf's probe_uprobe_syscall (x86_64): outside the
// kernel's uprobe trampoline the syscall fails with ENXIO where it exists.
func probeUprobeSyscall() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	_, _, errno := unix.Syscall(sysUprobe, 0, 0, 0)
	return errno == unix.ENXIO
}
