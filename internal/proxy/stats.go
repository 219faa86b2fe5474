package proxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// refusalKind is why the proxy answered a request with a 503 of its own rather
// than with the app's answer (refusedNot: it did not).
type refusalKind uint8

const (
	refusedNot          refusalKind = iota
	refusedQueueTimeout             // waited the whole queue timeout
	refusedOverload                 // shed early by the adaptive queue
	refusedQueueFull                // the queue was full
	refusedLimits                   // the proxy's own limits: buffers, HTTP/2 streams
	refusedNoApp                    // no app runs: not shed, nothing could serve it
	numRefusals
)

// shed says whether the refusal counts as shed: a request turned away for
// want of capacity. A 503 because no app runs is not one.
func (r refusalKind) shed() bool { return r != refusedNot && r != refusedNoApp }

// ShedReasons count the 503s the proxy answered itself, by why. All but
// NoApp are shed requests.
type ShedReasons struct {
	QueueTimeout uint64 `json:"queue_timeout"` // waited the whole queue timeout
	Overload     uint64 `json:"overload"`      // shed at once by the adaptive queue (docs/queue.md)
	QueueFull    uint64 `json:"queue_full"`    // the queue held QueueSize waiters
	Limits       uint64 `json:"limits"`        // the proxy's buffers or an HTTP/2 connection's streams were full
	NoApp        uint64 `json:"no_app"`        // no app was running: not counted as shed
}

func reasonsOf(n *[numRefusals]uint64) ShedReasons {
	return ShedReasons{QueueTimeout: n[refusedQueueTimeout], Overload: n[refusedOverload],
		QueueFull: n[refusedQueueFull], Limits: n[refusedLimits], NoApp: n[refusedNoApp]}
}

// sub removes o, an earlier count, saturating at zero.
func (r *ShedReasons) sub(o ShedReasons) {
	r.QueueTimeout -= min(r.QueueTimeout, o.QueueTimeout)
	r.Overload -= min(r.Overload, o.Overload)
	r.QueueFull -= min(r.QueueFull, o.QueueFull)
	r.Limits -= min(r.Limits, o.Limits)
	r.NoApp -= min(r.NoApp, o.NoApp)
}

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
	shed     atomic.Uint64 // the refusals that are shed
	refused  [numRefusals]atomic.Uint64
	failed   atomic.Uint64      // 502/504 made by the proxy
	codes    [500]atomic.Uint64 // index status-100
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	Queue histogram.Histogram // time waiting for a worker slot (queued path only)
	App   histogram.Histogram // time to the app's response headers
	Total histogram.Histogram // first byte in to last byte out
}

func (s *Stats) record(status int, why refusalKind, failed bool, in, out int64, queue, app, total time.Duration, queued bool) {
	s.requests.Add(1)
	if status >= 100 && status < 600 && !(why.shed() && s.excludeShedCodes) {
		s.codes[status-100].Add(1)
	}
	if why != refusedNot {
		s.refused[why].Add(1)
		if why.shed() {
			s.shed.Add(1)
		}
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
	Requests uint64 `json:"requests"`
	// Shed are the requests turned away with a 503 for want of capacity;
	// ShedReasons says why, and counts the 503s for want of an app apart.
	Shed        uint64         `json:"shed"`
	ShedReasons ShedReasons    `json:"shed_reasons"`
	Failed      uint64         `json:"failed"`
	BytesIn     uint64         `json:"bytes_in"`
	BytesOut    uint64         `json:"bytes_out"`
	Codes       map[int]uint64 `json:"codes"`
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
	var n [numRefusals]uint64
	for i := range s.refused {
		n[i] = s.refused[i].Load()
	}
	snap.ShedReasons = reasonsOf(&n)
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
	s.ShedReasons.sub(o.ShedReasons)
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
