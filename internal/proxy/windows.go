package proxy

import (
	"math"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// The windows of a WindowReport besides "all".
const (
	windowShort = time.Minute
	windowLong  = 15 * time.Minute
)

// A windowSet turns a cumulative Stats into figures over the last minute, the
// last 15 minutes and since it was made. It keeps a ring of samples of the
// Stats, one per interval, covering 15 minutes; a window is the Stats now
// minus the newest sample at least the window's length old, so it spans at
// most one interval more than its length. A window longer than the time since
// the windowSet was made starts at its making: it covers what there is.
//
// Nothing here runs on the request path: the Stats are recorded with atomic
// adds, sampled by one goroutine (the Proxy's) and subtracted when a report
// is asked for.
type windowSet struct {
	stats    *Stats
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	start sample   // taken when made: where "all" and young windows begin
	ring  []sample // chronological from ring[head] once full; grows until then
	head  int
}

// newWindows makes the windows of s, sampled every interval (0:
// DefaultSampleInterval; the ring holds 15 minutes of samples: 15m/interval
// of them, each 1-3 KiB) by the proxy's sampler, on the clock now. Make it
// together with s: "all" counts from the moment it was made.
func newWindows(s *Stats, interval time.Duration, now func() time.Time) *windowSet {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	w := &windowSet{stats: s, interval: interval, now: now}
	w.start.capture(s, now())
	return w
}

// ringSize holds samples back to 15 minutes and one interval before the
// latest, plus one spare: a report between two samples still finds one at or
// before "15 minutes ago".
func (w *windowSet) ringSize() int { return int(windowLong/w.interval) + 3 }

// Sample records the Stats now. Proxy's sampler calls it every interval.
func (w *windowSet) sample() { w.sampleAt(w.now()) }

func (w *windowSet) sampleAt(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := w.ringSize(); len(w.ring) < n {
		w.ring = append(w.ring, sample{})
		w.ring[len(w.ring)-1].capture(w.stats, now)
		return
	}
	w.ring[w.head].capture(w.stats, now) // the oldest: its slices are reused
	w.head = (w.head + 1) % len(w.ring)
}

// before returns the newest sample taken at or before t, or the start.
// Called with w.mu held.
func (w *windowSet) before(t time.Time) *sample {
	for i := len(w.ring) - 1; i >= 0; i-- {
		s := &w.ring[(w.head+i)%len(w.ring)]
		if !s.at.After(t) {
			return s
		}
	}
	return &w.start
}

// WindowReport is a Stats over three windows.
type WindowReport struct {
	Last1m  Window `json:"1m"`
	Last15m Window `json:"15m"`
	All     Window `json:"all"` // since the proxy (or the target) was made
}

// Window is what happened over one window.
type Window struct {
	// Seconds is the span the window covers: its length (up to one sample
	// interval more), or less while the proxy is younger than that.
	Seconds  float64 `json:"seconds"`
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"` // requests per second over Seconds
	Shed     uint64  `json:"shed"`
	// ShedRate is Shed / Requests, 0 without requests.
	ShedRate float64 `json:"shed_rate"`
	// ShedReasons says why they were shed, and how many 503s there were
	// because no app ran (not counted in Shed).
	ShedReasons ShedReasons `json:"shed_reasons"`
	// Failed are the 502 and 504 the proxy made (the app unreachable or late).
	Failed   uint64 `json:"failed"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Codes counts the responses by exact status; 499 is a client that left.
	Codes   map[int]uint64 `json:"codes"`
	Latency Latencies      `json:"latency_ms"`
}

// Latencies are the three phases of a request, in milliseconds.
type Latencies struct {
	Queue Latency `json:"queue"` // waiting for a worker slot (queued path only)
	App   Latency `json:"app"`   // until the app's response headers
	Total Latency `json:"total"` // first byte in to last byte out
}

// Latency summarizes a histogram: percentiles are interpolated within their
// bucket (within 12.5%). Max is exact for "all"; over a shorter window it is
// the upper bound of the highest bucket used in the window (within 12.5%
// above the true maximum), as a histogram keeps no maximum per window.
type Latency struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Count uint64  `json:"count"`
}

// Report computes the three windows now.
func (w *windowSet) report() WindowReport {
	w.mu.Lock()
	now := w.now()
	// Taken under the lock, the live snapshot is newer than every sample.
	live := w.stats.snapshotAll()
	startAt, start := w.start.at, w.start.snapshot()
	b1, b15 := w.before(now.Add(-windowShort)), w.before(now.Add(-windowLong))
	at1, s1 := b1.at, b1.snapshot()
	at15, s15 := b15.at, b15.snapshot()
	w.mu.Unlock()

	d1 := live.clone()
	d1.sub(s1)
	d15 := live.clone()
	d15.sub(s15)
	live.sub(start)
	return WindowReport{
		Last1m:  window(d1, now.Sub(at1)),
		Last15m: window(d15, now.Sub(at15)),
		All:     window(live, now.Sub(startAt)),
	}
}

func window(d *statsSnapshot, span time.Duration) Window {
	w := Window{
		Seconds:     math.Round(max(span, 0).Seconds()*1000) / 1000,
		Requests:    d.Requests,
		Shed:        d.Shed,
		ShedReasons: d.ShedReasons,
		Failed:      d.Failed,
		BytesIn:     d.BytesIn,
		BytesOut:    d.BytesOut,
		Codes:       d.Codes,
		Latency:     Latencies{Queue: latency(d.Queue), App: latency(d.App), Total: latency(d.Total)},
	}
	if w.Codes == nil {
		w.Codes = map[int]uint64{}
	}
	if w.Seconds > 0 {
		w.RPS = math.Round(float64(d.Requests)/w.Seconds*1000) / 1000
	}
	if d.Requests > 0 {
		w.ShedRate = float64(d.Shed) / float64(d.Requests)
	}
	return w
}

func latency(h *histogram.Snapshot) Latency {
	return Latency{
		P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		Max:   float64(h.MaxMicros) / 1000,
		Count: h.Count,
	}
}

// clone is a deep copy.
func (s *statsSnapshot) clone() *statsSnapshot {
	c := &statsSnapshot{Snapshot: s.Snapshot}
	c.Codes = make(map[int]uint64, len(s.Codes))
	for k, v := range s.Codes {
		c.Codes[k] = v
	}
	q, a, t := *s.Queue, *s.App, *s.Total
	c.Queue, c.App, c.Total = &q, &a, &t
	return c
}

// sample is a compact statsSnapshot for the ring: only the status codes seen
// and the span of non-empty buckets: typically 1-3 KiB where a full
// statsSnapshot takes 8, for 183 samples per target. Its slices are reused
// when the ring wraps.
type sample struct {
	at                                        time.Time
	requests, shed, failed, bytesIn, bytesOut uint64
	refused                                   [numRefusals]uint64
	codes                                     []codeCount
	hist                                      [3]histSpan // queue, app, total
}

type codeCount struct {
	code int
	n    uint64
}

// histSpan is a histogram's buckets lo..lo+len(buckets)-1; the others are 0.
type histSpan struct {
	lo              int
	buckets         []uint64
	count, sum, max uint64
}

func (sp *sample) capture(s *Stats, at time.Time) {
	sp.at = at
	sp.requests = s.requests.Load()
	sp.shed = s.shed.Load()
	sp.failed = s.failed.Load()
	sp.bytesIn = s.bytesIn.Load()
	sp.bytesOut = s.bytesOut.Load()
	for i := range s.refused {
		sp.refused[i] = s.refused[i].Load()
	}
	sp.codes = sp.codes[:0]
	for i := range s.codes {
		if n := s.codes[i].Load(); n > 0 {
			sp.codes = append(sp.codes, codeCount{i + 100, n})
		}
	}
	sp.hist[0].capture(&s.Queue)
	sp.hist[1].capture(&s.App)
	sp.hist[2].capture(&s.Total)
}

func (hs *histSpan) capture(h *histogram.Histogram) {
	hs.count, hs.sum, hs.max = h.Totals()
	hs.lo, hs.buckets = 0, hs.buckets[:0]
	last := -1
	for i := range histogram.NumBuckets {
		n := h.Bucket(i)
		if n == 0 {
			if len(hs.buckets) > 0 {
				hs.buckets = append(hs.buckets, 0)
			}
			continue
		}
		if len(hs.buckets) == 0 {
			hs.lo = i
		}
		hs.buckets = append(hs.buckets, n)
		last = len(hs.buckets)
	}
	hs.buckets = hs.buckets[:max(last, 0)]
}

func (sp *sample) snapshot() *statsSnapshot {
	s := &statsSnapshot{Snapshot: Snapshot{
		Requests: sp.requests, Shed: sp.shed, Failed: sp.failed,
		BytesIn: sp.bytesIn, BytesOut: sp.bytesOut,
		ShedReasons: reasonsOf(&sp.refused),
		Codes:       make(map[int]uint64, len(sp.codes)),
	}}
	for _, c := range sp.codes {
		s.Codes[c.code] = c.n
	}
	s.Queue, s.App, s.Total = sp.hist[0].snapshot(), sp.hist[1].snapshot(), sp.hist[2].snapshot()
	return s
}

func (hs *histSpan) snapshot() *histogram.Snapshot {
	s := &histogram.Snapshot{Count: hs.count, SumMicros: hs.sum, MaxMicros: hs.max}
	copy(s.Buckets[hs.lo:], hs.buckets)
	return s
}
