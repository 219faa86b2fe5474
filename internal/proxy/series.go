package proxy

import (
	"math"
	"time"
)

// Point is what happened over one sample interval: a point of a chart.
type Point struct {
	// At is the end of the interval.
	At time.Time `json:"t"`
	// Seconds is the interval's length (DefaultSampleInterval, or less for
	// the first one).
	Seconds  float64 `json:"seconds"`
	Requests uint64  `json:"requests"`
	Shed     uint64  `json:"shed"`
	Failed   uint64  `json:"failed"`
	// Codes counts the responses by exact status.
	Codes map[int]uint64 `json:"codes"`
	// Latency is the total time of the interval's requests.
	Latency Latency `json:"latency_ms"`
}

// Series returns the proxy-wide figures per sample interval over the last
// 15 minutes (as far back as the proxy has run), oldest first, from the
// samples the windows are computed from: a status page opened during an
// incident can draw what led up to it. With DisableStats it is empty.
func (p *Proxy) Series() []Point {
	if p.cfg.DisableStats {
		return []Point{}
	}
	return p.windows.series(windowLong)
}

// series turns the ring's consecutive samples (and the start) into points
// of the last span.
func (w *windowSet) series(span time.Duration) []Point {
	w.mu.Lock()
	from := w.now().Add(-span)
	samples := make([]*sample, 0, len(w.ring)+1)
	if len(w.ring) < w.ringSize() {
		samples = append(samples, &w.start) // not wrapped yet: the start is older than every sample
	}
	for i := range w.ring {
		samples = append(samples, &w.ring[(w.head+i)%len(w.ring)])
	}
	type pair struct {
		at, prevAt time.Time
		cur, prev  *statsSnapshot
	}
	var pairs []pair
	for i := 1; i < len(samples); i++ {
		if samples[i-1].at.Before(from) || !samples[i].at.After(samples[i-1].at) {
			continue
		}
		pairs = append(pairs, pair{samples[i].at, samples[i-1].at, samples[i].snapshot(), samples[i-1].snapshot()})
	}
	w.mu.Unlock()

	out := make([]Point, 0, len(pairs))
	for _, p := range pairs {
		p.cur.sub(p.prev)
		out = append(out, Point{
			At:       p.at,
			Seconds:  math.Round(p.at.Sub(p.prevAt).Seconds()*1000) / 1000,
			Requests: p.cur.Requests, Shed: p.cur.Shed, Failed: p.cur.Failed,
			Codes:   p.cur.Codes,
			Latency: latency(p.cur.Total),
		})
	}
	return out
}
