package histogram

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Percentiles from the histogram stay within one bucket's width (12.5%) of
// the exactly computed ones, on either side: they are interpolated within
// their bucket.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-100ms": func() time.Duration { return time.Duration(rng.Int64N(int64(100 * time.Millisecond))) },
		"exponential":     func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(5*time.Millisecond)) },
		"bimodal": func() time.Duration {
			return []time.Duration{time.Millisecond, time.Second}[rng.IntN(2)] + time.Duration(rng.IntN(1000))*time.Microsecond
		},
	}
	for name, next := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			var exact []time.Duration
			for i := 0; i < 20000; i++ {
				d := next()
				h.Observe(d)
				exact = append(exact, d.Truncate(time.Microsecond))
			}
			slices.Sort(exact)
			s := h.Snapshot()
			for _, q := range []float64{0.5, 0.9, 0.99, 1} {
				want := exact[max(0, int(q*float64(len(exact))+0.5)-1)]
				got := s.Quantile(q)
				if diff := float64(got-want) / float64(want); diff < -0.126 || diff > 0.126 {
					t.Errorf("q%.2f = %v, exact %v (%.1f%%)", q, got, want, diff*100)
				}
			}
			if s.Count != 20000 {
				t.Errorf("count %d", s.Count)
			}
		})
	}
}

// Values bunched in one bucket (every request ~3.3 s, as under a standing
// queue) give distinct, ordered percentiles up to the maximum, not the
// bucket's bound for all of them; evenly spread values give percentiles
// far closer than a bucket's width.
func TestHistogramQuantileInterpolates(t *testing.T) {
	var h Histogram
	for i := range 1000 { // 3.200 s .. 3.307 s, one bucket ([3.146 s, 3.408 s))
		h.Observe(3200*time.Millisecond + time.Duration(i)*107*time.Microsecond)
	}
	s := h.Snapshot()
	p50, p90, p99, maxSeen := s.Quantile(0.5), s.Quantile(0.9), s.Quantile(0.99), time.Duration(s.MaxMicros)*time.Microsecond
	if !(p50 < p90 && p90 < p99 && p99 <= maxSeen) {
		t.Errorf("p50 %v, p90 %v, p99 %v, max %v: want p50 < p90 < p99 <= max", p50, p90, p99, maxSeen)
	}
	if s.Quantile(1) != maxSeen || p50 < 3145*time.Millisecond {
		t.Errorf("q1 %v (want the max %v), p50 %v (want within the bucket)", s.Quantile(1), maxSeen, p50)
	}

	var u Histogram
	for i := range 100000 { // 0 .. 100 ms, evenly
		u.Observe(time.Duration(i) * time.Microsecond)
	}
	us := u.Snapshot()
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := time.Duration(q * float64(100*time.Millisecond))
		if got := us.Quantile(q); got < want*99/100 || got > want*101/100 {
			t.Errorf("uniform q%.2f = %v, want %v within 1%%", q, got, want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<20; us += 1 + us/64 {
		i := bucketOf(us)
		if i < prev {
			t.Fatalf("bucketOf not monotonic at %d", us)
		}
		if up := bucketUpper(i); us > up {
			t.Fatalf("%d µs in bucket %d whose upper bound is %d", us, i, up)
		}
		if i > 0 && us <= bucketUpper(i-1) {
			t.Fatalf("%d µs belongs in bucket %d, not %d", us, i-1, i)
		}
		prev = i
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b Histogram
	a.Observe(time.Millisecond)
	b.Observe(time.Second)
	s := a.Snapshot()
	s.Add(b.Snapshot())
	if s.Count != 2 || s.Quantile(1) != time.Second || s.Quantile(0.5) > 2*time.Millisecond {
		t.Fatalf("merged: count %d max %v p50 %v", s.Count, s.Quantile(1), s.Quantile(0.5))
	}
}

// A window (a later snapshot minus an earlier one) has the percentiles of
// exactly the values observed between the two, within a bucket; its max is
// the bound of its highest bucket even when the running max is far above.
func TestHistogramSubWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h Histogram
	for i := 0; i < 5000; i++ { // before the window: slow, up to 2 s
		h.Observe(time.Second + time.Duration(rng.Int64N(int64(time.Second))))
	}
	before := h.Snapshot()
	var exact []time.Duration
	for i := 0; i < 20000; i++ { // the window: exponential around 5 ms
		d := time.Duration(rng.ExpFloat64() * float64(5*time.Millisecond))
		h.Observe(d)
		exact = append(exact, d.Truncate(time.Microsecond))
	}
	slices.Sort(exact)
	w := h.Snapshot()
	w.Sub(before)
	if w.Count != 20000 {
		t.Fatalf("window count %d, want 20000", w.Count)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		want := exact[max(0, int(q*float64(len(exact))+0.5)-1)]
		got := w.Quantile(q)
		if diff := float64(got-want) / float64(want); diff < -0.126 || diff > 0.126 {
			t.Errorf("window q%.2f = %v, exact %v (%.1f%%)", q, got, want, diff*100)
		}
	}
	maxExact := exact[len(exact)-1]
	if got := time.Duration(w.MaxMicros) * time.Microsecond; got < maxExact || float64(got) > 1.126*float64(maxExact) {
		t.Errorf("window max %v, exact %v: want the bound of its bucket", got, maxExact)
	}

	// The same values in a histogram of their own give the same buckets.
	var only Histogram
	for _, d := range exact {
		only.Observe(d)
	}
	if o := only.Snapshot(); o.Buckets != w.Buckets || o.SumMicros != w.SumMicros {
		t.Error("window buckets or sum differ from a histogram of the window's values alone")
	}

	// Nothing new: an empty window; subtracting the wrong way saturates.
	empty := h.Snapshot()
	empty.Sub(h.Snapshot())
	if empty.Count != 0 || empty.MaxMicros != 0 || empty.Quantile(0.99) != 0 {
		t.Errorf("empty window: count %d max %d p99 %v", empty.Count, empty.MaxMicros, empty.Quantile(0.99))
	}
	wrong := before
	wrong.Sub(h.Snapshot())
	if wrong.Count != 0 || wrong.Quantile(0.5) != 0 {
		t.Errorf("earlier minus later: count %d p50 %v, want an empty window", wrong.Count, wrong.Quantile(0.5))
	}

	// When the window holds the running max, the max stays exact.
	var g Histogram
	g.Observe(time.Millisecond)
	early := g.Snapshot()
	g.Observe(1234567 * time.Microsecond)
	late := g.Snapshot()
	late.Sub(early)
	if late.MaxMicros != 1234567 {
		t.Errorf("window max %d µs, want the exact 1234567", late.MaxMicros)
	}
}
