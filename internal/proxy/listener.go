package proxy

import (
	"context"

	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// limitListener refuses connections past a limit quickly (a short 503 and a
// close) instead of leaving them in the kernel backlog, and wraps accepted
// connections to learn when each request's first byte arrived.
//
// The limit bounds the requests in progress too, whatever the protocol: an
// HTTP/1 connection carries one at a time, and each HTTP/2 stream in
// progress counts as one more connection (Proxy.ServeHTTP asks openStream),
// so that a few HTTP/2 connections cannot queue thousands of requests.
//
// Under TLS (quiet) a refused connection is closed without a word: a
// plaintext 503 inside what the client takes for a TLS stream would be
// reported as a protocol error, and answering after a handshake would spend
// on an over-limit client the CPU the limit is there to save.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64 // connections
	streams atomic.Int64 // HTTP/2 streams in progress
	refuse  atomic.Uint64
	quiet   atomic.Bool
}

// refusal is written to a connection over the limit. It is a complete
// HTTP/1.1 response so that clients report a 503, not a reset.
var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 38\r\n\r\n503 too many connections, retry later\n")

// Listen listens on addr (TCP) and limits concurrent connections to
// maxConns (0: no limit).
func Listen(addr string, maxConns int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return LimitListener(ln, maxConns), nil
}

// LimitListener wraps ln as Listen does.
func LimitListener(ln net.Listener, maxConns int) net.Listener {
	return &limitListener{Listener: ln, max: int64(maxConns)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.open.Load()+l.streams.Load() >= l.max {
			l.refuse.Add(1)
			if !l.quiet.Load() {
				// The socket's send buffer is empty: this write does not
				// block for long, and the deadline bounds it if the peer is
				// odd.
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(refusal)
			}
			_ = c.Close()
			continue
		}
		l.open.Add(1)
		return &trackedConn{Conn: c, l: l}, nil
	}
}

// openStream counts one more HTTP/2 stream in progress, or reports false
// when the limit is reached.
func (l *limitListener) openStream() bool {
	if l.max <= 0 {
		return true
	}
	if l.open.Load()+l.streams.Add(1) > l.max {
		l.streams.Add(-1)
		l.refuse.Add(1)
		return false
	}
	return true
}

func (l *limitListener) closeStream() {
	if l.max > 0 {
		l.streams.Add(-1)
	}
}

// limitOf finds the limitListener under ln (Listen's, maybe wrapped for the
// PROXY protocol).
func limitOf(ln net.Listener) *limitListener {
	for {
		switch v := ln.(type) {
		case *limitListener:
			return v
		case *proxyproto.Listener:
			ln = v.Listener
		default:
			return nil
		}
	}
}

// trackedConn counts the bytes read and remembers when the current request's
// first byte arrived (HAProxy's %TR starts there, not when Go has parsed the
// headers).
type trackedConn struct {
	net.Conn
	l         *limitListener
	firstByte atomic.Int64 // unix nanos; 0 while idle
	read      atomic.Int64
	mark      int64 // read at the end of the previous request; handler goroutine only
	closeOnce sync.Once

	// For Proxy.Connections: the state (a connState) and the counts it is
	// part of, set by the proxy's http.Server.ConnState hook.
	state  atomic.Int32
	counts atomic.Pointer[connCounts]
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if c.firstByte.Load() == 0 {
			c.firstByte.Store(time.Now().UnixNano())
		}
		c.read.Add(int64(n))
		if connState(c.state.Load()) == connIdle {
			c.wake()
		}
	}
	return n, err
}

// NetConn returns the connection under c: writes and peeks may go to it
// directly (h1 does), c counts only reads.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

type connKey struct{}

// connContext stores the tracked connection in the request context.
// Under TLS (or any wrapper with NetConn) it finds the tracked conn inside.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := trackedOf(c); tc != nil {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

func trackedFrom(ctx context.Context) *trackedConn {
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	return tc
}
