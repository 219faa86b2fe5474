package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// awaitUpgrades is the end of a graceful stop: net/http's Shutdown does not
// wait for hijacked connections, so the WebSockets still open wait here
// until their clients or apps close them, or ctx ends; those still open
// then are closed. It returns how many it closed.
func (s *targetSet) awaitUpgrades(ctx context.Context) int {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		list := append([]*Target(nil), s.list...)
		s.mu.Unlock()
		open := 0
		for _, t := range list {
			open += t.openUpgrades()
		}
		if open == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			closed := 0
			for _, t := range list {
				closed += t.upgraded.closeAll(true)
			}
			return closed
		case <-tick.C:
		}
	}
}

// acceptGrace bounds how long a graceful stop waits, once it stopped
// accepting, for connections just accepted to send their request.
const acceptGrace = time.Second

// freshConns counts a server's connections accepted whose first request
// has not been read yet (http.StateNew). net/http's Shutdown drops a
// request it reads after the shutdown began, closing the connection
// without an answer (the client gets EOF); so a graceful stop first stops
// accepting, then waits for these to be read (ServeUntil). Without this,
// the last connections the old process accepts in an upgrade would fail.
type freshConns struct {
	n     atomic.Int64 // len(conns), read without the lock
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// wrap returns prev (a ConnState hook, or nil) counting fresh connections
// first. A connection leaves the count at its first change of state; once
// none is fresh the hook costs an atomic load.
func (f *freshConns) wrap(prev func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	f.conns = map[net.Conn]struct{}{}
	return func(c net.Conn, s http.ConnState) {
		if s == http.StateNew || f.n.Load() > 0 {
			f.mu.Lock()
			if s == http.StateNew {
				f.conns[c] = struct{}{}
			} else {
				delete(f.conns, c)
			}
			f.n.Store(int64(len(f.conns)))
			f.mu.Unlock()
		}
		if prev != nil {
			prev(c, s)
		}
	}
}

// await waits until no connection is fresh, or for d.
func (f *freshConns) await(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f.n.Load() == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
