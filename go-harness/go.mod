module probeconf/go-harness

go 1.25.0

require (
	github.com/cilium/ebpf v0.22.0
	probeconf/bridge v0.0.0
)

require golang.org/x/sys v0.43.0 // indirect

// The bridges (uprobe sessions, USDT, the session-kfunc pick) live in their
// own module, bridge/, which tool authors import too. A relative replace
// keeps the harness on this very copy (also in the copies src/harness_build.rs
// builds for other cilium/ebpf versions: they copy bridge/ along).
replace probeconf/bridge => ./bridge
