package bridge

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// syscallPrefix is the running arch's prefix of syscall entry symbols, as
// cilium's link.Kprobe uses it (internal/linux.PlatformPrefix); "" when the
// arch has none.
func syscallPrefix() string {
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

// kallsymsPath is where the kernel lists its symbols.
const kallsymsPath = "/proc/kallsyms"

// prefixSyscallSymbols is PrefixSyscallSymbols on a kallsyms listing with a
// given prefix.
func prefixSyscallSymbols(symbols []string, kallsyms io.Reader, prefix string) ([]string, bool, error) {
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

// PrefixSyscallSymbols gives syscall symbols the arch prefix that
// link.KprobeMulti needs and does not add: link.Kprobe retries "sys_openat"
// as "__x64_sys_openat" (on x86_64), but KprobeMulti (v0.17.3 to v0.22.0)
// passes symbols to the kernel verbatim, and on kernels whose syscall entries
// carry the prefix the attach fails. Each symbol "sys_xxx" that /proc/kallsyms
// does not list is replaced by the running arch's prefix + "sys_xxx" when
// kallsyms lists that one. Any other symbol is left alone, so a symbol missing
// under both names still fails under the name asked for.
//
// It returns the symbols to pass to link.KprobeMulti (in the same order) and
// whether any was rewritten. Needs a readable /proc/kallsyms (root, or
// kernel.kptr_restrict permitting); kprobe_multi links need Linux 5.18 with
// CONFIG_FPROBE.
func PrefixSyscallSymbols(symbols []string) ([]string, bool, error) {
	f, err := os.Open(kallsymsPath)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return prefixSyscallSymbols(symbols, f, syscallPrefix())
}
