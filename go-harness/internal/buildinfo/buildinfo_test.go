package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestLibraryVersion(t *testing.T) {
	info := &debug.BuildInfo{Deps: []*debug.Module{
		{Path: "golang.org/x/sys", Version: "v0.43.0"},
		{Path: "github.com/cilium/ebpf", Version: "v0.22.0"},
	}}
	if got := libraryVersion(info); got != "v0.22.0" {
		t.Errorf("got %q", got)
	}
	info.Deps[1].Replace = &debug.Module{Path: "github.com/cilium/ebpf", Version: "v0.20.0"}
	if got := libraryVersion(info); got != "v0.20.0" {
		t.Errorf("replaced: got %q", got)
	}
	info.Deps[1].Replace = &debug.Module{Path: "../ebpf"}
	if got := libraryVersion(info); got != "v0.22.0 (replaced by ../ebpf)" {
		t.Errorf("local replace: got %q", got)
	}
	if got := libraryVersion(&debug.BuildInfo{}); got != "unknown" {
		t.Errorf("no deps: got %q", got)
	}
}
