package compat

import (
	"encoding/json"
	"testing"
)

func TestRegistry(t *testing.T) {
	ids := map[string]bool{}
	for _, e := range Registry {
		if e.ID == "" || e.Library == "" || e.Versions == "" || e.Feature == "" || e.Workaround == "" {
			t.Errorf("entry %q has an empty field: %+v", e.ID, e)
		}
		if e.Status != Native && e.Status != Compat && e.Status != Missing {
			t.Errorf("entry %s: status %q", e.ID, e.Status)
		}
		if ids[e.ID] {
			t.Errorf("duplicate id %s", e.ID)
		}
		ids[e.ID] = true
	}
	for _, id := range []string{BridgeUprobeSession, BridgePIDSemantics, BridgeKprobeMultiSyscall,
		BridgeDataSection, BridgeWeakKfunc, BridgeUSDT, BridgeKprobeErrors, BridgeKprobeSessionRet, BridgeSessionKfuncVar,
		BridgeTracingCookie, BridgeTracingNotFound, BridgeFsessionLoad, BridgeFsessionLink, BridgeTracingMulti} {
		if !ids[id] {
			t.Errorf("bridge id %s has no registry entry", id)
		}
	}
	b, err := json.Marshal(Registry)
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]string
	if err := json.Unmarshal(b, &back); err != nil || len(back) != len(Registry) {
		t.Fatalf("registry JSON does not round-trip: %v", err)
	}
	for _, key := range []string{"id", "library", "versions", "feature", "status", "workaround"} {
		if _, ok := back[0][key]; !ok {
			t.Errorf("JSON key %q missing", key)
		}
	}
}

func TestCiliumPID(t *testing.T) {
	for _, tc := range []struct {
		scope string
		pid   uint32
		want  uint32
		err   bool
	}{
		{"all", 0, 0, false},
		{"", 0, 0, false},
		{"pid", 1234, 1234, false},
		{"pid", 0, 0, true}, // would silently mean "all" to cilium
		{"self", 0, 0, true},
	} {
		got, err := CiliumPID(tc.scope, tc.pid)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("CiliumPID(%q, %d) = %d, %v", tc.scope, tc.pid, got, err)
		}
	}
}
