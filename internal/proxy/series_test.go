package proxy

import (
	"testing"
	"time"
)

// The series has one point per sample interval over the last 15 minutes,
// oldest first, each with what happened in its interval alone: a page
// opened now can draw the traffic of the last 15 minutes.
func TestSeries(t *testing.T) {
	clk := newFakeClock()
	p, err := newSampled(Config{}, sampling{interval: 5 * time.Second, now: clk.now, manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tick := func() { clk.add(5 * time.Second); p.sampler.tick(clk.now()) }
	if s := p.Series(); len(s) != 0 {
		t.Fatalf("series before any sample: %d points", len(s))
	}
	// 20 minutes: k requests OK in the k-th interval (mod 7), and a shed
	// every interval of the last minute.
	for k := range 240 {
		for range k % 7 {
			recordOK(&p.stats)
		}
		if k >= 228 {
			recordShed(&p.stats)
		}
		tick()
	}
	s := p.Series()
	if len(s) != 180 {
		t.Fatalf("%d points, want 180 (15 minutes of 5 s)", len(s))
	}
	for i, pt := range s {
		k := 60 + i
		want := uint64(k % 7)
		shed := uint64(0)
		if k >= 228 {
			shed = 1
		}
		if pt.Requests != want+shed || pt.Shed != shed || pt.Codes[200] != want || pt.Seconds != 5 || pt.Latency.Count != want+shed {
			t.Fatalf("point %d: %+v, want %d OK and %d shed over 5 s", i, pt, want, shed)
		}
		if i > 0 && !pt.At.After(s[i-1].At) {
			t.Fatalf("point %d at %v is not after %v", i, pt.At, s[i-1].At)
		}
	}
	if last := s[len(s)-1]; !last.At.Equal(clk.now()) || last.Codes[503] != 1 {
		t.Fatalf("last point %+v at %v, want the latest sample with its shed", last, clk.now())
	}

	// A young proxy: the first point starts when the proxy was made.
	young, _ := newSampled(Config{}, sampling{interval: 5 * time.Second, now: clk.now, manual: true})
	defer young.Close()
	recordOK(&young.stats)
	clk.add(2 * time.Second)
	young.sampler.tick(clk.now())
	if ys := young.Series(); len(ys) != 1 || ys[0].Requests != 1 || ys[0].Seconds != 2 {
		t.Fatalf("young proxy series %+v, want one 2 s point with 1 request", ys)
	}
}
