package compat

import "fmt"

// CiliumPID maps a protocol pid scope to cilium's convention, in which PID 0
// means every process (libbpf's 0 means the calling process, and -1 all).
// It is the only place that knows this difference.
func CiliumPID(scope string, pid uint32) (uint32, error) {
	switch scope {
	case "", "all":
		return 0, nil
	case "pid":
		if pid == 0 {
			return 0, fmt.Errorf(`pid scope "pid" with pid 0: cilium would read it as "all processes"`)
		}
		return pid, nil
	default:
		return 0, fmt.Errorf("unknown pid scope %q", scope)
	}
}
