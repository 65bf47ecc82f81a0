// Package buildinfo reports which cilium/ebpf the binary was built against,
// read from the module build info so that a rebuild with
// `go get github.com/cilium/ebpf@vX` reports vX without code changes.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"probeconf/go-harness/internal/protocol"
)

// LibraryVersion is the version of github.com/cilium/ebpf linked into this
// binary ("(devel)" or a pseudo-version for local replaces, "unknown" when the
// binary carries no build info, as under some test runners).
func LibraryVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return libraryVersion(info)
}

func libraryVersion(info *debug.BuildInfo) string {
	for _, dep := range info.Deps {
		if dep.Path != protocol.Library {
			continue
		}
		if dep.Replace != nil {
			// A module version replaced by another version: that one. A
			// directory (a checkout) reports "(devel)" as its version: name
			// the directory instead.
			if dep.Replace.Version != "" && dep.Replace.Version != "(devel)" {
				return dep.Replace.Version
			}
			return dep.Version + " (replaced by " + dep.Replace.Path + ")"
		}
		return dep.Version
	}
	return "unknown"
}

// Version is the `version` subcommand's answer.
func Version() protocol.VersionInfo {
	return protocol.VersionInfo{
		Protocol: protocol.Version,
		Library:  protocol.Library,
		Version:  LibraryVersion(),
		Go:       runtime.Version(),
	}
}
