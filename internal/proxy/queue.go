package proxy

import (
	"context"
	"sync"
	"time"
)

// waiter is one request waiting for a worker slot. Waiters are pooled: the
// queued path allocates nothing in steady state.
type waiter struct {
	prev, next *waiter
	queued     bool
	enqueued   time.Time
	ready      chan *Target // buffered(1): a grant never blocks the granter
	timer      *time.Timer
}

var waiterPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ready: make(chan *Target, 1), timer: t}
}}

// waitList is an intrusive doubly linked list, so that a waiter whose client
// left can be removed in O(1) from anywhere in it.
type waitList struct {
	head, tail *waiter
	n          int
}

func (l *waitList) pushBack(w *waiter) {
	w.prev, w.next, w.queued = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
}

func (l *waitList) remove(w *waiter) bool {
	if !w.queued {
		return false
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	l.n--
	return true
}

// admission hands out the active target's worker slots and keeps the queue
// of requests waiting for one. One short mutex guards the active target, the
// slot counts, the queue and its discipline: a grant, a release, a shed and
// a swap must each be atomic with respect to the others, or a slot could be
// lost or doubled.
//
// A waiter learns its fate from its ready channel: a target (it holds one
// of its slots), or nil (the discipline shed it: errOverload). Its own
// timer is the queue timeout, the longest anyone waits.
type admission struct {
	mu       sync.Mutex
	active   *Target
	waiters  waitList
	disc     discipline
	maxQueue int              // 0: no limit beyond the connection limit
	now      func() time.Time // time.Now; the simulation's virtual clock in tests
}

// acquire returns the target whose slot the caller now holds and when it
// got it, or an error once the request has waited timeout, was shed by the
// discipline, found the queue full, or ctx ended.
func (a *admission) acquire(ctx context.Context, timeout time.Duration) (*Target, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err // the client left before asking: nothing for the app
	}
	t, w, now, err := a.enter()
	if w == nil {
		return t, now, err
	}
	w.timer.Reset(timeout)
	select {
	case t = <-w.ready:
		w.timer.Stop()
		waiterPool.Put(w)
		if t == nil {
			return nil, time.Time{}, errOverload
		}
		return t, a.now(), nil
	case <-w.timer.C:
		err = errQueueTimeout
	case <-ctx.Done():
		w.timer.Stop()
		err = ctx.Err()
	}
	return nil, time.Time{}, a.abandon(w, err)
}

// enter asks for a slot: granted at once (t), or queued (w, to wait on its
// ready channel), or refused (err).
func (a *admission) enter() (t *Target, w *waiter, now time.Time, err error) {
	now = a.now() // outside the lock: it is short
	a.mu.Lock()
	t = a.active
	if t == nil {
		a.mu.Unlock()
		return nil, nil, now, errNoTarget
	}
	// Fast path: a free slot and nobody ahead of us.
	free := t.busy < t.workers && a.waiters.n == 0 && !t.paused
	a.disc.arrive(now, t.workers, free)
	if free {
		t.busy++
		t.inflight.Add(1)
		a.mu.Unlock()
		return t, nil, now, nil
	}
	if a.maxQueue > 0 && a.waiters.n >= a.maxQueue {
		a.mu.Unlock()
		return nil, nil, now, errQueueFull
	}
	w = waiterPool.Get().(*waiter)
	w.enqueued = now
	a.disc.push(&a.waiters, w)
	for v := a.disc.evict(&a.waiters, now); v != nil; v = a.disc.evict(&a.waiters, now) {
		v.ready <- nil // shed; possibly w itself
	}
	a.mu.Unlock()
	return nil, w, now, nil
}

