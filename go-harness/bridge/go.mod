module probeconf/bridge

go 1.22

require (
	github.com/cilium/ebpf v0.17.3
	golang.org/x/sys v0.30.0
)
