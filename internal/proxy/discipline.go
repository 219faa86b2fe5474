package proxy

import (
	"fmt"
	"time"
)

// Queue disciplines. DisciplineAdaptive (the default, adaptive.go) serves
// the queue as FIFO does while it keeps up, newest first while a queue
// builds up, and sheds the oldest waiters at once when FIFO itself would be
// shedding. DisciplineFIFO is exactly what HAProxy does (maxconn + timeout
// queue). DisciplineLIFO serves the newest waiter first, always: low latency
// for most clients under sustained overload, at the cost of the oldest
// waiters (they wait the whole queue timeout, then get a 503).
const (
	DisciplineAdaptive = "adaptive"
	DisciplineFIFO     = "fifo"
	DisciplineLIFO     = "lifo"
)

// discipline decides which waiter gets the next free slot and which
// waiters, if any, are shed before their queue timeout. Its methods are
// called with the admission lock held, on the admission's clock (now), so
// that a discipline is a plain state machine: the simulation in
// queuesim_test.go drives the real admission and discipline on a virtual
// clock.
type discipline interface {
	// arrive is told of every request that asks for a slot, before it is
	// granted one (free: a slot is free and nobody waits) or queued.
	arrive(now time.Time, workers int, free bool)
	// push queues w (w.enqueued is set).
	push(l *waitList, w *waiter)
	// evict removes and returns a waiter to shed now, or nil. The
	// admission calls it after each push until it returns nil.
	evict(l *waitList, now time.Time) *waiter
	// pop removes and returns the waiter to get a free slot, or nil.
	pop(l *waitList, now time.Time) *waiter
	// done is told that a slot came back after being held for held: the
	// time the app took for one request.
	done(now time.Time, held time.Duration)
	// state describes the discipline now, for Report.
	state(now time.Time) QueueState
}

// QueueState is the admission queue's discipline and its state now.
type QueueState struct {
	// Discipline is fifo, lifo or adaptive.
	Discipline string `json:"discipline"`
	// State is "normal" (served oldest first, nobody shed before the queue
	// timeout), "queueing" (adaptive: a queue stands; served newest first
	// while it grows, nobody shed before the queue timeout) or "overloaded"
	// (adaptive: FIFO would be shedding; the oldest waiters are shed at once
	// and the newest served).
	State string `json:"state"`
	// TimeoutMs is the configured queue timeout: the longest any request
	// waits.
	TimeoutMs float64 `json:"timeout_ms"`
	// EffectiveTimeoutMs is about the longest a request waits now: the
	// queue timeout, or while overloaded about one service time of the app.
	EffectiveTimeoutMs float64 `json:"effective_timeout_ms"`
	// OverloadedSeconds is the time spent overloaded since start, and
	// Overloads how many times the queue became overloaded.
	OverloadedSeconds float64 `json:"overloaded_seconds"`
	Overloads         uint64  `json:"overloads"`
	// ServiceMs is the app's measured time per request (a moving average
	// of how long a worker slot is held; adaptive only, 0 before the first).
	ServiceMs float64 `json:"service_ms"`
	// BacklogMs is how long a request arriving now would wait in a FIFO
	// queue (adaptive's estimate; the overload signal).
	BacklogMs float64 `json:"backlog_ms"`
}

// Discipline states (QueueState.State).
const (
	StateNormal     = "normal"
	StateQueueing   = "queueing"
	StateOverloaded = "overloaded"
)

// ordered is FIFO or LIFO: a fixed order, nothing shed before the queue
// timeout, nothing measured.
type ordered struct {
	newestFirst bool
	timeout     time.Duration
}

func (ordered) arrive(time.Time, int, bool)        {}
func (ordered) push(l *waitList, w *waiter)        { l.pushBack(w) }
func (ordered) evict(*waitList, time.Time) *waiter { return nil }
func (ordered) done(time.Time, time.Duration)      {}

func (d ordered) pop(l *waitList, _ time.Time) *waiter {
	w := l.head
	if d.newestFirst {
		w = l.tail
	}
	if w != nil {
		l.remove(w)
	}
	return w
}

func (d ordered) state(time.Time) QueueState {
	name := DisciplineFIFO
	if d.newestFirst {
		name = DisciplineLIFO
	}
	t := ms(d.timeout)
	return QueueState{Discipline: name, State: StateNormal, TimeoutMs: t, EffectiveTimeoutMs: t}
}

// newDiscipline makes the discipline called name ("" is
// DefaultDiscipline) for a queue timeout of timeout.
func newDiscipline(name string, timeout time.Duration) (discipline, error) {
	switch name {
	case "", DisciplineAdaptive:
		return newAdaptive(timeout), nil
	case DisciplineFIFO:
		return ordered{timeout: timeout}, nil
	case DisciplineLIFO:
		return ordered{newestFirst: true, timeout: timeout}, nil
	}
	return nil, fmt.Errorf("queue discipline %q: want adaptive, fifo or lifo", name)
}
