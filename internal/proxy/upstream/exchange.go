package upstream

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Exchange is one request and its response over a connection of a Pool,
// run on the caller's goroutine: Send writes the request and reads the
// response head, Read reads the body, Close ends it. An Exchange may be
// reused for another request once closed; its zero value is ready.
//
// Fields, TrailerNames and Trailer are valid until the next Send.
type Exchange struct {
	// The final response head, once Send has returned nil.
	Status int
	// Fields are its end-to-end fields in the app's order, names in
	// canonical form. Content-Length is among them when the app framed
	// the body with it (or sent one with HEAD, 204 or 304).
	Fields []Field
	// ContentLength is the body's length, -1 when it is chunked or runs
	// until the app closes.
	ContentLength int64
	// TrailerNames are the trailer fields the app announced (Trailer).
	TrailerNames []string
	// Trailer holds the trailer fields that came after a chunked body,
	// once Read has returned io.EOF.
	Trailer []Field

	pool    *Pool
	req     *Request
	c       *conn
	h       head
	kind    bodyKind
	left    int64     // of a Content-Length body
	chunks  io.Reader // of a chunked body
	keep    bool      // the connection may carry another request after this one
	gotByte bool      // some of the response came
	unsent  bool      // the app answered before its 100 Continue: the body was never sent
	// finalRead: awaitContinue read the final head already.
	finalRead bool
	read      int // bytes of the head being read
	body      bodyReader

	// The body writer goroutine (for bodies not sent with the head).
	writing  bool
	wrote    chan error
	sent     atomic.Bool // the body writer has written the whole body
	writeErr error       // the writer's, once waited for
	headMu   sync.Mutex
	headDone bool // the final head is in: the writer must not set a deadline

	scratch []byte
	spans   []span
	raw     []Field
}

// connError is a failure of the connection to the app, as opposed to one
// of the request (a bad field) or of the client's body. early: nothing of
// the response had come.
type connError struct {
	err   error
	early bool
}

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// Send writes req to the app over a pooled connection (or a new one) and
// reads the response head, passing 1xx answers to req.Informational. When
// the connection was a kept-alive one that turns out dead before any of the
// response came, the request is sent again once, on a new connection, if
// that is safe: nothing of it reached the app, or it is idempotent; and its
// body, if it has one, is untouched or can be had again (GetBody). On error
// the exchange is closed already.
func (p *Pool) Send(x *Exchange, req *Request) error {
	x.reset(p, req)
	fresh, risky := false, !req.idempotent()
	for {
		c, reused, err := p.get(fresh, risky)
		if err != nil {
			return err
		}
		err = x.try(c)
		if err == nil {
			return nil
		}
		x.abort() // waits for the body writer: then c.sent is still
		var be *BodyError
		if errors.As(x.writeErr, &be) {
			return be // the client's body failed, and so the exchange
		}
		sent := c.sent
		if !reused || fresh || !x.retryable(err, sent) {
			return err
		}
		if x.body.touched {
			rc, gerr := req.GetBody()
			if gerr != nil {
				return err
			}
			x.body.reset(rc)
		}
		fresh = true
	}
}

func (x *Exchange) reset(p *Pool, req *Request) {
	x.pool, x.req, x.Status, x.ContentLength, x.writeErr = p, req, 0, -1, nil
	x.Trailer = x.Trailer[:0]
	x.body.reset(req.Body)
	if x.wrote == nil {
		x.wrote = make(chan error, 1)
	}
}

// retryable says whether a failed try may be made again (see Send).
func (x *Exchange) retryable(err error, sent int64) bool {
	var ce *connError
	if !errors.As(err, &ce) || !ce.early {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false // the app has the request and is slow: a 504, not a retry
	}
	if x.body.touched && x.req.GetBody == nil {
		return false
	}
	return sent == 0 || x.req.idempotent()
}

// try runs the exchange on c up to the final response head.
func (x *Exchange) try(c *conn) error {
	x.c, c.sent, x.gotByte, x.headDone, x.unsent = c, 0, false, false, false
	req := x.req
	if err := req.writeHead(c.bw); err != nil {
		return err
	}
	switch {
	case req.inline(c.bw):
		x.body.touched = true
		if err := req.writeInline(c.bw, &x.body); err != nil {
			return x.writeError(err)
		}
		x.headerDeadline()
	case req.Body == nil:
		if err := c.bw.Flush(); err != nil {
			return &connError{err, true}
		}
		x.headerDeadline()
	default:
		if err := c.bw.Flush(); err != nil {
			return &connError{err, true}
		}
		if c.deadline { // the last exchange's: the head waits for the body first
			_ = c.nc.SetReadDeadline(time.Time{})
			c.deadline = false
		}
		if err := x.sendBody(); err != nil {
			return err
		}
	}
	return x.readFinal()
}

