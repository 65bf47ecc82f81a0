package harness

import "probeconf/go-harness/internal/protocol"

// withoutProgIDs returns the reports with ProgID cleared, after checking
// that every probe has one: ids differ from run to run, their presence not.
func withoutProgIDs(t interface {
	Helper()
	Errorf(string, ...any)
}, probes []protocol.AttachedProbe) []protocol.AttachedProbe {
	t.Helper()
	out := make([]protocol.AttachedProbe, len(probes))
	for i, p := range probes {
		if p.ProgID == 0 {
			t.Errorf("probe %s: attached line has no prog_id", p.Name)
		}
		p.ProgID = 0
		out[i] = p
	}
	return out
}