// abandon takes w, whose wait ended with err (its queue timeout, or its
// client left), out of the queue and returns err; or, when it was granted a
// slot or shed in the meantime, returns the slot and the matching error.
func (a *admission) abandon(w *waiter, err error) error {
	a.mu.Lock()
	removed := a.waiters.remove(w)
	a.mu.Unlock()
	if !removed {
		// A slot was granted, or the waiter shed, between the end of its
		// wait and the lock: give a slot back, so that it goes to the next
		// waiter rather than being lost. The app never saw the request: no
		// service time to learn from.
		if t := <-w.ready; t != nil {
			a.giveBack(t)
		} else if err == errQueueTimeout {
			err = errOverload
		}
	}
	waiterPool.Put(w)
	return err
}

// release returns a slot taken by acquire at since. A slot of the active
// target goes straight to the next waiter; a slot of a replaced target just
// frees up.
func (a *admission) release(t *Target, since time.Time) {
	now := a.now()
	a.mu.Lock()
	a.disc.done(now, now.Sub(since))
	if a.handOver(t, now, false) {
		a.mu.Unlock()
		return
	}
	t.busy--
	a.mu.Unlock()
	t.release()
}

// giveBack returns a slot that served no request.
func (a *admission) giveBack(t *Target) {
	now := a.now()
	a.mu.Lock()
	if a.handOver(t, now, false) {
		a.mu.Unlock()
		return
	}
	t.busy--
	a.mu.Unlock()
	t.release()
}

// releaseSlot returns the slot of a request that keeps its in-flight
// reference (an upgraded connection), taken at since. The next waiter gets
// the slot with a reference of its own.
func (a *admission) releaseSlot(t *Target, since time.Time) {
	now := a.now()
	a.mu.Lock()
	a.disc.done(now, now.Sub(since))
	if !a.handOver(t, now, true) {
		t.busy--
	}
	a.mu.Unlock()
}

// handOver gives t's slot to the next waiter when t is the active target,
// with a new in-flight reference when ref. Called with a.mu held.
func (a *admission) handOver(t *Target, now time.Time, ref bool) bool {
	if t != a.active || t.paused {
		return false
	}
	w := a.disc.pop(&a.waiters, now)
	if w == nil {
		return false
	}
	if ref {
		t.inflight.Add(1)
	}
	w.ready <- t // the slot (and the reference) pass to the waiter
	return true
}

// acquireBypass takes an in-flight reference on the active target without a
// slot (a health check within the health gate's places).
func (a *admission) acquireBypass() *Target {
	a.mu.Lock()
	t := a.active
	if t != nil {
		t.inflight.Add(1)
	}
	a.mu.Unlock()
	return t
}

// swap makes t the active target (nil: none) and returns the previous one.
// Waiters keep their order and take the new target's free slots at once;
// requests admitted before the swap keep their slots on the old target.
func (a *admission) swap(t *Target) *Target {
	a.mu.Lock()
	old := a.active
	a.active = t
	if t != nil {
		a.grantLocked(t, a.now())
	}
	a.mu.Unlock()
	return old
}

// grantLocked hands the active target t's free slots to the waiters, in the
// discipline's order, unless t is paused. Caller holds a.mu.
func (a *admission) grantLocked(t *Target, now time.Time) {
	for t.busy < t.workers && !t.paused {
		w := a.disc.pop(&a.waiters, now)
		if w == nil {
			break
		}
		t.busy++
		t.inflight.Add(1)
		w.ready <- t
	}
}

// pause sets t.paused (Target.SetPaused); lifting it grants t's free slots
// to the waiters when t is the active target.
func (a *admission) pause(t *Target, paused bool) {
	now := a.now()
	a.mu.Lock()
	t.paused = paused
	t.pausedNow.Store(paused)
	if !paused && t == a.active {
		a.grantLocked(t, now)
	}
	a.mu.Unlock()
}

// queued is the number of requests waiting for a slot.
func (a *admission) queued() int {
	a.mu.Lock()
	n := a.waiters.n
	a.mu.Unlock()
	return n
}

// state is the discipline's state now.
func (a *admission) state() QueueState {
	a.mu.Lock()
	s := a.disc.state(a.now())
	a.mu.Unlock()
	return s
}
