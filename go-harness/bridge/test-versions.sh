#!/usr/bin/env bash
# The bridge module's tests against every cilium/ebpf version it supports.
#
#   ./test-versions.sh [VERSION...]    default: v0.17.3 v0.20.0 v0.21.0 v0.22.0
#
# Each version gets a private copy of this module in which
# `go get github.com/cilium/ebpf@VERSION && go mod tidy` has been run (the
# checkout's go.mod is never touched), then `go vet ./...` and
# `go test -count=1 ./...`. The BPF tests need root and PROBECONF_BPF_OBJECT
# (DIR/recorders.bpf.o from `probeconf artifacts DIR`); without them they skip,
# as in a plain `go test`. Go modules come through the configured GOPROXY.
# Exits non-zero if any version fails, after trying them all.
set -uo pipefail
cd "$(dirname "$0")"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(v0.17.3 v0.20.0 v0.21.0 v0.22.0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for v in "${versions[@]}"; do
  dir="$work/$v"
  mkdir -p "$dir"
  cp -r . "$dir/"
  start=$(date +%s)
  if (cd "$dir" && go get "github.com/cilium/ebpf@$v" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 &&
      [ "$(go list -m -f '{{.Version}}' github.com/cilium/ebpf)" = "$v" ] &&
      go vet ./... && go test -count=1 ./...); then
    echo "cilium/ebpf $v: ok ($(( $(date +%s) - start ))s)"
  else
    echo "cilium/ebpf $v: FAILED ($(( $(date +%s) - start ))s)"
    failed+=("$v")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
