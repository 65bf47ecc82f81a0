// Package drain reads what the recorders left in the shared maps: every
// record of the ring buffer and the per-CPU drop counter.
package drain

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"probeconf/go-harness/internal/classify"
)

// EventSize is sizeof(struct pc_event) in bpf/probeconf_abi.h (ABI version 1).
const EventSize = 104

// Result is the ring buffer's contents and the number of dropped events.
type Result struct {
	Events  [][]byte // raw struct pc_event records, in ring buffer order
	Dropped uint64
}

// Read empties the ring buffer events and sums the per-CPU counter dropped
// (key 0). It does not wait for more records: the runner drains after its
// workload has finished, and a record still being written by then is a bug of
// the case, not something to wait for.
func Read(events, dropped *ebpf.Map) (*Result, error) {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	defer rd.Close()

	// A deadline in the past makes Read return os.ErrDeadlineExceeded as soon
	// as no record is ready, instead of blocking in epoll.
	rd.SetDeadline(time.Now())
	res := &Result{Events: [][]byte{}}
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read ring buffer: %w", err)
		}
		if len(rec.RawSample) != EventSize {
			return nil, classify.Invalidf("ring buffer record %d is %d bytes, want %d (object built from another probeconf_abi.h?)",
				len(res.Events), len(rec.RawSample), EventSize)
		}
		// RawSample is reused by ReadInto, not by Read; copy anyway so the
		// result never aliases reader memory.
		res.Events = append(res.Events, append([]byte(nil), rec.RawSample...))
	}

	if res.Dropped, err = sumPerCPU(dropped); err != nil {
		return nil, fmt.Errorf("read dropped counter: %w", err)
	}
	return res, nil
}

func sumPerCPU(m *ebpf.Map) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
}
