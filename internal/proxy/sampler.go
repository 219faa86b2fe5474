package proxy

import (
	"sync"
	"time"
)

// sampler is the one goroutine that samples all of a proxy's windowSets, its
// own and its targets', every interval. It takes no lock of the request
// path: only its own and each windowSet's (which reports share).
type sampler struct {
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries []*sampled

	stop     chan struct{}
	done     chan struct{} // nil until start
	stopOnce sync.Once
}

// sampled is one windowSet to sample; t is its target, nil for the proxy's.
type sampled struct {
	w         *windowSet
	t         *Target
	drainedAt time.Time // first tick that saw t replaced with nothing in flight
}

func newSampler(interval time.Duration, now func() time.Time) *sampler {
	return &sampler{interval: interval, now: now, stop: make(chan struct{})}
}

func (s *sampler) add(w *windowSet, t *Target) {
	s.mu.Lock()
	s.entries = append(s.entries, &sampled{w: w, t: t})
	s.mu.Unlock()
}

// start runs the ticks in a goroutine until close.
func (s *sampler) start() {
	s.done = make(chan struct{})
	go s.run(s.done)
}

func (s *sampler) run(done chan struct{}) {
	defer close(done)
	tk := time.NewTicker(s.interval)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			s.tick(s.now())
		case <-s.stop:
			return
		}
	}
}

func (s *sampler) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.done != nil {
		<-s.done
	}
}

// tick samples every windowSet at now, one timestamp for all. A replaced
// target stays until its windows can no longer change: it has drained (no
// request can reach it any more) and 15 minutes and two intervals have
// passed since, so that the newest sample at or before any "15 minutes ago"
// from now on holds its final counts. Its Report stays right without
// sampling, and the sampler no longer keeps it from being collected.
func (s *sampler) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.entries[:0]
	for _, e := range s.entries {
		e.w.sampleAt(now)
		if e.t != nil && e.settled(now, s.interval) {
			continue
		}
		keep = append(keep, e)
	}
	clear(s.entries[len(keep):])
	s.entries = keep
}

func (e *sampled) settled(now time.Time, interval time.Duration) bool {
	select {
	case <-e.t.drained:
	default:
		return false
	}
	if e.drainedAt.IsZero() {
		e.drainedAt = now
		return false
	}
	return now.Sub(e.drainedAt) >= windowLong+2*interval
}

// len is the number of windowSets sampled (tests).
func (s *sampler) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
