package proxy

import (
	"context"
	"maps"
	"net"
	"sync"
	"testing"
	"time"
)

// Traffic of a known mix through a real server: 70 × 200, 20 × 503 shed
// (the only worker held, a short queue timeout), 10 × 502 (a target that
// refuses connections). Every counter, for the proxy and per target, and
// every window agree with it exactly.
func TestStatsKnownMix(t *testing.T) {
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	p := newProxy(t, Config{QueueTimeout: 100 * time.Millisecond})
	ta := setTarget(t, p, b, 1)
	url := startProxy(t, p)
	ctx := context.Background()

	for i := 0; i < 69; i++ {
		if r := get(ctx, url+"/x"); r.status != 200 {
			t.Fatalf("request %d: %d %v", i, r.status, r.err)
		}
	}
	held := make(chan result, 1)
	go func() { held <- get(ctx, url+"/hold") }() // the 70th 200
	waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := get(ctx, url+"/x"); r.status != 503 {
				t.Errorf("queued behind a held worker: %d %v, want 503", r.status, r.err)
			}
		}()
	}
	wg.Wait()
	close(b.hold)
	if r := <-held; r.status != 200 {
		t.Fatalf("held request: %d %v", r.status, r.err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	tb, _, err := p.SetTarget("dead", dead, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if r := get(ctx, url+"/x"); r.status != 502 {
			t.Fatalf("refused target: %d %v, want 502", r.status, r.err)
		}
	}
	// The stats are recorded as the handler ends, maybe after the client
	// has its response.
	waitFor(t, "100 requests counted", func() bool { return p.Stats().Snapshot().Requests == 100 })

	type want struct {
		requests, shed, failed uint64
		codes                  map[int]uint64
	}
	all := want{100, 20, 10, map[int]uint64{200: 70, 503: 20, 502: 10}}
	// Sheds count on the target they waited for, in its requests and shed
	// but not its codes: they are not the container's answers.
	onA := want{90, 20, 0, map[int]uint64{200: 70}}
	onB := want{10, 0, 10, map[int]uint64{502: 10}}
	checkSnap := func(name string, s Snapshot, w want) {
		t.Helper()
		if s.Requests != w.requests || s.Shed != w.shed || s.Failed != w.failed || !maps.Equal(s.Codes, w.codes) {
			t.Errorf("%s: requests %d shed %d failed %d codes %v, want %d %d %d %v", name,
				s.Requests, s.Shed, s.Failed, s.Codes, w.requests, w.shed, w.failed, w.codes)
		}
	}
	checkSnap("proxy stats", p.Stats().Snapshot(), all)
	checkSnap("target a stats", ta.Stats().Snapshot(), onA)
	checkSnap("target b stats", tb.Stats().Snapshot(), onB)
	checkWin := func(name string, r WindowReport, w want) {
		t.Helper()
		for wn, win := range map[string]Window{"1m": r.Last1m, "15m": r.Last15m, "all": r.All} {
			checkSnap(name+" "+wn, Snapshot{Requests: win.Requests, Shed: win.Shed, Failed: win.Failed, Codes: win.Codes}, w)
			if rate := float64(w.shed) / float64(w.requests); win.ShedRate != rate {
				t.Errorf("%s %s: shed rate %v, want %v", name, wn, win.ShedRate, rate)
			}
			if win.Latency.Total.Count != w.requests {
				t.Errorf("%s %s: %d total latencies, want %d", name, wn, win.Latency.Total.Count, w.requests)
			}
		}
	}
	rep := p.Report()
	checkWin("proxy", rep.Windows, all)
	checkWin("target a", ta.Report(), onA)
	checkWin("target b", tb.Report(), onB)
	// Every request took the queued path; only the 200s got the app's headers.
	if l := rep.Windows.All.Latency; l.Queue.Count != 100 || l.App.Count != 70 {
		t.Errorf("latency counts queue %d app %d, want 100 and 70", l.Queue.Count, l.App.Count)
	}
	// The sheds waited the queue timeout.
	if q := ta.Report().Last1m.Latency.Queue; q.P99 < 100 || q.Max < 100 {
		t.Errorf("target a queue latency %+v, want p99 and max ≥ the 100 ms timeout", q)
	}
}

// With DisableStats nothing is counted.
func TestDisableStats(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{DisableStats: true})
	tg := setTarget(t, p, b, 1)
	url := startProxy(t, p)
	if r := get(context.Background(), url+"/x"); r.status != 200 {
		t.Fatalf("%d %v", r.status, r.err)
	}
	time.Sleep(10 * time.Millisecond) // the handler's end, which would count
	if n := p.Stats().Snapshot().Requests + tg.Stats().Snapshot().Requests; n != 0 {
		t.Errorf("%d requests counted with stats off", n)
	}
	if r := p.Report(); r.Windows.All.Requests != 0 || r.Connections != (ConnStates{}) {
		t.Errorf("report with stats off: %+v", r)
	}
}
