module example.com/tracer

go 1.25.0

require (
	github.com/cilium/ebpf v0.22.0
	gopkg.in/yaml.v3 v3.0.1
	probeconf/bridge v0.0.0
)

require golang.org/x/sys v0.43.0 // indirect

// probeconf's bridge package is not published: use it from a checkout.
replace probeconf/bridge => ../../go-harness/bridge
