package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
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
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track wraps srv.ConnState to count srv's fresh connections.
func (f *freshConns) track(srv *http.Server) {
	f.conns = map[net.Conn]struct{}{}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		f.mu.Lock()
		if s == http.StateNew {
			f.conns[c] = struct{}{}
		} else {
			delete(f.conns, c)
		}
		f.mu.Unlock()
		if prev != nil {
			prev(c, s)
		}
	}
}

// await waits until no connection is fresh, or for d.
func (f *freshConns) await(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
