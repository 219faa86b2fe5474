// Package upstream is the proxy's HTTP/1.1 client to the app: a pool of
// kept-alive connections to one address, and exchanges that write a request
// and read its response on the caller's own goroutine.
//
// net/http's Transport runs two goroutines per connection (a read loop and a
// write loop) and hands every request and response between them and the
// caller over channels; it builds an http.Request and an http.Response with
// their header maps for every round trip. A reverse proxy needs none of it:
// the request is written straight from the client's request, the response
// head is read into a list of fields the caller copies once into the
// client's header map, and its body is read by the caller as it sends it on.
//
// What the Transport gave for free is kept, each rule next to its code:
//   - reuse: a connection goes back to the pool only after a complete
//     response body, when neither side said Connection: close, and when the
//     app sent nothing past the body (exchange.go);
//   - an idle connection the app closed is found before it is used (a
//     non-blocking peek, probe_unix.go); a request that cannot be retried
//     takes no connection idle longer than RiskyIdle (50 ms, or half the
//     longest idle time connections were seen to survive), as the app may
//     close one just as the request reaches it; and a request that
//     still meets a dead kept-alive connection is retried once on a fresh
//     one when that is safe: nothing of it was sent, or it is idempotent
//     and its body can be sent again (exchange.go);
//   - framing (request.go, response.go): one framing per message, whatever
//     the client sent: Content-Length or chunked request bodies, Expect:
//     100-continue, trailers; response bodies by Content-Length, chunked or
//     until close, none for HEAD, 1xx, 204 and 304; 1xx answers passed on;
//     hop-by-hop fields dropped both ways; field names and values checked
//     as net/http checks them;
//   - limits: the connect timeout (the dialer), the response header timeout
//     and the size of the app's response head.
package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults, used where a Config field is zero.
const (
	// DefaultConnectTimeout bounds dialing the app.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultExpectContinueTimeout is how long a request with Expect:
	// 100-continue waits for the app's 100 before its body is sent anyway
	// (net/http's Transport in the proxy waited as long).
	DefaultExpectContinueTimeout = time.Second
	// DefaultMaxIdle is the most idle connections kept.
	DefaultMaxIdle = 64
	// DefaultIdleTimeout is how long an idle connection is kept.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultMaxHeaderBytes bounds the app's response head (status line and
	// fields, each 1xx answer on its own): a head past it is an error.
	// Apps send a few hundred bytes; a megabyte is room for any cookie.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultRiskyIdle: see Config.RiskyIdle. Well under any keep-alive
	// timeout apps use (gunicorn 2 s, most servers 5 s and more).
	DefaultRiskyIdle = 50 * time.Millisecond
)

// Config sets up a Pool.
type Config struct {
	// Addr is the app's host:port.
	Addr string
	// Dial makes a connection to Addr. Default: a net.Dialer with
	// ConnectTimeout and TCP keep-alives.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds the default Dial. Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for the response head once the request
	// is written; past it the exchange fails with a timeout error. 0: none.
	HeaderTimeout time.Duration
	// ExpectContinueTimeout: see DefaultExpectContinueTimeout.
	ExpectContinueTimeout time.Duration
	// MaxIdle is the most idle connections kept. Default DefaultMaxIdle.
	MaxIdle int
	// IdleTimeout closes a connection idle longer, when it is next looked
	// at. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes: see DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// RiskyIdle is the longest a kept-alive connection may have been idle
	// to carry a request that cannot be sent twice (not idempotent), until
	// connections are seen to outlive longer idle times (Pool.riskyIdle):
	// past it such a request gets a new connection. An app closes idle
	// connections on its own clock (gunicorn after 2 s), and one may close
	// just as the request reaches it, after the liveness probe: an
	// idempotent request is then sent again, any other would fail. A
	// connection in steady use is idle for far less. Default
	// DefaultRiskyIdle.
	RiskyIdle time.Duration
}

// Pool keeps the idle connections to one app address. Get a connection by
// starting an Exchange; it goes back to the pool at the end of a response
// that leaves it reusable. A Pool is safe for concurrent use.
type Pool struct {
	cfg Config

	mu     sync.Mutex
	idle   []*conn // the most recently used last
	closed bool

	aliveIdle atomic.Int64 // the longest idle time (ns) at which a connection was found open

	now func() time.Time // time.Now; tests move their own clock
}

