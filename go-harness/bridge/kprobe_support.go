package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// kprobePMUDir is where the kernel publishes the kprobe PMU (CONFIG_KPROBES).
const kprobePMUDir = "/sys/bus/event_source/devices/kprobe"

// KprobeError makes an error of link.Kprobe or link.Kretprobe on a kernel
// without kprobes say so. cilium's link.Kprobe tries the kprobe PMU, and when
// the PMU is missing it falls back to tracefs and reports *that* failure
// ("neither debugfs nor tracefs are mounted", or ENOENT on kprobe_events),
// which reads like a setup problem or a missing symbol; libbpf reports the
// same kernel as EOPNOTSUPP/ENOENT. When the kprobe PMU is absent, the error
// is wrapped with ErrNotSupported (cilium's message and errno kept); any
// other error, and nil, is returned as it is. Call it on the error of a
// Kprobe/Kretprobe call. Kprobes need a kernel built with CONFIG_KPROBES (the
// PMU: Linux 4.17).
func KprobeError(err error) error {
	return normalizeKprobeError(err, kprobePMUDir)
}

func normalizeKprobeError(err error, pmuDir string) error {
	if err == nil || errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	if _, statErr := os.Stat(filepath.Join(pmuDir, "type")); !errors.Is(statErr, os.ErrNotExist) {
		return err // the PMU exists: the error is about this probe, not the kernel
	}
	return fmt.Errorf("%w (no kprobe PMU at %s: kernel built without CONFIG_KPROBES?): %w", err, pmuDir, ErrNotSupported)
}
