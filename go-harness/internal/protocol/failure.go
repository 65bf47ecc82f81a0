package protocol

import (
	"errors"
	"fmt"

	"probeconf/go-harness/internal/classify"
)

// Failure is an error that knows where it happened. Every step of a session
// returns one, so the error line can name the phase and the probe.
type Failure struct {
	Phase Phase
	Probe string // probe name, "" when not about one probe
	Kind  Kind   // probe kind, for the classifier's hint
	Err   error
}

func (f *Failure) Error() string {
	if f.Probe != "" {
		return fmt.Sprintf("%s: probe %s: %v", f.Phase, f.Probe, f.Err)
	}
	return fmt.Sprintf("%s: %v", f.Phase, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err as a Failure of phase for probe p (p may be nil).
func Fail(phase Phase, p *Probe, err error) *Failure {
	f := &Failure{Phase: phase, Err: err}
	if p != nil {
		f.Probe, f.Kind = p.Name, p.Kind
	}
	return f
}

// ErrorLineFor builds the error line for err. An error that is not a Failure
// is reported in phase fallback.
func ErrorLineFor(err error, fallback Phase) ErrorLine {
	var f *Failure
	if !errors.As(err, &f) {
		f = &Failure{Phase: fallback, Err: err}
	}
	res := classify.Classify(f.Err, classify.Where{Phase: string(f.Phase), Kind: string(f.Kind)})
	return ErrorLine{
		Type:   "error",
		Phase:  f.Phase,
		Class:  string(res.Class),
		Probe:  f.Probe,
		Errno:  res.Errno,
		Detail: res.Detail,
	}
}
