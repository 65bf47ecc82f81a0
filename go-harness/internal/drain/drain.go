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

// Result is the ring buffer's contents and the number of dropped events.
type Result struct {
	Events  [][]byte // raw struct pc_event records, in ring buffer order
	Dropped uint64
}

// Read empties the ring buffer events and sums the per-CPU counter dropped
// (key 0). Every record must be eventSize bytes: sizeof(struct pc_event) as
// the loaded object's BTF says (loader.EventSize), not a constant, so a new
// event ABI needs no harness change. It does not wait for more records: the
// runner drains after its workload has finished, and a record still being
// written by then is a bug of the case, not something to wait for.
func Read(events, dropped *ebpf.Map, eventSize int) (*Result, error) {
	if eventSize <= 0 {
		return nil, fmt.Errorf("event size %d: the object's struct pc_event was not read", eventSize)
	}
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
		if len(rec.RawSample) != eventSize {
			return nil, classify.Invalidf("ring buffer record %d is %d bytes, but the object's struct pc_event is %d "+
				"(a program that does not emit struct pc_event?)", len(res.Events), len(rec.RawSample), eventSize)
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
