package proxy

import (
	"context"
	"testing"
	"time"
)

// A paused target (its container being restarted) hands out no slots:
// requests wait in the queue rather than failing, and go to the target
// switched in next, without losing their place.
func TestPausedTargetQueuesUntilSwap(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	ta := setTarget(t, p, a, 2)
	url := startProxy(t, p)
	ta.SetPaused(true)

	got := make(chan result, 3)
	for range 3 {
		go func() { got <- get(context.Background(), url+"/x") }()
	}
	waitFor(t, "3 requests queued", func() bool { return p.Queued() == 3 })
	time.Sleep(50 * time.Millisecond) // time for a wrong grant to reach a
	if n := a.served.Load(); n != 0 {
		t.Fatalf("the paused target served %d requests", n)
	}
	setTarget(t, p, b, 2)
	for range 3 {
		if r := <-got; r.status != 200 || r.body != "b" {
			t.Fatalf("queued request: %d %q %v, want b's 200", r.status, r.body, r.err)
		}
	}
	if a.served.Load() != 0 {
		t.Fatal("a request went to the paused target")
	}
}

// Lifting the pause of a target marked down (its container could not be
// brought back) fails the waiting requests at once with a 502; lifting it
// from a live one serves them. A paused target's waiters still time out.
func TestPausedTargetResume(t *testing.T) {
	a := newBackend(t, "a")
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	ta := setTarget(t, p, a, 1)
	url := startProxy(t, p)

	ta.SetPaused(true)
	got := make(chan result, 1)
	go func() { got <- get(context.Background(), url+"/x") }()
	waitFor(t, "a request queued", func() bool { return p.Queued() == 1 })
	ta.SetPaused(false)
	if r := <-got; r.status != 200 || r.body != "a" {
		t.Fatalf("after the pause: %d %q %v, want a's 200", r.status, r.body, r.err)
	}

	ta.SetPaused(true)
	go func() { got <- get(context.Background(), url+"/x") }()
	waitFor(t, "a request queued", func() bool { return p.Queued() == 1 })
	ta.SetDown(true)
	ta.SetPaused(false)
	if r := <-got; r.status != 502 {
		t.Fatalf("after the pause of a dead target: %d %q %v, want 502", r.status, r.body, r.err)
	}

	short := newProxy(t, Config{QueueTimeout: 100 * time.Millisecond})
	ts := setTarget(t, short, a, 1)
	ts.SetPaused(true)
	if r := get(context.Background(), startProxy(t, short)+"/x"); r.status != 503 {
		t.Fatalf("paused past the queue timeout: %d %v, want 503", r.status, r.err)
	}
}
