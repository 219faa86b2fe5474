package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many swaps between two backends under concurrent load: no request fails,
// and neither backend ever holds more than its workers.
func TestSwapUnderLoad(t *testing.T) {
	const workers = 3
	a, b := newBackend(t, "a"), newBackend(t, "b")
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	setTarget(t, p, a, workers)
	url := startProxy(t, p)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r := get(context.Background(), url+"/sleep?d=1ms")
				if r.err != nil || r.status != 200 {
					failed.Add(1)
					t.Errorf("request failed during swaps: status %d err %v body %q", r.status, r.err, r.body)
					return
				}
				ok.Add(1)
			}
		}()
	}
	var old *Target
	for i := 0; i < 100; i++ {
		next := a
		if i%2 == 0 {
			next = b
		}
		var err error
		_, old, err = p.SetTarget(next.name, next.addr(), workers)
		if err != nil {
			t.Fatal(err)
		}
		// Drain as the manager does, so that old targets really finish.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := old.WaitDrained(dctx); err != nil {
			t.Fatalf("swap %d: old target did not drain: %v", i, err)
		}
		cancel()
		if n := old.InFlight(); n != 0 {
			t.Fatalf("swap %d: drained target still has %d in flight", i, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Fatalf("ok %d failed %d", ok.Load(), failed.Load())
	}
	for _, be := range []*backend{a, b} {
		if pk := be.peak.Load(); pk > workers {
			t.Errorf("backend %s saw %d concurrent requests, workers %d", be.name, pk, workers)
		}
		if be.served.Load() == 0 {
			t.Errorf("backend %s served nothing: the swaps did not take", be.name)
		}
	}
}

// A request admitted before a swap finishes on the old target; the drain
// waits for it, and a drain deadline is reported as such.
func TestSwapDrainsInFlight(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.hold = make(chan struct{})
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	setTarget(t, p, a, 2)
	url := startProxy(t, p)

	slow := make(chan result, 1)
	go func() { slow <- get(context.Background(), url+"/hold") }()
	waitFor(t, "the slow request to reach a", func() bool { return a.inflight.Load() == 1 })

	_, old, _ := p.SetTarget(b.name, b.addr(), 2)
	if r := get(context.Background(), url+"/"); r.body != "b" {
		t.Fatalf("after the swap a new request went to %q", r.body)
	}
	if n := old.InFlight(); n != 1 {
		t.Fatalf("old target in flight %d, want 1", n)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := old.WaitDrained(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a request in flight: %v, want the deadline", err)
	}
	close(a.hold)
	if r := <-slow; r.status != 200 || r.body != "a" {
		t.Fatalf("the request in flight on the old target: %d %q %v", r.status, r.body, r.err)
	}
	if err := old.WaitDrained(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Waiting requests move to the new target in their order when the swap
// happens, instead of timing out on the old one.
func TestSwapMovesWaiters(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.hold = make(chan struct{})
	defer close(a.hold)
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	setTarget(t, p, a, 1)
	url := startProxy(t, p)
	go get(context.Background(), url+"/hold")
	waitFor(t, "a's worker to be taken", func() bool { return a.inflight.Load() == 1 })

	results := make(chan result, 3)
	for i := 1; i <= 3; i++ {
		go func() { results <- get(context.Background(), url+"/x?n="+itoa(i)) }()
		waitFor(t, "request to queue", func() bool { return p.Queued() == i })
	}
	setTarget(t, p, b, 3)
	for i := 0; i < 3; i++ {
		if r := <-results; r.status != 200 || r.body != "b" {
			t.Fatalf("waiter after the swap: %d %q %v", r.status, r.body, r.err)
		}
	}
	if got := b.arrivals(); len(got) != 3 {
		t.Fatalf("b saw %v", got)
	}
	if p.Queued() != 0 {
		t.Fatal("queue not empty")
	}
}

// Health-path requests also count as in flight and hold the drain.
func TestHealthRequestHoldsDrain(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.hold = make(chan struct{})
	p := newProxy(t, Config{HealthPath: "/hold"})
	setTarget(t, p, a, 1)
	url := startProxy(t, p)
	done := make(chan result, 1)
	go func() { done <- get(context.Background(), url+"/hold") }()
	waitFor(t, "health request in a", func() bool { return a.inflight.Load() == 1 })
	_, old, _ := p.SetTarget(b.name, b.addr(), 1)
	select {
	case <-old.drained:
		t.Fatal("drained while a health request was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(a.hold)
	<-done
	<-old.drained
}

func TestTargetDown(t *testing.T) {
	a := newBackend(t, "a")
	p := newProxy(t, Config{})
	tg := setTarget(t, p, a, 1)
	url := startProxy(t, p)
	tg.SetDown(true)
	r := get(context.Background(), url+"/")
	if r.status != 502 || a.served.Load() != 0 {
		t.Fatalf("down target: status %d, app served %d", r.status, a.served.Load())
	}
	tg.SetDown(false)
	if r := get(context.Background(), url+"/"); r.status != 200 {
		t.Fatalf("target up again: %d", r.status)
	}
}
