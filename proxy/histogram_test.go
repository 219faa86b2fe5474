package proxy

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Percentiles from the histogram stay within one bucket (12.5%) of the
// exactly computed ones.
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
				if diff := float64(got-want) / float64(want); diff < -0.001 || diff > 0.126 {
					t.Errorf("q%.2f = %v, exact %v (%.1f%%)", q, got, want, diff*100)
				}
			}
			if s.Count != 20000 {
				t.Errorf("count %d", s.Count)
			}
		})
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