// New makes a Pool with cfg's zero fields set to their defaults.
func New(cfg Config) *Pool {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.ExpectContinueTimeout <= 0 {
		cfg.ExpectContinueTimeout = DefaultExpectContinueTimeout
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.RiskyIdle <= 0 {
		cfg.RiskyIdle = DefaultRiskyIdle
	}
	return &Pool{cfg: cfg, now: time.Now}
}

// ErrClosed is the error of an exchange started on a closed Pool.
var ErrClosed = errors.New("upstream: connection pool closed")

// Idle is the number of idle connections (tests).
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// CloseIdle closes the idle connections; those in use go on.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// Close closes the idle connections and the pool: a connection given back
// later is closed, and a new exchange fails with ErrClosed. It is what a
// target does once drained.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
}

// get takes the most recently used idle connection that is still open, or
// dials a new one (fresh, or when none is). reused says which. For a risky
// request (one that cannot be sent twice) a connection idle past
// riskyIdle is not taken; it is probed all the same, and put back when
// open, so that what the app keeps alive is learned.
func (p *Pool) get(fresh, risky bool) (*conn, bool, error) {
	for !fresh {
		c, idle, err := p.pop()
		if err != nil {
			return nil, false, err
		}
		if c == nil {
			break
		}
		if idle >= p.cfg.IdleTimeout {
			c.close()
			p.CloseIdle() // the others have been idle longer still
			break
		}
		ok := c.alive(idle)
		if ok && idle >= probeAfter {
			p.noteAlive(idle)
		}
		if ok && risky && idle >= p.riskyIdle() {
			p.pushBack(c)
			break
		}
		if ok {
			return c, true, nil
		}
		c.close() // the app closed it, or sent something unasked
	}
	return p.dial()
}

// pop takes the most recently used idle connection, nil when none is.
func (p *Pool) pop() (*conn, time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, 0, ErrClosed
	}
	n := len(p.idle)
	if n == 0 {
		return nil, 0, nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c, p.now().Sub(c.idleAt), nil
}

// pushBack returns an idle connection that was looked at and not used.
func (p *Pool) pushBack(c *conn) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.cfg.MaxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// riskyIdle is the longest idle time of a connection a risky request
// takes: Config.RiskyIdle, or half the longest idle time at which a
// connection was found open, whichever is longer. Half: an app's
// keep-alive timeout is some way past any idle time it was seen to
// survive, and a connection in use at that timeout is the one to avoid.
// It grows as a loaded proxy's pauses show the app's connections outlive
// them, so that they need not be replaced after each pause.
func (p *Pool) riskyIdle() time.Duration {
	return max(p.cfg.RiskyIdle, time.Duration(p.aliveIdle.Load())/2)
}

// noteAlive records that a connection idle this long was found open.
func (p *Pool) noteAlive(idle time.Duration) {
	for {
		old := p.aliveIdle.Load()
		if int64(idle) <= old || p.aliveIdle.CompareAndSwap(old, int64(idle)) {
			return
		}
	}
}

func (p *Pool) dial() (*conn, bool, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, false, ErrClosed
	}
	nc, err := p.cfg.Dial(context.Background(), "tcp", p.cfg.Addr)
	if err != nil {
		return nil, false, err
	}
	return newConn(nc), false, nil
}

// put gives c back for reuse, or closes it when the pool is full or closed.
// The oldest idle connection past the idle timeout is closed on the way.
func (p *Pool) put(c *conn) {
	c.idleAt = p.now()
	var stale *conn
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg.MaxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	if len(p.idle) > 0 && c.idleAt.Sub(p.idle[0].idleAt) > p.cfg.IdleTimeout {
		stale = p.idle[0]
		p.idle = append(p.idle[:0], p.idle[1:]...)
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	if stale != nil {
		stale.close()
	}
}

// bufSize is the size of a connection's read and write buffers (HAProxy's
// tune.bufsize): a head with a small body goes out in one write, a small
// response comes in one read.
const bufSize = 16 << 10

// conn is one connection to the app with its buffers.
type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	raw    syscall.RawConn // for the liveness probe; nil: not probed
	idleAt time.Time
	sent   int64 // bytes of the current request on the wire
	// deadline: a read deadline may be set (an exchange's header timeout,
	// left in place when its body needed no more reads).
	deadline bool

	peek    func(fd uintptr) bool // c.peekFD, made once
	peekRes int                   // the probe's finding (probe_unix.go)
}

func newConn(nc net.Conn) *conn {
	c := &conn{nc: nc}
	c.br = bufio.NewReaderSize(nc, bufSize)
	c.bw = bufio.NewWriterSize(countingWriter{c}, bufSize)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peek = c.peekFD
		}
	}
	return c
}

func (c *conn) close() { _ = c.nc.Close() }

// countingWriter counts what reaches the connection, so that a failed
// exchange knows whether anything of its request was sent.
type countingWriter struct{ c *conn }

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.c.nc.Write(b)
	w.c.sent += int64(n)
	return n, err
}
