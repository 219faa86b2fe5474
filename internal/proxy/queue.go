package proxy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Queue disciplines. FIFO is what HAProxy does; LIFO serves the newest
// waiter first, which keeps latency low for most clients under sustained
// overload at the cost of the oldest waiters (they time out instead).
const (
	DisciplineFIFO = "fifo"
	DisciplineLIFO = "lifo"
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

// discipline decides which waiter gets the next free slot. It is the seam for
// adaptive disciplines (CoDel-style short timeouts under standing queues):
// they only need a different pop and, if they want, a different timeout.
type discipline interface {
	push(l *waitList, w *waiter)
	pop(l *waitList) *waiter
}

type fifo struct{}

func (fifo) push(l *waitList, w *waiter) { l.pushBack(w) }
func (fifo) pop(l *waitList) *waiter {
	w := l.head
	if w != nil {
		l.remove(w)
	}
	return w
}

type lifo struct{}

func (lifo) push(l *waitList, w *waiter) { l.pushBack(w) }
func (lifo) pop(l *waitList) *waiter {
	w := l.tail
	if w != nil {
		l.remove(w)
	}
	return w
}

func newDiscipline(name string) (discipline, error) {
	switch name {
	case "", DisciplineFIFO:
		return fifo{}, nil
	case DisciplineLIFO:
		return lifo{}, nil
	}
	return nil, errors.New("unknown queue discipline " + name + " (want fifo or lifo)")
}

// admission hands out the active target's worker slots and keeps the queue
// of requests waiting for one. One short mutex guards the active target, the
// slot counts and the queue: a grant, a release and a swap must each be
// atomic with respect to the others, or a slot could be lost or doubled.
type admission struct {
	mu       sync.Mutex
	active   *Target
	waiters  waitList
	disc     discipline
	maxQueue int // 0: no limit beyond the connection limit
}

// acquire returns the target whose slot the caller now holds, or an error
// once the request has waited timeout, the queue is full, or ctx ends.
func (a *admission) acquire(ctx context.Context, timeout time.Duration) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // the client left before asking: nothing for the app
	}
	a.mu.Lock()
	t := a.active
	if t == nil {
		a.mu.Unlock()
		return nil, errNoTarget
	}
	// Fast path: a free slot and nobody ahead of us.
	if t.busy < t.workers && a.waiters.n == 0 && !t.paused {
		t.busy++
		t.inflight.Add(1)
		a.mu.Unlock()
		return t, nil
	}
	if a.maxQueue > 0 && a.waiters.n >= a.maxQueue {
		a.mu.Unlock()
		return nil, errQueueFull
	}
	w := waiterPool.Get().(*waiter)
	w.enqueued = time.Now()
	a.disc.push(&a.waiters, w)
	a.mu.Unlock()

	w.timer.Reset(timeout)
	var err error
	select {
	case t = <-w.ready:
		w.timer.Stop()
		waiterPool.Put(w)
		return t, nil
	case <-w.timer.C:
		err = errQueueTimeout
	case <-ctx.Done():
		w.timer.Stop()
		err = ctx.Err()
	}
	a.mu.Lock()
	removed := a.waiters.remove(w)
	a.mu.Unlock()
	if !removed {
		// A slot was granted between the timeout and the lock: give it back,
		// so that it goes to the next waiter rather than being lost.
		a.release(<-w.ready)
	}
	waiterPool.Put(w)
	return nil, err
}

// release returns a slot taken by acquire. A slot of the active target goes
// straight to the next waiter; a slot of a replaced target just frees up.
func (a *admission) release(t *Target) {
	a.mu.Lock()
	if t == a.active && !t.paused {
		if w := a.disc.pop(&a.waiters); w != nil {
			// The slot and the in-flight reference pass to the waiter as they are.
			w.ready <- t
			a.mu.Unlock()
			return
		}
	}
	t.busy--
	a.mu.Unlock()
	t.release()
}

// releaseSlot returns the slot of a request that keeps its in-flight
// reference (an upgraded connection). The next waiter gets the slot with a
// reference of its own.
func (a *admission) releaseSlot(t *Target) {
	a.mu.Lock()
	if t == a.active && !t.paused {
		if w := a.disc.pop(&a.waiters); w != nil {
			t.inflight.Add(1)
			w.ready <- t
			a.mu.Unlock()
			return
		}
	}
	t.busy--
	a.mu.Unlock()
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
		a.grantLocked(t)
	}
	a.mu.Unlock()
	return old
}

// grantLocked hands the active target t's free slots to the waiters, in the
// discipline's order. Caller holds a.mu.
func (a *admission) grantLocked(t *Target) {
	for t.busy < t.workers && !t.paused {
		w := a.disc.pop(&a.waiters)
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
	a.mu.Lock()
	t.paused = paused
	if !paused && t == a.active {
		a.grantLocked(t)
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