// writeError names a failed write: the client's body, or the connection.
func (x *Exchange) writeError(err error) error {
	if x.body.err != nil {
		return &BodyError{x.body.err}
	}
	if errors.Is(err, errBodyLength) {
		return err
	}
	return &connError{err, true}
}

// sendBody starts the body writer, after the app's 100 Continue when the
// client asked for it (or after the wait for it), unless the app has given
// its final answer already: then the body is not sent, and the connection
// is not reused (the app may or may not read a body that never comes).
func (x *Exchange) sendBody() error {
	if x.req.expectsContinue() {
		final, err := x.awaitContinue()
		if err != nil {
			return err
		}
		if final {
			x.unsent = true
			return nil
		}
	}
	x.body.touched = true
	x.writing = true
	c, w, d := x.c, x.wrote, x.pool.cfg.HeaderTimeout
	x.sent.Store(false)
	go func() {
		err := x.req.writeBody(c.bw, &x.body)
		if err == nil {
			x.sent.Store(true)
			x.headerDeadlineOn(c, d)
		} else {
			err = x.writeError(err)
			c.close() // the head cannot come whole: stop its reader
		}
		w <- err
	}()
	return nil
}

// awaitContinue reads answers until the app's 100 Continue (false), its
// final answer (true), or the expect-continue timeout (false: the body is
// sent anyway, as net/http's Transport does).
func (x *Exchange) awaitContinue() (final bool, err error) {
	c := x.c
	_ = c.nc.SetReadDeadline(time.Now().Add(x.pool.cfg.ExpectContinueTimeout))
	for n := 0; ; n++ {
		err := x.readHead()
		var ne net.Error
		if err != nil && !x.gotByte && errors.As(err, &ne) && ne.Timeout() {
			_ = c.nc.SetReadDeadline(time.Time{})
			return false, nil
		}
		if err != nil {
			return false, x.readError(err)
		}
		switch {
		case x.Status == 100:
			_ = c.nc.SetReadDeadline(time.Time{})
			return false, nil
		case x.Status >= 200 || x.Status == 101:
			_ = c.nc.SetReadDeadline(time.Time{})
			x.finalRead = true
			return true, nil
		case n >= max1xx:
			return false, errTooMany1xx
		}
		if err := x.informational(); err != nil {
			return false, err
		}
	}
}

// headerDeadline starts the wait for the response head, once the request
// is written whole.
func (x *Exchange) headerDeadline() { x.headerDeadlineOn(x.c, x.pool.cfg.HeaderTimeout) }

// headerDeadlineOn is headerDeadline for the body writer, which gets c and
// d from the goroutine that started it: it must not read x.c or x.pool, as
// the exchange may be closing (abort clears x.c) while it ends.
func (x *Exchange) headerDeadlineOn(c *conn, d time.Duration) {
	if d <= 0 {
		return
	}
	x.headMu.Lock()
	if !x.headDone {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
		c.deadline = true
	}
	x.headMu.Unlock()
}

// moreToRead reports whether the body needs reads from the connection.
func (x *Exchange) moreToRead() bool {
	switch x.kind {
	case bodyNone:
		return false
	case bodyLength:
		return int64(x.c.br.Buffered()) < x.left
	}
	return true
}

// readFinal reads heads until the final one, passing 1xx answers on, and
// prepares the body.
func (x *Exchange) readFinal() error {
	for n := 0; !x.finalRead; n++ {
		if err := x.readHead(); err != nil {
			return x.readError(err)
		}
		if x.Status >= 200 || x.Status == 101 {
			break
		}
		if n >= max1xx {
			return errTooMany1xx
		}
		if x.Status == 100 {
			continue // the answer to Expect, or an app's habit: nobody waits for it
		}
		if err := x.informational(); err != nil {
			return err
		}
	}
	x.finalRead = false
	if err := x.frame(x.req.Method); err != nil {
		return err
	}
	x.keep = x.keep && !x.unsent
	x.headMu.Lock()
	x.headDone = true
	if x.c.deadline && x.moreToRead() {
		// The body has no time limit. A body already in the buffer needs
		// no more reads: the deadline stays until the next exchange sets
		// its own (one timer change less per request).
		_ = x.c.nc.SetReadDeadline(time.Time{})
		x.c.deadline = false
	}
	x.headMu.Unlock()
	return nil
}

