package proxy

import (
	"math"
	"strings"
	"testing"
	"time"
)

// vqueue is an admission with one target on a virtual clock: requests
// arrive, queue, get a slot or are shed as the test says when, and every
// waiter's fate is checked.
type vqueue struct {
	t       *testing.T
	adm     *admission
	tg      *Target
	now     time.Time
	held    []time.Time // the slots granted, by when: released oldest first
	waiting []vwaiter   // the queued requests still waiting, oldest first
	served  []string    // the queued requests granted a slot, in order
	shed    []string    // the queued requests shed by the discipline
	n       int
}

type vwaiter struct {
	w    *waiter
	name string
	at   time.Time
}

func newVQueue(t *testing.T, d discipline, workers int) *vqueue {
	q := &vqueue{t: t, now: time.Unix(1_700_000_000, 0)}
	q.adm = &admission{disc: d, maxQueue: DefaultQueueSize, now: func() time.Time { return q.now }}
	q.tg = &Target{id: "t", workers: workers, drained: make(chan struct{})}
	q.adm.swap(q.tg)
	return q
}

func (q *vqueue) advance(d time.Duration) { q.now = q.now.Add(d) }

// arrive sends one request: granted at once, or queued under a label
// ("1", "2", … in order of arrival).
func (q *vqueue) arrive() string {
	q.n++
	t, w, since, err := q.adm.enter()
	if err != nil {
		q.t.Fatalf("request %d: %v", q.n, err)
	}
	name := itoa(q.n)
	if t != nil {
		q.held = append(q.held, since)
	} else {
		q.waiting = append(q.waiting, vwaiter{w, name, q.now})
	}
	q.collect()
	return name
}

// complete ends the oldest request in the app: its slot goes to a waiter
// (whose label is returned) or frees up ("").
func (q *vqueue) complete() string {
	if len(q.held) == 0 {
		q.t.Fatal("complete: no request in the app")
	}
	since := q.held[0]
	q.held = q.held[1:]
	before := len(q.served)
	q.adm.release(q.tg, since)
	q.collect()
	if len(q.served) > before {
		return q.served[len(q.served)-1]
	}
	return ""
}

// collect reads the fate of every waiter taken out of the queue, oldest
// first.
func (q *vqueue) collect() {
	left := q.waiting[:0]
	for _, v := range q.waiting {
		if v.w.queued {
			left = append(left, v)
			continue
		}
		t := <-v.w.ready
		waiterPool.Put(v.w)
		if t == nil {
			q.shed = append(q.shed, v.name)
			continue
		}
		q.served = append(q.served, v.name)
		q.held = append(q.held, q.now)
	}
	q.waiting = left
}

// run goes on for d: a request every gap, and each request in the app
// completes after service.
func (q *vqueue) run(d, gap, service time.Duration, each func()) {
	end := q.now.Add(d)
	next := q.now.Add(gap)
	for q.now.Before(end) {
		step := next
		if len(q.held) > 0 && q.held[0].Add(service).Before(step) {
			step = q.held[0].Add(service)
		}
		q.now = step
		if len(q.held) > 0 && !q.held[0].Add(service).After(q.now) {
			q.complete()
		} else {
			q.arrive()
			next = next.Add(gap)
		}
		each()
	}
}

// check says that no slot is lost or doubled: the target's busy slots are
// the requests in the app, and a waiter waits only while a slot is busy.
func (q *vqueue) check() {
	q.t.Helper()
	q.adm.mu.Lock()
	busy, waiting := q.tg.busy, q.adm.waiters.n
	q.adm.mu.Unlock()
	if busy != len(q.held) || busy > q.tg.workers || waiting != len(q.waiting) || (waiting > 0 && busy < q.tg.workers) {
		q.t.Fatalf("busy %d with %d in the app (workers %d), %d queued with %d waiting",
			busy, len(q.held), q.tg.workers, waiting, len(q.waiting))
	}
	if got := q.tg.inflight.Load(); got != int64(busy) {
		q.t.Fatalf("in flight %d, busy slots %d", got, busy)
	}
}

func (q *vqueue) state() QueueState { return q.adm.state() }

// measure teaches the discipline the app's service time with one request.
func (q *vqueue) measure(service time.Duration) {
	q.arrive()
	q.advance(service)
	q.complete()
	q.check()
}

