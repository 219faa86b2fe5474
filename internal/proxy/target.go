package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/internal/proxy/upstream"
)

// Target is one upstream: an app container's HTTP address and the number of
// requests it may serve at once. A Target is immutable once made; switching
// to another version of the app makes a new Target, so that the old one's
// in-flight count can be drained while the new one serves.
type Target struct {
	id      string
	addr    string
	workers int

	// busy is the number of worker slots in use. Guarded by the admission
	// lock, because handing a slot to a waiter must be atomic with the check.
	busy int

	// inflight counts every request using the target: those holding a
	// worker slot, health-path ones (which skip the queue) and upgraded
	// connections (WebSockets, which gave their slot back). Drain waits
	// for it to reach 0. A request leaves once the app is done with it:
	// with response buffering before the client has the response, and
	// when the client left, once the app has answered anyway.
	inflight atomic.Int64
	retired  atomic.Bool
	drained  chan struct{}
	drainMu  sync.Once

	// down makes requests fail fast with 502 (the container died) instead of
	// waiting for a dial timeout.
	down atomic.Bool

	// paused keeps the target's worker slots from being handed out while its
	// container is being brought back (SetPaused): requests wait in the
	// queue. Guarded by the admission lock, as busy is.
	paused bool
	// pausedNow mirrors paused for readers outside the admission lock.
	pausedNow atomic.Bool
	adm       *admission

	// The upgraded connections open on the target (upgrade.go).
	upgraded connSet[*upgradedConn]

	up      *upstream.Pool         // the lean client's connections (exchange.go)
	rp      *httputil.ReverseProxy // WebSocket handshakes (upgrade.go)
	tr      *http.Transport        // rp's own, until a test puts another in rp
	conns   upstreamConns          // its connections to the app, both kinds
	stats   *Stats
	windows *windowSet // sampled by the proxy's sampler
}

// lean reports whether plain requests take the lean client: always, but in
// tests that answer from memory through rp's Transport.
func (t *Target) lean() bool { return t.rp.Transport == t.tr }

// InFlight is the number of requests currently using the target.
func (t *Target) InFlight() int64 { return t.inflight.Load() }

// Stats are the target's own counters.
func (t *Target) Stats() *Stats { return t.stats }

// SetDown marks the target as dead (down=true): its requests get a 502 at
// once. It is set by whoever watches the container, e.g. on a Docker "die".
func (t *Target) SetDown(down bool) { t.down.Store(down) }

// SetPaused holds (true) or lets go (false) the target's worker slots.
// While it is paused, requests for the target wait in the queue, up to the
// queue timeout or until another target is switched in, instead of being
// sent to it: for a container that died and is being restarted, where they
// would get a 502 at once. Letting go hands the free slots to the waiting
// requests (which get a 502 at once if the target is down by then).
// Requests already admitted and health checks that skip the queue are not
// affected.
func (t *Target) SetPaused(paused bool) { t.adm.pause(t, paused) }

// release drops one in-flight reference and wakes a drain waiting for zero.
func (t *Target) release() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		t.drainMu.Do(func() { close(t.drained) })
	}
}

// retire marks the target as no longer active; from now on reaching zero
// in-flight requests signals Drained.
func (t *Target) retire() {
	t.retired.Store(true)
	if t.inflight.Load() == 0 {
		t.drainMu.Do(func() { close(t.drained) })
	}
}

// WaitDrained waits until the target has been replaced and has no request in
// flight, or until ctx ends; it returns ctx's error in that case. Idle
// upstream connections are closed once drained. Open WebSockets count as in
// flight: CloseUpgraded ends them rather than waiting.
func (t *Target) WaitDrained(ctx context.Context) error {
	select {
	case <-t.drained:
		t.tr.CloseIdleConnections()
		t.up.Close()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
