package histogram

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a lock-free log-linear latency histogram: each power of two
// of microseconds is split into 8 linear sub-buckets, so that a bucket's
// width is at most 1/8 of its value (percentiles within 12.5%). Recording is
// two atomic adds; histograms merge by adding buckets.
type Histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64 // microseconds
	max     atomic.Uint64 // microseconds
}

const (
	histSub     = 8 // sub-buckets per power of two (3 bits)
	histSubBits = 3
	histPowers  = 38 // up to 2^38 µs ≈ 3 days
	histBuckets = histPowers * histSub
)

// bucketOf maps a value in microseconds to its bucket.
func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	p := bits.Len64(us) - 1 // us in [2^p, 2^(p+1))
	sub := (us >> (p - histSubBits)) & (histSub - 1)
	i := (p-histSubBits+1)*histSub + int(sub)
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketUpper is the largest value (µs) that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	p := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	lo := (uint64(1) << p) | sub<<(p-histSubBits)
	return lo + (uint64(1) << (p - histSubBits)) - 1
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.buckets[bucketOf(us)].Add(1)
	h.count.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Totals loads the count, the sum and the maximum (µs), in the order
// Snapshot loads them; with Bucket, a caller can copy a histogram sparsely
// without allocating a Snapshot (the proxy's windows do).
func (h *Histogram) Totals() (count, sumMicros, maxMicros uint64) {
	return h.count.Load(), h.sum.Load(), h.max.Load()
}

// NumBuckets is the number of buckets of a Histogram and a Snapshot.
const NumBuckets = histBuckets

// Bucket loads the count of bucket i (0 ≤ i < NumBuckets).
func (h *Histogram) Bucket(i int) uint64 { return h.buckets[i].Load() }

// Snapshot copies the histogram so that percentiles are computed on a
// consistent-enough view without stopping writers.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{Count: h.count.Load(), SumMicros: h.sum.Load(), MaxMicros: h.max.Load()}
	for i := range h.buckets {
		s.Buckets[i] = h.buckets[i].Load()
	}
	return s
}

// Snapshot is a point-in-time copy of a Histogram. Snapshots
// subtract (for windows: now minus a minute ago) and add (to merge targets).
type Snapshot struct {
	Buckets   [histBuckets]uint64
	Count     uint64
	SumMicros uint64
	MaxMicros uint64
}

// Quantile returns the q-quantile (0..1), interpolated linearly within the
// bucket holding it, as Prometheus' histogram_quantile does: a bucket's
// values are taken to be spread evenly over it. The top bucket ends at the
// maximum seen, so that values bunched in one bucket still give p50 < p90 <
// p99 ≤ max rather than one number for all, and no quantile exceeds the
// maximum. The error is within the bucket's width (12.5% of the value).
func (s *Snapshot) Quantile(q float64) time.Duration {
	var total uint64
	for _, c := range s.Buckets {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := min(max(q, 0), 1) * float64(total)
	var seen uint64
	for i, c := range s.Buckets {
		if c == 0 {
			continue
		}
		if float64(seen+c) >= rank {
			// The bucket holds the values [lo, hi) in whole microseconds.
			lo, hi := float64(bucketLower(i)), float64(bucketUpper(i)+1)
			if m := float64(s.MaxMicros); s.MaxMicros > 0 && m < hi {
				hi = max(lo, m)
			}
			v := lo + (hi-lo)*(rank-float64(seen))/float64(c)
			return time.Duration(v * float64(time.Microsecond))
		}
		seen += c
	}
	return time.Duration(s.MaxMicros) * time.Microsecond
}

// bucketLower is the smallest value (µs) that falls into bucket i.
func bucketLower(i int) uint64 {
	if i == 0 {
		return 0
	}
	return bucketUpper(i-1) + 1
}

// Add merges o into s.
func (s *Snapshot) Add(o *Snapshot) {
	for i := range s.Buckets {
		s.Buckets[i] += o.Buckets[i]
	}
	s.Count += o.Count
	s.SumMicros += o.SumMicros
	s.MaxMicros = max(s.MaxMicros, o.MaxMicros)
}

// Sub removes o, an earlier snapshot of the same histogram, from s, leaving
// what was observed between the two: a window. Counts saturate at zero, so a
// snapshot subtracted in the wrong order gives an empty window, not garbage.
//
// A histogram keeps a running maximum, not one per window, so the window's
// MaxMicros is the upper bound of the highest non-empty bucket left in s
// (within 12.5% above the true maximum), capped by s's own maximum, which no
// value in the window exceeds. An empty window has MaxMicros 0.
func (s *Snapshot) Sub(o *Snapshot) {
	top := -1
	for i := range s.Buckets {
		s.Buckets[i] = subSat(s.Buckets[i], o.Buckets[i])
		if s.Buckets[i] > 0 {
			top = i
		}
	}
	s.Count = subSat(s.Count, o.Count)
	s.SumMicros = subSat(s.SumMicros, o.SumMicros)
	if top < 0 {
		s.MaxMicros = 0
		return
	}
	// s's maximum is loaded before its buckets: one observed in between can
	// sit in a bucket above it. Then only the bucket's bound is known.
	if top == 0 || s.MaxMicros <= bucketUpper(top-1) {
		s.MaxMicros = bucketUpper(top)
	} else {
		s.MaxMicros = min(s.MaxMicros, bucketUpper(top))
	}
}

func subSat(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// BucketUpperMicros is the largest value (µs) that bucket i of a
// Snapshot holds, so that other formats (Prometheus' buckets) can be
// derived from it.
func BucketUpperMicros(i int) uint64 { return bucketUpper(i) }