// Without a measured service time, and while no queue stands, the adaptive
// queue is FIFO: the same order, nobody shed before the queue timeout.
func TestAdaptiveIsFIFOUnderCapacity(t *testing.T) {
	for _, measured := range []bool{false, true} {
		q := newVQueue(t, newAdaptive(time.Second), 1)
		if measured {
			q.measure(10 * time.Millisecond)
		}
		q.arrive() // takes the worker
		for i := 0; i < 3; i++ {
			q.advance(time.Millisecond)
			q.arrive()
		}
		q.check()
		if s := q.state(); s.State != StateNormal || s.EffectiveTimeoutMs != 1000 {
			t.Fatalf("measured %v: state %+v, want normal with the 1 s queue timeout", measured, s)
		}
		for range 3 {
			q.advance(10 * time.Millisecond)
			q.complete()
		}
		want := []string{itoa(q.n - 2), itoa(q.n - 1), itoa(q.n)}
		if got := strings.Join(q.served, ","); got != strings.Join(want, ",") || len(q.shed) > 0 {
			t.Fatalf("measured %v: served %s, shed %v; want FIFO (%s) and none shed", measured, got, q.shed, want)
		}
	}
}

// queueGrowing measures 50 ms of service on 2 workers, takes both and
// queues n requests 5 ms apart: the FIFO backlog grows by 20 ms with each
// (25 ms of work, 5 ms of service between two).
func queueGrowing(t *testing.T, timeout time.Duration, n int) *vqueue {
	q := newVQueue(t, newAdaptive(timeout), 2)
	q.measure(50 * time.Millisecond)
	q.arrive()
	q.arrive()
	for range n {
		q.advance(5 * time.Millisecond)
		q.arrive()
	}
	q.check()
	return q
}

// While a queue grows, the newest are served first and nobody is shed;
// once requests come slower than the app serves them (two long gaps in a
// row), the rest is served oldest first.
func TestAdaptiveServesNewestWhileQueueGrows(t *testing.T) {
	q := queueGrowing(t, 3*time.Second, 40) // backlog 800 ms: a standing queue, far from 3 s
	if s := q.state(); s.State != StateQueueing || s.BacklogMs < 700 || s.BacklogMs > 900 {
		t.Fatalf("state %+v, want queueing with a backlog of about 800 ms", s)
	}
	if got := q.complete() + "," + q.complete(); got != "43,42" {
		t.Fatalf("served %s while the queue grows, want the newest (43,42)", got)
	}
	// Two gaps of 100 ms (4 slot hand-overs each): the queue drains.
	q.advance(100 * time.Millisecond)
	q.arrive() // 45
	q.advance(100 * time.Millisecond)
	if got := q.complete() + "," + q.complete(); got != "4,5" {
		t.Fatalf("served %s once the queue drains, want the oldest (4,5)", got)
	}
	if len(q.shed) > 0 {
		t.Fatalf("shed %v before the queue timeout", q.shed)
	}
	q.check()
}

