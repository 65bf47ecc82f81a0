package compat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// KprobePMUDir is where the kernel publishes the kprobe PMU (CONFIG_KPROBES).
const KprobePMUDir = "/sys/bus/event_source/devices/kprobe"

// NormalizeKprobeError makes a kprobe/kretprobe attach error on a kernel
// without kprobes say so. cilium's link.Kprobe tries the kprobe PMU, and when
// the PMU is missing it falls back to tracefs and reports *that* failure
// ("neither debugfs nor tracefs are mounted", or ENOENT on kprobe_events),
// which reads like a setup problem or a missing symbol. libbpf reports the
// same kernel as EOPNOTSUPP/ENOENT. When the PMU is absent, the error is
// wrapped with ebpf.ErrNotSupported (keeping cilium's message and errno).
func NormalizeKprobeError(err error) error {
	return normalizeKprobeError(err, KprobePMUDir)
}

func normalizeKprobeError(err error, pmuDir string) error {
	if err == nil || errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	if _, statErr := os.Stat(filepath.Join(pmuDir, "type")); !errors.Is(statErr, os.ErrNotExist) {
		return err // the PMU exists: the error is about this probe, not the kernel
	}
	return fmt.Errorf("%w (no kprobe PMU at %s: kernel built without CONFIG_KPROBES?): %w", err, pmuDir, ebpf.ErrNotSupported)
}
