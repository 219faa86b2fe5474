package proxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// Stats are the counters of a proxy or of one target. Every field is updated
// with atomic operations only, so that the request path never takes a lock
// for them. They are cumulative; a windowSet turns them into figures over the
// last minute and the last 15 minutes.
//
// A target's Stats also count the requests shed (503) while it was the
// active one: they waited for its workers. They count in its requests and
// shed, not in its codes: a target's codes are the container's own answers
// (and the proxy's 502/504 for it), so that an alert on the container's 5xx
// does not fire on load shedding. The proxy's Stats count every answer in
// codes, sheds included.
type Stats struct {
	// excludeShedCodes leaves the shed 503s out of codes (a target's Stats).
	excludeShedCodes bool

	requests atomic.Uint64
	shed     atomic.Uint64
	failed   atomic.Uint64      // 502/504 made by the proxy
	codes    [500]atomic.Uint64 // index status-100
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	Queue histogram.Histogram // time waiting for a worker slot (queued path only)
	App   histogram.Histogram // time to the app's response headers
	Total histogram.Histogram // first byte in to last byte out
}

func (s *Stats) record(status int, shed, failed bool, in, out int64, queue, app, total time.Duration, queued bool) {
	s.requests.Add(1)
	if status >= 100 && status < 600 && !(shed && s.excludeShedCodes) {
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
	// An upgraded connection (WebSocket) lasts as long as it is open: its
	// duration would swamp the request latencies.
	if status != http.StatusSwitchingProtocols {
		s.Total.Observe(total)
	}
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

// statsSnapshot is a copy of all of a Stats: the counters and the three
// latency histograms. Snapshots of one Stats subtract (a window is "now"
// minus "then") and add (to merge targets).
type statsSnapshot struct {
	Snapshot
	Queue *histogram.Snapshot `json:"-"`
	App   *histogram.Snapshot `json:"-"`
	Total *histogram.Snapshot `json:"-"`
}

// snapshotAll copies the counters and the histograms. It costs about 1,400
// atomic loads and 8 KiB: it is for reports, not for the request path.
func (s *Stats) snapshotAll() *statsSnapshot {
	return &statsSnapshot{
		Snapshot: s.Snapshot(),
		Queue:    s.Queue.Snapshot(),
		App:      s.App.Snapshot(),
		Total:    s.Total.Snapshot(),
	}
}

// sub removes o, an earlier snapshot of the same Stats, from s: what is left
// happened between the two. Counters saturate at zero; see
// histogram.Snapshot.Sub for the latencies.
func (s *statsSnapshot) sub(o *statsSnapshot) {
	s.Requests -= min(s.Requests, o.Requests)
	s.Shed -= min(s.Shed, o.Shed)
	s.Failed -= min(s.Failed, o.Failed)
	s.BytesIn -= min(s.BytesIn, o.BytesIn)
	s.BytesOut -= min(s.BytesOut, o.BytesOut)
	for code, n := range o.Codes {
		if left := s.Codes[code] - min(s.Codes[code], n); left > 0 {
			s.Codes[code] = left
		} else {
			delete(s.Codes, code)
		}
	}
	s.Queue.Sub(o.Queue)
	s.App.Sub(o.App)
	s.Total.Sub(o.Total)
}