// A waiter whose queue timeout comes near (a quarter of it left, at least
// two service times) is served before newer ones even while the queue
// grows: while FIFO would serve everyone, nobody times out.
func TestAdaptiveServesOldestNearItsTimeout(t *testing.T) {
	const timeout, near = 2 * time.Second, 1500 * time.Millisecond
	q := newVQueue(t, newAdaptive(timeout), 2)
	q.measure(50 * time.Millisecond)
	start := q.now
	newest, oldest := 0, 0
	// 50 requests/s on an app of 2 × 50 ms (40/s), for 3 s: the FIFO
	// backlog grows to 750 ms, so FIFO would serve everyone.
	q.run(3*time.Second, 20*time.Millisecond, 50*time.Millisecond, func() {
		if len(q.waiting) > 0 && q.now.Sub(q.waiting[0].at) > near+50*time.Millisecond {
			t.Fatalf("at %v request %s has waited %v: past its turn", q.now.Sub(start), q.waiting[0].name, q.now.Sub(q.waiting[0].at))
		}
	})
	for i, name := range q.served {
		n := atoi(t, name)
		switch {
		case i > 0 && n > atoi(t, q.served[i-1]):
			newest++
		default:
			oldest++
		}
	}
	if s := q.state(); s.State != StateQueueing || len(q.shed) > 0 || newest < 30 || oldest < 5 {
		t.Fatalf("state %s, shed %v, %d served newest first and %d oldest first: want queueing, none shed, both orders",
			s.State, q.shed, newest, oldest)
	}
	q.check()
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// Once FIFO would shed (the backlog reaches the queue timeout), the queue
// is overloaded: each arrival sheds the oldest waiters beyond one per
// worker, the newest are served, and the state ends when the backlog falls
// under three quarters of the queue timeout.
func TestAdaptiveOverload(t *testing.T) {
	q := queueGrowing(t, 500*time.Millisecond, 24) // backlog 485 ms: queueing, nobody shed
	if s := q.state(); s.State != StateQueueing || len(q.shed) != 0 {
		t.Fatalf("state %+v, shed %v: want queueing, none shed", s, q.shed)
	}
	q.advance(5 * time.Millisecond)
	q.arrive() // 28: the backlog reaches 505 ms; the oldest go
	if s := q.state(); s.State != StateOverloaded || s.Overloads != 1 {
		t.Fatalf("state %+v: want overloaded once", s)
	}
	if len(q.shed) != 23 || q.shed[0] != "4" || q.shed[22] != "26" || len(q.waiting) != 2 {
		t.Fatalf("shed %v, %d waiting: want 4…26 shed and the 2 newest kept", q.shed, len(q.waiting))
	}
	q.advance(5 * time.Millisecond)
	q.arrive() // 29: one more shed
	if len(q.shed) != 24 || q.shed[23] != "27" {
		t.Fatalf("shed %v: want 27 shed next", q.shed)
	}
	s := q.state()
	if s.State != StateOverloaded || s.EffectiveTimeoutMs != 50 || s.TimeoutMs != 500 {
		t.Fatalf("state %+v: want overloaded, effective timeout one service time (50 ms)", s)
	}
	for range 10 {
		q.advance(5 * time.Millisecond)
		q.arrive()
	}
	if len(q.shed) != 34 || len(q.waiting) != 2 {
		t.Fatalf("%d shed, %d waiting: want one shed per arrival, 2 kept", len(q.shed), len(q.waiting))
	}
	if got := q.complete(); got != "39" {
		t.Fatalf("served %s, want the newest (39)", got)
	}
	q.check()
	overloadedAt := q.now
	q.advance(150 * time.Millisecond) // backlog 500 → 350 ms, under 375
	s = q.state()
	if s.State == StateOverloaded || math.Abs(s.OverloadedSeconds-q.now.Sub(overloadedAt).Seconds()-0.05) > 0.011 {
		t.Fatalf("state %+v: want the overload over after about 200 ms", s)
	}
	for len(q.held) > 0 {
		q.complete()
	}
	q.check()
	if q.tg.busy != 0 || len(q.waiting) != 0 || len(q.served)+len(q.shed) != 36 {
		t.Fatalf("busy %d, %d waiting, %d served + %d shed of 36 queued", q.tg.busy, len(q.waiting), len(q.served), len(q.shed))
	}
}

// The discipline changes nothing about what the admission promises: a
// waiter that times out or leaves gives back a slot granted meanwhile, and
// one shed meanwhile is reported as shed (errOverload), not timed out.
func TestAbandonAfterGrantOrShed(t *testing.T) {
	q := queueGrowing(t, 500*time.Millisecond, 1)
	w := q.waiting[0].w
	q.adm.release(q.tg, q.held[0]) // the slot goes to w, which has just timed out
	q.held = q.held[1:]
	q.waiting = nil
	if err := q.adm.abandon(w, errQueueTimeout); err != errQueueTimeout {
		t.Fatalf("abandon after a grant: %v", err)
	}
	q.check() // the slot came back: the next request takes it at once
	q.arrive()
	q.arrive()
	w = q.waiting[0].w
	q.waiting = nil
	q.adm.mu.Lock()
	q.adm.waiters.remove(w)
	w.ready <- nil // shed as its timer fired
	q.adm.mu.Unlock()
	if err := q.adm.abandon(w, errQueueTimeout); err != errOverload {
		t.Fatalf("abandon after a shed: %v, want errOverload", err)
	}
}

// The service time is a moving mean of how long slots are held, each time
// counted as at most 4 × the mean so far and at most the queue timeout: one
// streamed response holding its slot for ten minutes moves it by 3/16 at
// most, and a first one by no more than the queue timeout.
func TestAdaptiveServiceTime(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	d := newAdaptive(3 * time.Second)
	d.done(at, 10*time.Minute)
	if d.service != 3*time.Second {
		t.Fatalf("first sample of 10 min: service %v, want the queue timeout (3s)", d.service)
	}
	d = newAdaptive(3 * time.Second)
	for range 50 {
		d.done(at, 50*time.Millisecond)
	}
	d.done(at, 10*time.Minute)
	if want := 50*time.Millisecond + 50*time.Millisecond*3/16; d.service > want {
		t.Fatalf("after a 10 min stream: service %v, want at most %v", d.service, want)
	}
	for range 100 {
		d.done(at, 100*time.Millisecond) // the app got slower: followed
	}
	if d.service < 99*time.Millisecond || d.service > 100*time.Millisecond {
		t.Fatalf("after 100 requests of 100 ms: service %v", d.service)
	}
}
