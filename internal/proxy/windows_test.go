package proxy

import (
	"encoding/json"
	"maps"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Traffic the window tests record straight into a Stats.
func recordOK(s *Stats) {
	s.record(200, refusedNot, false, 100, 1000, time.Millisecond, 10*time.Millisecond, 12*time.Millisecond, true)
}
func recordShed(s *Stats) {
	s.record(503, refusedQueueTimeout, false, 100, 60, 2*time.Second, -1, 2*time.Second, true)
}
func recordBad(s *Stats) { s.record(502, refusedNot, true, 100, 40, 0, -1, 3*time.Millisecond, true) }

type wantWindow struct {
	seconds                float64
	requests, shed, failed uint64
	codes                  map[int]uint64
	queueCount, appCount   uint64
	totalMaxLo, totalMaxHi float64 // ms
}

func checkWindow(t *testing.T, name string, got Window, want wantWindow) {
	t.Helper()
	if got.Seconds != want.seconds || got.Requests != want.requests || got.Shed != want.shed || got.Failed != want.failed {
		t.Errorf("%s: seconds %v requests %d shed %d failed %d, want %v %d %d %d", name,
			got.Seconds, got.Requests, got.Shed, got.Failed, want.seconds, want.requests, want.shed, want.failed)
	}
	if !maps.Equal(got.Codes, want.codes) {
		t.Errorf("%s: codes %v, want %v", name, got.Codes, want.codes)
	}
	if got.ShedReasons != (ShedReasons{QueueTimeout: want.shed}) { // recordShed's reason
		t.Errorf("%s: shed reasons %+v, want %d queue timeouts", name, got.ShedReasons, want.shed)
	}
	if want.seconds > 0 {
		if rps := float64(want.requests) / want.seconds; got.RPS < rps-0.001 || got.RPS > rps+0.001 {
			t.Errorf("%s: rps %v, want %.3f", name, got.RPS, rps)
		}
	}
	if want.requests > 0 {
		if rate := float64(want.shed) / float64(want.requests); got.ShedRate != rate {
			t.Errorf("%s: shed rate %v, want %v", name, got.ShedRate, rate)
		}
	}
	if got.Latency.Queue.Count != want.queueCount || got.Latency.App.Count != want.appCount || got.Latency.Total.Count != want.requests {
		t.Errorf("%s: latency counts queue %d app %d total %d, want %d %d %d", name, got.Latency.Queue.Count,
			got.Latency.App.Count, got.Latency.Total.Count, want.queueCount, want.appCount, want.requests)
	}
	if m := got.Latency.Total.Max; m < want.totalMaxLo || m > want.totalMaxHi {
		t.Errorf("%s: total max %v ms, want %v..%v", name, m, want.totalMaxLo, want.totalMaxHi)
	}
}

// 16 simulated minutes of 5 s ticks: the first minute sheds everything (2 s
// each), the next 15 serve 5 × 200 per tick, and the last adds a 502 per
// tick. The 15-minute window excludes the first minute, the 1-minute window
// holds only the last one, "all" holds everything.
func TestWindowsSixteenMinutes(t *testing.T) {
	clk := newFakeClock()
	var s Stats
	w := newWindows(&s, 5*time.Second, clk.now)
	for k := 1; k <= 16*12; k++ { // tick k closes the 5 s ending at k×5 s
		switch {
		case k <= 12:
			for range 10 {
				recordShed(&s)
			}
		default:
			for range 5 {
				recordOK(&s)
			}
			if k > 15*12 {
				recordBad(&s)
			}
		}
		clk.add(5 * time.Second)
		w.sample()
	}
	if n := len(w.ring); n != w.ringSize() || n != 183 {
		t.Errorf("ring holds %d samples, want 183 (15 min of 5 s and spares)", n)
	}
	ok12 := [2]float64{12, 12 * 1.126} // 12 ms in a bucket at most 12.5% wide
	r := w.report()
	checkWindow(t, "1m", r.Last1m, wantWindow{seconds: 60, requests: 72, failed: 12,
		codes: map[int]uint64{200: 60, 502: 12}, queueCount: 72, appCount: 60, totalMaxLo: ok12[0], totalMaxHi: ok12[1]})
	checkWindow(t, "15m", r.Last15m, wantWindow{seconds: 900, requests: 912, failed: 12,
		codes: map[int]uint64{200: 900, 502: 12}, queueCount: 912, appCount: 900, totalMaxLo: ok12[0], totalMaxHi: ok12[1]})
	checkWindow(t, "all", r.All, wantWindow{seconds: 960, requests: 1032, shed: 120, failed: 12,
		codes: map[int]uint64{200: 900, 502: 12, 503: 120}, queueCount: 1032, appCount: 900, totalMaxLo: 2000, totalMaxHi: 2000})
	// Percentiles are interpolated within their bucket: within its width
	// (12.5%) either side.
	if p := r.Last15m.Latency.App; p.P50 < 8.75 || p.P50 > 11.25 || p.P99 < 8.75 || p.P99 > 11.25 {
		t.Errorf("15m app latency %+v, want p50 and p99 ≈ 10 ms", p)
	}
	if p := r.All.Latency.Queue; p.P90 < 1750 || p.P90 > 2250 {
		t.Errorf("all queue p90 %v ms, want ≈ 2000 (the shed minute is 12%% of requests)", p.P90)
	}

	// Between ticks: the windows reach back to the newest sample at least
	// their length old, and count what happened since the last tick.
	clk.add(2 * time.Second)
	recordOK(&s)
	r = w.report()
	checkWindow(t, "1m+2s", r.Last1m, wantWindow{seconds: 62, requests: 73, failed: 12,
		codes: map[int]uint64{200: 61, 502: 12}, queueCount: 73, appCount: 61, totalMaxLo: ok12[0], totalMaxHi: ok12[1]})
	if r.Last15m.Seconds != 902 || r.All.Seconds != 962 || r.All.Requests != 1033 {
		t.Errorf("15m %v s, all %v s and %d requests; want 902, 962, 1033", r.Last15m.Seconds, r.All.Seconds, r.All.Requests)
	}

	// Quiet for 16 minutes more: both windows empty, "all" unchanged.
	for range 16 * 12 {
		clk.add(5 * time.Second)
		w.sample()
	}
	r = w.report()
	for name, win := range map[string]Window{"1m": r.Last1m, "15m": r.Last15m} {
		if win.Requests != 0 || len(win.Codes) != 0 || win.RPS != 0 || win.Latency.Total.Max != 0 || win.Latency.Total.P99 != 0 {
			t.Errorf("%s after 16 quiet minutes: %+v, want empty", name, win)
		}
	}
	if r.All.Requests != 1033 {
		t.Errorf("all: %d requests, want 1033", r.All.Requests)
	}
}

// A window longer than the time since start covers what there is.
func TestWindowsYoung(t *testing.T) {
	clk := newFakeClock()
	var s Stats
	w := newWindows(&s, 5*time.Second, clk.now)
	if r := w.report(); r.All.Requests != 0 || r.All.RPS != 0 || r.All.ShedRate != 0 || r.All.Codes == nil {
		t.Fatalf("new windows: %+v", r.All)
	}
	for range 6 {
		recordOK(&s)
		recordShed(&s)
		clk.add(5 * time.Second)
		w.sample()
	}
	clk.add(3 * time.Second)
	r := w.report()
	want := wantWindow{seconds: 33, requests: 12, shed: 6, codes: map[int]uint64{200: 6, 503: 6},
		queueCount: 12, appCount: 6, totalMaxLo: 2000, totalMaxHi: 2000}
	checkWindow(t, "1m", r.Last1m, want)
	checkWindow(t, "15m", r.Last15m, want)
	checkWindow(t, "all", r.All, want)
	if r.All.ShedRate != 0.5 {
		t.Errorf("shed rate %v, want 0.5", r.All.ShedRate)
	}
}

// The JSON shape operators and the API see.
func TestWindowReportJSON(t *testing.T) {
	var s Stats
	w := newWindows(&s, 0, time.Now)
	recordOK(&s)
	b, err := json.Marshal(w.report())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"1m", "15m", "all"} {
		w, ok := m[k]
		if !ok {
			t.Fatalf("no %q in %s", k, b)
		}
		for _, f := range []string{"seconds", "requests", "rps", "shed", "shed_rate", "failed", "codes", "latency_ms"} {
			if _, ok := w[f]; !ok {
				t.Errorf("%s: no %q in %s", k, f, b)
			}
		}
		lat := w["latency_ms"].(map[string]any)
		for _, phase := range []string{"queue", "app", "total"} {
			p, _ := lat[phase].(map[string]any)
			for _, f := range []string{"p50", "p90", "p99", "max", "count"} {
				if _, ok := p[f]; !ok {
					t.Errorf("%s.latency_ms.%s: no %q", k, phase, f)
				}
			}
		}
	}
	if got := m["all"]["codes"].(map[string]any)["200"]; got != 1.0 {
		t.Errorf(`all.codes["200"] = %v, want 1`, got)
	}
}

