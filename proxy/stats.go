package proxy

import (
	"sync/atomic"
	"time"
)

// Stats are the counters of a proxy or of one target. Every field is updated
// with atomic operations only, so that the request path never takes a lock
// for them.
type Stats struct {
	requests atomic.Uint64
	shed     atomic.Uint64
	failed   atomic.Uint64      // 502/504 made by the proxy
	codes    [500]atomic.Uint64 // index status-100
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	Queue Histogram // time waiting for a worker slot (queued path only)
	App   Histogram // time to the app's response headers
	Total Histogram // first byte in to last byte out
}

func (s *Stats) record(status int, shed, failed bool, in, out int64, queue, app, total time.Duration, queued bool) {
	s.requests.Add(1)
	if status >= 100 && status < 600 {
		s.codes[status-100].Add(1)
	}
	if shed {
		s.shed.Add(1)
	}
	if failed {
		s.failed.Add(1)
	}
	if in > 0 {
		s.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		s.bytesOut.Add(uint64(out))
	}
	if queued {
		s.Queue.Observe(queue)
	}
	if app >= 0 {
		s.App.Observe(app)
	}
	s.Total.Observe(total)
}

// Snapshot is a copy of the counters for reporting.
type Snapshot struct {
	Requests uint64         `json:"requests"`
	Shed     uint64         `json:"shed"`
	Failed   uint64         `json:"failed"`
	BytesIn  uint64         `json:"bytes_in"`
	BytesOut uint64         `json:"bytes_out"`
	Codes    map[int]uint64 `json:"codes"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{
		Requests: s.requests.Load(),
		Shed:     s.shed.Load(),
		Failed:   s.failed.Load(),
		BytesIn:  s.bytesIn.Load(),
		BytesOut: s.bytesOut.Load(),
		Codes:    map[int]uint64{},
	}
	for i := range s.codes {
		if n := s.codes[i].Load(); n > 0 {
			snap.Codes[i+100] = n
		}
	}
	return snap
}
