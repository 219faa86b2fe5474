package h1

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// probeEvery is how long a request runs before Err looks at the socket
// (and how often it looks again). A look is a system call, about 1 µs: a
// request answered quicker than this is not worth it, and a client that
// left it is found out when its response is written.
const probeEvery = 10 * time.Millisecond

// clock is the zero of the probes' monotonic times.
var clock = time.Now()

// reqCtx is a request's context: the connection's values, and an end that
// comes when the client goes or the handler returns. Whether the client
// went is learned only when asked: Done starts a read of the connection
// that ends the context if the client closes (what net/http does for every
// request), and Err peeks at the socket once the request has run a while.
//
// The parent (the connection's context) is never cancelled, so reqCtx
// carries its values only.
type reqCtx struct {
	context.Context
	c *conn

	mu       sync.Mutex
	done     chan struct{} // made by the first Done
	canceled atomic.Bool
	probed   atomic.Int64 // clock time of the start, then of the last probe
}

func newReqCtx(c *conn) *reqCtx {
	x := &reqCtx{Context: c.ctx, c: c}
	x.probed.Store(int64(time.Since(clock)))
	return x
}

func (x *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (x *reqCtx) Done() <-chan struct{} {
	x.mu.Lock()
	start := x.done == nil
	if start {
		x.done = make(chan struct{})
		if x.canceled.Load() {
			close(x.done)
			start = false
		}
	}
	if start {
		// Under x.mu: end, which cancels under it too, then finds the
		// watch running and stops it.
		x.c.cr.watch.start(x.c, x)
	}
	d := x.done
	x.mu.Unlock()
	return d
}

func (x *reqCtx) Err() error {
	if x.canceled.Load() {
		return context.Canceled
	}
	if x.c.cr.watch.running.Load() {
		return nil // the watch will tell
	}
	now := int64(time.Since(clock))
	last := x.probed.Load()
	if now-last < int64(probeEvery) || !x.probed.CompareAndSwap(last, now) {
		return nil
	}
	// Under x.mu: the request cannot end (end cancels under it first), so
	// the connection is still this request's while the socket is looked at.
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.canceled.Load() {
		return context.Canceled
	}
	if x.c.cr.watch.running.Load() || !x.c.gone() {
		return nil
	}
	x.cancelLocked()
	return context.Canceled
}

func (x *reqCtx) cancel() {
	x.mu.Lock()
	x.cancelLocked()
	x.mu.Unlock()
}

func (x *reqCtx) cancelLocked() {
	if !x.canceled.Swap(true) && x.done != nil {
		close(x.done)
	}
}

// end is called when the handler has returned: the context ends and the
// watch, if any, is stopped and waited for.
func (x *reqCtx) end() {
	x.cancel()
	x.c.cr.watch.stop(x.c)
}

// quiet reports whether nobody reads the connection now, so that a watch
// or a peek would not take a byte of a request body or the next request:
// the body is read to its end (or there is none) and nothing of a next
// request is buffered.
func (c *conn) quiet() bool {
	b := c.w.body
	return !c.hijacked.Load() && (b == nil || b.eof.Load()) && c.br.Buffered() == 0
}

// gone peeks at the socket: it reports true when the client has closed its
// side or reset the connection.
func (c *conn) gone() bool {
	if c.raw == nil || !c.quiet() {
		return false
	}
	var gone bool
	_ = c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = err == nil && n == 0 || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true
	})
	return gone
}

// watch is a read of the connection on its own goroutine while a handler
// runs, to learn that the client left. Its owner is the connection's
// goroutine, which stops it and waits for it when the request ends.
type watch struct {
	running  atomic.Bool
	mu       sync.Mutex
	stopping bool
	done     chan struct{}
	hasByte  bool // the watch read a byte: the next request's, kept
	b        [1]byte
}

// start begins watching for x, when nobody else reads the connection.
// The caller holds x.mu, and x has not ended.
func (w *watch) start(c *conn, x *reqCtx) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running.Load() || w.hasByte || !c.quiet() {
		return
	}
	w.running.Store(true)
	w.done = make(chan struct{})
	go w.read(c, x)
}

func (w *watch) read(c *conn, x *reqCtx) {
	defer close(w.done)
	n, err := c.rwc.Read(w.b[:])
	w.mu.Lock()
	stopped := w.stopping
	if n == 1 {
		w.hasByte = true
	}
	w.mu.Unlock()
	var ne net.Error
	if err != nil && !stopped && !(errors.As(err, &ne) && ne.Timeout()) {
		x.cancel() // the client closed or reset the connection
	}
}

// stop ends a watch and waits for its goroutine.
func (w *watch) stop(c *conn) {
	if !w.running.Load() {
		return
	}
	w.mu.Lock()
	w.stopping = true
	done := w.done
	w.mu.Unlock()
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	<-done
	_ = c.rwc.SetReadDeadline(time.Time{})
	w.mu.Lock()
	w.stopping = false
	w.running.Store(false)
	w.mu.Unlock()
}

// takeByte returns the byte a watch read, if it read one.
func (w *watch) takeByte() (byte, bool) {
	if !w.hasByte {
		return 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.b[0], w.hasByte
	w.hasByte = false
	return b, ok
}