func (x *Exchange) informational() error {
	if x.req.Informational == nil {
		return nil
	}
	return x.req.Informational(x.Status, x.raw)
}

// readError marks a failure to read the response head as the connection's,
// early when nothing of the response came.
func (x *Exchange) readError(err error) error {
	var ce *connError
	if errors.Is(err, errHeadTooLarge) || errors.As(err, &ce) {
		return err
	}
	if x.gotByte {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &connError{err, false}
	}
	return &connError{err, true}
}

// Read reads the response body; io.EOF at its end, which leaves the
// connection in the pool when it may carry another request.
func (x *Exchange) Read(p []byte) (int, error) {
	if x.c == nil {
		return 0, io.EOF
	}
	var n int
	var err error
	switch x.kind {
	case bodyNone:
		err = io.EOF
	case bodyLength:
		if int64(len(p)) > x.left {
			p = p[:x.left]
		}
		n, err = x.c.br.Read(p)
		x.left -= int64(n)
		switch {
		case x.left == 0:
			err = io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = x.chunks.Read(p)
		if err == io.EOF {
			if terr := x.readTrailer(); terr != nil {
				err = terr
			}
		}
	case bodyClose:
		n, err = x.c.br.Read(p)
	}
	if err == io.EOF {
		x.finish()
	}
	return n, err
}

// finish puts the connection back in the pool when the response leaves it
// reusable: both sides keep it alive, the request went out whole, and the
// app sent nothing past the body. Any other is closed.
func (x *Exchange) finish() {
	c := x.c
	reuse := x.keep && c.br.Buffered() == 0
	if x.writing {
		switch {
		case x.sent.Load():
			// The whole body is out; the writer is only about to say so.
			// Always wait for it (not only when reuse is still true): its
			// word must not be left for the next exchange to read.
			x.writing = false
			werr := <-x.wrote
			reuse = reuse && werr == nil
		default:
			select {
			case err := <-x.wrote:
				x.writing = false
				reuse = reuse && err == nil
			default:
				reuse = false // the app answered before it had the whole body
			}
		}
	}
	if !reuse {
		x.abort()
		return
	}
	x.c = nil
	x.pool.put(c)
}

// Close ends the exchange; a response not read to its end closes the
// connection. It waits for the body writer, if one is still running.
func (x *Exchange) Close() {
	if x.c != nil {
		x.abort()
	}
}

// abort closes the connection and waits for the body writer, making a
// client body read in progress return.
func (x *Exchange) abort() {
	if x.c != nil {
		x.c.close()
		x.c = nil
	}
	if !x.writing {
		return
	}
	select {
	case x.writeErr = <-x.wrote:
	default:
		// Only a read of the client's body that is blocked now is cut
		// short: one that has ended, or will end on its own, must not be
		// (the client's connection would be lost with it).
		if x.req.AbortBody != nil && x.body.waiting() {
			x.req.AbortBody()
		}
		x.writeErr = <-x.wrote
	}
	x.writing = false
}

// bodyReader is the request body as the exchange reads it: whether it was
// read at all, and the body's own error (the client's), told apart from
// the connection's.
type bodyReader struct {
	r       io.Reader
	touched bool
	err     error
	// reading is set while a Read is in progress that has not seen the
	// body's end: the writer goroutine sets it, abort reads it.
	reading atomic.Bool
	ended   atomic.Bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.reading.Store(true)
	n, err := b.r.Read(p)
	if err != nil {
		b.ended.Store(true)
		if err != io.EOF {
			b.err = err
		}
	}
	b.reading.Store(false)
	return n, err
}

func (b *bodyReader) reset(r io.Reader) {
	b.r, b.touched, b.err = r, false, nil
	b.reading.Store(false)
	b.ended.Store(false)
}

// waiting reports whether a Read is blocked before the body's end.
func (b *bodyReader) waiting() bool { return b.reading.Load() && !b.ended.Load() }

// BodyError is a failure to read the request body (the client's), as
// opposed to one of the connection to the app.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "request body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }
