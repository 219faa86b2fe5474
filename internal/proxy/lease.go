package proxy

import (
	"sync/atomic"
	"time"
)

// lease is what an admitted request holds on its target: a worker slot and
// an in-flight reference (the queued path), or the reference alone (the
// health path, and an upgraded connection once the app has answered 101).
//
// The slot follows the app's work, not the client's patience: it is held
// until the app is done with the request (its response read whole, or the
// upstream connection closed), whether or not the client is still there.
// The reference keeps the target's drain waiting as long as the request
// uses the target at all.
//
// A lease belongs to the request's handler goroutine; release may be called
// any number of times.
type lease struct {
	adm    *admission
	t      *Target
	slot   bool          // holds one of t's worker slots
	since  time.Time     // when it got the slot
	ref    bool          // holds an in-flight reference on t
	health *atomic.Int32 // set: counted among the health-path bypasses
}

// upgraded gives back the slot of a request the app switched to another
// protocol (a WebSocket): it may last for hours, outside the app's request
// workers. The reference stays until the connection closes.
func (l *lease) upgraded() {
	if l.slot {
		l.slot = false
		l.adm.releaseSlot(l.t, l.since)
	}
}

// release gives back whatever the lease still holds.
func (l *lease) release() {
	switch {
	case l.slot:
		l.adm.release(l.t, l.since) // the slot and the reference, together
	case l.ref:
		l.t.release()
	}
	if l.health != nil {
		l.health.Add(-1)
	}
	*l = lease{}
}

// healthGate caps the health-path requests that skip the queue.
type healthGate struct {
	max int32 // 0: none skip
	n   atomic.Int32
}

// enter takes one of the places, or reports false when all are taken.
func (g *healthGate) enter() bool {
	for {
		n := g.n.Load()
		if n >= g.max {
			return false
		}
		if g.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}
