// Package h1 is the proxy's own HTTP/1.1 server for plain TCP listeners:
// net/http's Server, less what a proxy pays for on every request and never
// uses.
//
// It parses requests with net/http (http.ReadRequest, and the server's own
// checks of the Host and of header names and values), calls an
// http.Handler, and frames the response as net/http does (Content-Length
// when the length is known or the body fits the first write, else chunked;
// none for HEAD, 1xx, 204 and 304; trailers; Date; Content-Type sniffed;
// keep-alive and Connection: close, HTTP/1.0 included). The handler gets
// the same ResponseWriter abilities: Flush, Hijack, and, through
// http.ResponseController, read and write deadlines and full duplex.
//
// What it leaves out is net/http's per-request background read: net/http
// reads the connection on a second goroutine for the whole of every
// request, only to cancel the request's context if the client goes. Here
// the request's context starts watching the connection when somebody waits
// on it (Done, as the proxy's queue does), and Err looks at the socket
// (a peek, no read) once a request has run for a while; a request that is
// answered quickly costs neither. The other savings: one write buffer per
// connection flushed with writev, the response headers written from the
// handler's map without a copy, the Date formatted once a second.
//
// TLS and HTTP/2 stay with net/http.
package h1

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.x on listeners. Its fields have net/http's meaning;
// set them before Serve.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the time from a request's first byte to the
	// end of its headers (and, for a new connection, from its accept).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 past it).
	MaxHeaderBytes int
	// ConnContext returns the context of a new connection's requests.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ConnState is called as a connection changes state, as net/http
	// does: StateActive once a request's headers are read.
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog logs handler panics and bad responses (nil: the log package).
	ErrorLog *log.Logger

	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	onShutdown []func()
	shutdown   atomic.Bool
	serving    sync.WaitGroup // Serve's accept loops
}

// Serve accepts connections on ln and serves each on its own goroutine,
// until Shutdown or Close (then it returns http.ErrServerClosed) or an
// accept error that is not temporary.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(&ln, true) {
		return http.ErrServerClosed
	}
	defer s.track(&ln, false)
	var backoff time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("h1: accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(rw)
		if c == nil {
			continue // shutting down: newConn closed it
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track adds or removes a listener; it refuses to add one once the server
// is shutting down.
func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		s.serving.Done()
		return true
	}
	if s.shutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[*net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.serving.Add(1)
	return true
}

// newConn registers an accepted connection, or closes it when the server
// is shutting down.
func (s *Server) newConn(rw net.Conn) *conn {
	c := &conn{srv: s, rwc: rw, born: time.Now()}
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		_ = rw.Close()
		return nil
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.setState(c, http.StateNew)
	return c
}

// forget drops a connection closed or hijacked.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) setState(c *conn, st http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(c.rwc, st)
	}
}

// RegisterOnShutdown calls f (on its own goroutine) when Shutdown begins.
func (s *Server) RegisterOnShutdown(f func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, f)
	s.mu.Unlock()
}

// Shutdown stops the server gracefully: it closes the listeners, then
// closes each connection once it has no request — an idle one at once, a
// busy one when its response is done (that response says Connection:
// close) — and returns when none is left, or with ctx's error.
//
// Unlike net/http's, a request that arrives on an idle connection just
// as the stop begins is served, not dropped: the connection is woken, and
// closes only if nothing came.
func (s *Server) Shutdown(ctx context.Context) error {
	lnErr := s.beginStop() // returned once the connections are done, as net/http
	s.serving.Wait()
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if s.nudgeIdle() == 0 {
			return lnErr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 100*time.Millisecond)
			timer.Reset(wait)
		}
	}
}

// beginStop marks the server as stopping, closes its listeners and starts
// the shutdown hooks.
func (s *Server) beginStop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	for _, f := range s.onShutdown {
		go f()
	}
	s.onShutdown = nil
	return err
}

// nudgeIdle wakes the connections waiting for a request (they close, or
// serve what just came) and returns how many connections are left.
func (s *Server) nudgeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nudge()
	}
	return len(s.conns)
}

// Close closes the listeners and every connection at once, requests in
// flight or not.
func (s *Server) Close() error {
	err := s.beginStop()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.rwc.Close()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}