// One sampler for the proxy and all its targets. A replaced target is
// sampled while it drains and 15 minutes after, then dropped; its report
// stays right.
func TestSamplerTargets(t *testing.T) {
	clk := newFakeClock()
	p, err := newSampled(Config{}, sampling{interval: 5 * time.Second, now: clk.now, manual: true})
	if err != nil {
		t.Fatal(err)
	}
	tick := func() { clk.add(5 * time.Second); p.sampler.tick(clk.now()) }
	a, _, _ := p.SetTarget("a", "127.0.0.1:1", 1)
	a.inflight.Add(1) // a request still on a when it is replaced
	for range 10 {
		recordOK(a.stats)
		tick()
	}
	b, old, _ := p.SetTarget("b", "127.0.0.1:2", 1)
	if old != a || p.sampler.len() != 3 {
		t.Fatalf("sampling %d windows, want 3 (proxy, a, b)", p.sampler.len())
	}
	for range 30 { // a drains slowly: sampled all along
		tick()
	}
	recordOK(a.stats)
	a.release() // its last request ends: drained
	recordOK(b.stats)
	for i := 0; p.sampler.len() == 3; i++ {
		if i > 15*12+3 {
			t.Fatalf("drained target still sampled after %d ticks", i)
		}
		if r := a.Report(); i > 0 && i < 12 && r.Last1m.Requests != 1 {
			t.Fatalf("tick %d after drain: a's 1m window has %d requests, want 1", i, r.Last1m.Requests)
		}
		tick()
	}
	for _, after := range []time.Duration{0, 7 * time.Minute, 20 * time.Minute} {
		clk.add(after)
		r := a.Report()
		if r.All.Requests != 11 || r.Last15m.Requests != 0 || r.Last1m.Requests != 0 {
			t.Errorf("%v after a was dropped: all %d, 15m %d, 1m %d requests; want 11, 0, 0",
				after, r.All.Requests, r.Last15m.Requests, r.Last1m.Requests)
		}
	}
	if r := b.Report(); r.All.Requests != 1 {
		t.Errorf("b: %d requests, want 1", r.All.Requests)
	}
	p.Close() // manual: nothing to stop, must not block
}

// The sampler goroutine ticks on its own and stops on Close.
func TestSamplerRuns(t *testing.T) {
	p, err := newSampled(Config{}, sampling{interval: 5 * time.Millisecond, now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	tg, _, _ := p.SetTarget("t", "127.0.0.1:1", 1)
	samples := func(w *windowSet) int { w.mu.Lock(); defer w.mu.Unlock(); return len(w.ring) }
	waitFor(t, "the sampler to tick", func() bool { return samples(p.windows) >= 3 && samples(tg.windows) >= 3 })
	p.Close()
	n := samples(p.windows)
	time.Sleep(20 * time.Millisecond)
	if m := samples(p.windows); m != n {
		t.Errorf("sampled %d times after Close", m-n)
	}
	p.Close() // twice is fine
}
