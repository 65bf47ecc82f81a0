package compat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// SyscallPrefix is the running arch's prefix of syscall entry symbols, as
// cilium's link.Kprobe uses it (internal/linux.PlatformPrefix); "" when the
// arch has none.
func SyscallPrefix() string {
	switch runtime.GOARCH {
	case "386":
		return "__ia32_"
	case "amd64":
		return "__x64_"
	case "arm":
		return "__arm_"
	case "arm64":
		return "__arm64_"
	case "s390x":
		return "__s390x_"
	case "riscv64":
		return "__riscv_"
	case "ppc64", "ppc64le":
		return "__powerpc64_"
	}
	return ""
}

// KallsymsPath is where the kernel lists its symbols.
const KallsymsPath = "/proc/kallsyms"

// PrefixSyscallSymbols applies the kprobe-multi syscall bridge: cilium's
// KprobeMulti passes symbols to the kernel verbatim, so "sys_openat" does not
// resolve on kernels whose syscall entries are "__x64_sys_openat". Each symbol
// "sys_xxx" that kallsyms does not list is replaced by prefix+"sys_xxx" when
// kallsyms lists that one. Any other symbol is left alone, so a symbol missing
// under both names still fails with the name the case asked for.
//
// It returns the symbols to attach and whether any was rewritten.
func PrefixSyscallSymbols(symbols []string, kallsyms io.Reader, prefix string) ([]string, bool, error) {
	if prefix == "" {
		return symbols, false, nil
	}
	wanted := make(map[string]bool)
	for _, s := range symbols {
		if strings.HasPrefix(s, "sys_") {
			wanted[s] = false
			wanted[prefix+s] = false
		}
	}
	if len(wanted) == 0 {
		return symbols, false, nil
	}

	// Lines are "address type name [module]".
	sc := bufio.NewScanner(kallsyms)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		if _, ok := wanted[fields[2]]; ok {
			wanted[fields[2]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("read kallsyms: %w", err)
	}

	out := make([]string, len(symbols))
	changed := false
	for i, s := range symbols {
		out[i] = s
		if strings.HasPrefix(s, "sys_") && !wanted[s] && wanted[prefix+s] {
			out[i] = prefix + s
			changed = true
		}
	}
	return out, changed, nil
}

// PrefixSyscallSymbolsFromKernel is PrefixSyscallSymbols on /proc/kallsyms
// with the running arch's prefix.
func PrefixSyscallSymbolsFromKernel(symbols []string) ([]string, bool, error) {
	f, err := os.Open(KallsymsPath)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return PrefixSyscallSymbols(symbols, f, SyscallPrefix())
}
