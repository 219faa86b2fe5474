package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// What a connection is doing, for Shutdown's nudge.
const (
	phaseBusy   = iota // reading a request or serving one
	phaseWait          // waiting for a request's first byte
	phaseNudged        // woken by Shutdown while waiting
)

// maxPostHandlerReadBytes is how much of a request body the handler left
// unread is read and dropped to keep the connection (net/http's figure).
const maxPostHandlerReadBytes = 256 << 10

// lingerTimeout bounds the wait for the client's close after a response
// whose request body was not all read: closing at once could reset the
// connection under the response (net/http's rstAvoidanceDelay).
const lingerTimeout = 500 * time.Millisecond

// noLimit is connReader.remain when nothing is bounded.
const noLimit = 1<<63 - 1

// aLongTimeAgo is a deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection, served by its own goroutine.
type conn struct {
	srv        *Server
	rwc        net.Conn
	tcp        *net.TCPConn    // under rwc, for writev and CloseWrite (nil: none)
	raw        syscall.RawConn // under rwc, for peeks (nil: none)
	born       time.Time
	remoteAddr string
	ctx        context.Context // ConnContext's: values for every request

	cr  connReader
	br  *bufio.Reader
	out outBuf
	w   response // reused by each request in turn
	cur *reqCtx  // the request in flight (conn goroutine only)

	mu    sync.Mutex // guards phase
	phase int

	lastMethod string
	keys       []string // the response's field names, sorted (reused)
	declared   []string // its declared trailers (reused)
	dateSec    int64
	date       []byte
	hijacked   atomic.Bool
}

func (c *conn) serve() {
	s := c.srv
	defer c.end()
	c.remoteAddr = c.rwc.RemoteAddr().String()
	c.ctx = context.Background()
	if s.ConnContext != nil {
		c.ctx = s.ConnContext(c.ctx, c.rwc)
	}
	c.tcp, c.raw = unwrap(c.rwc)
	c.cr.c, c.cr.remain = c, noLimit
	c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	c.out.init(c.rwc, c.tcp)
	c.w.pending = make([]byte, 0, bufferBeforeChunking)
	for first := true; ; first = false {
		if !c.await(first) {
			return
		}
		req, err := c.readRequest()
		s.setState(c, http.StateActive) // bytes came (await), as net/http counts
		if err != nil {
			c.refuse(err)
			return
		}
		if !c.serveRequest(req) {
			return
		}
		s.setState(c, http.StateIdle)
	}
}

// end closes the connection (unless hijacked), after a handler's panic
// too: the panic is logged, the response cut short.
func (c *conn) end() {
	if v := recover(); v != nil && v != http.ErrAbortHandler {
		buf := make([]byte, 64<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.srv.logf("h1: panic serving %s: %v\n%s", c.remoteAddr, v, buf)
	}
	if x := c.cur; x != nil {
		c.cur = nil
		x.end()
	}
	if c.hijacked.Load() {
		return
	}
	if c.w.committed {
		c.w.disableContinue()
		c.out.flush() // what the handler sent before it panicked
	}
	_ = c.rwc.Close()
	c.srv.forget(c)
	c.srv.setState(c, http.StateClosed)
}

// unwrap finds the TCP connection under c, through wrappers that forward
// reads and writes unchanged (NetConn). A PROXY protocol connection is
// not such a wrapper for writes, but its Raw socket serves the peeks.
func unwrap(c net.Conn) (*net.TCPConn, syscall.RawConn) {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			raw, err := v.SyscallConn()
			if err != nil {
				return v, nil
			}
			return v, raw
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ Raw() net.Conn }:
			if tcp, ok := v.Raw().(*net.TCPConn); ok {
				raw, _ := tcp.SyscallConn()
				return nil, raw
			}
			return nil, nil
		default:
			return nil, nil
		}
	}
}

// await waits for a request's first byte: up to the header timeout on a
// new connection, the idle timeout on a kept-alive one. It reports false
// when the connection is to close: nothing came, or the server stops.
func (c *conn) await(first bool) bool {
	s := c.srv
	if c.br.Buffered() > 0 { // pipelined: the request is here
		c.setDeadline(s.ReadHeaderTimeout)
		return true
	}
	if first {
		if s.ReadHeaderTimeout > 0 {
			_ = c.rwc.SetReadDeadline(c.born.Add(s.ReadHeaderTimeout))
		}
	} else {
		if s.shutdown.Load() {
			return false
		}
		c.setDeadline(s.IdleTimeout)
	}
	c.mu.Lock()
	c.phase = phaseWait
	c.mu.Unlock()
	_, err := c.br.Peek(1)
	c.mu.Lock()
	nudged := c.phase == phaseNudged
	c.phase = phaseBusy
	c.mu.Unlock()
	if err != nil {
		return false
	}
	if !first || nudged {
		c.setDeadline(s.ReadHeaderTimeout)
	}
	return true
}

func (c *conn) setDeadline(d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	_ = c.rwc.SetReadDeadline(t)
}

// nudge wakes the connection if it waits for a request (Shutdown).
func (c *conn) nudge() {
	c.mu.Lock()
	if c.phase == phaseWait {
		c.phase = phaseNudged
		_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
}

// statusError is a request refused with a status and a reason.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return strconv.Itoa(e.code) + " " + e.text }

func badRequest(text string) error { return statusError{http.StatusBadRequest, text} }

var errTooLarge = errors.New("h1: request headers too large")

// readRequest reads and checks a request's line and headers, as
// net/http's server does.
func (c *conn) readRequest() (*http.Request, error) {
	max := c.srv.MaxHeaderBytes
	if max <= 0 {
		max = http.DefaultMaxHeaderBytes
	}
	c.cr.remain = int64(max) + 4096 // net/http's slack for bufio's read-ahead
	if c.lastMethod == http.MethodPost {
		// Some old clients send a CRLF after a POST body.
		peek, _ := c.br.Peek(4)
		_, _ = c.br.Discard(leadingCRLF(peek))
	}
	// The head as buffered now: when it is all here (the usual case),
	// ReadRequest reads it without refilling, so it is intact after.
	pre, _ := c.br.Peek(c.br.Buffered())
	reads := c.cr.reads
	req, err := http.ReadRequest(c.br)
	if err != nil {
		if c.cr.hitLimit {
			return nil, errTooLarge
		}
		return nil, err
	}
	c.cr.remain = noLimit
	c.lastMethod = req.Method
	if req.ProtoMajor != 1 {
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	if c.cr.reads != reads {
		pre = nil // the buffer was refilled: pre may hold other bytes now
	}
	if err := checkHost(req, pre); err != nil {
		return nil, err
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, badRequest("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, badRequest("invalid header value")
			}
		}
	}
	_ = c.rwc.SetReadDeadline(time.Time{})
	return req, nil
}

// checkHost applies net/http's rules: an HTTP/1.1 request but CONNECT
// needs a Host field (an empty one is valid), and its value must be valid.
// http.ReadRequest removes the field; whether it was there is read from
// the head's bytes when they were all buffered, else an empty Host counts
// as missing.
func checkHost(req *http.Request, pre []byte) error {
	if req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect &&
		(req.Host == "" || !strings.HasPrefix(req.RequestURI, "/")) {
		present, known := hostField(pre)
		if known && !present || !known && req.Host == "" {
			return badRequest("missing required Host header")
		}
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return badRequest("malformed Host header")
	}
	return nil
}

// hostField reports whether the request head in b has a Host field, and
// whether b holds all of the head (else it cannot tell).
func hostField(b []byte) (present, known bool) {
	first := true
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false, false
		}
		line := bytes.TrimSuffix(b[:i], []byte("\r"))
		b = b[i+1:]
		switch {
		case first:
			first = false
		case len(line) == 0:
			return present, true
		case len(line) >= 5 && bytes.EqualFold(line[:5], []byte("host:")):
			present = true
		}
	}
	return false, false
}

func leadingCRLF(b []byte) int {
	n := 0
	for _, c := range b {
		if c != '\r' && c != '\n' {
			break
		}
		n++
	}
	return n
}

const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// refuse answers a request that could not be read, as net/http does: a
// closed or timed-out connection gets nothing, a bad request its status.
func (c *conn) refuse(err error) {
	if isCommonNetReadError(err) {
		return
	}
	var status, body string
	var se statusError
	switch {
	case errors.Is(err, errTooLarge):
		status = "431 Request Header Fields Too Large"
		body = status
	case errors.As(err, &se):
		status = strconv.Itoa(se.code) + " " + http.StatusText(se.code) + ": " + se.text
		body = status
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		// The value is not echoed: it came from the client.
		status, body = "501 Not Implemented", "Unsupported transfer encoding"
	default:
		status = "400 Bad Request"
		body = status
	}
	_ = c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.rwc, "HTTP/1.1 "+status+errorHeaders+body)
	c.lingerClose()
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// lingerClose half-closes the connection and reads what the client still
// sends until it closes too (or for lingerTimeout), so that the kernel
// does not reset the connection under the response.
func (c *conn) lingerClose() {
	if c.tcp == nil {
		return
	}
	_ = c.tcp.CloseWrite()
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c.rwc, 1<<20)
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection may serve another request.
func (c *conn) serveRequest(req *http.Request) bool {
	w := &c.w
	x := newReqCtx(c)
	c.cur = x
	req = req.WithContext(x)
	req.RemoteAddr = c.remoteAddr
	w.reset(c, req)
	var h http.Handler = c.srv.Handler
	switch {
	case req.RequestURI == "*" && req.Method == http.MethodOptions:
		h = optionsHandler{}
	case expectsContinue(req):
		if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
			w.expect = true
			w.canContinue.Store(true)
		}
	case len(req.Header["Expect"]) > 0:
		// RFC 9110 10.1.1: an expectation the server cannot meet.
		h = expectationFailed{}
	}
	h.ServeHTTP(w, req)
	c.cur = nil
	x.end()
	if c.hijacked.Load() {
		return false
	}
	w.finish()
	keep := c.keep(w)
	if w.body != nil {
		w.body.closed.Store(true) // a late reader gets ErrBodyReadAfterClose
	}
	return keep
}

// keep decides, once a response is sent, whether the connection serves
// another request: the rest of an unread request body is read and dropped
// first (up to a limit), as net/http does.
func (c *conn) keep(w *response) bool {
	if w.failed() {
		return false
	}
	if w.body != nil && !w.body.eof.Load() {
		if w.closeAfter || !w.body.drain(c) {
			c.lingerClose()
			return false
		}
	}
	return !w.closeAfter && !c.srv.shutdown.Load()
}

func expectsContinue(r *http.Request) bool {
	v := r.Header["Expect"]
	return len(v) > 0 && strings.EqualFold(v[0], "100-continue")
}

type expectationFailed struct{}

func (expectationFailed) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusExpectationFailed)
}

// optionsHandler answers OPTIONS * as net/http does.
type optionsHandler struct{}

func (optionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
}

// connReader is what the connection's bufio.Reader reads from: it bounds
// the headers' size, and hands over the byte a watch may have read.
type connReader struct {
	c        *conn
	remain   int64 // bytes that may be read before the header limit
	reads    int   // Read calls, to tell that the bufio.Reader refilled
	hitLimit bool
	watch    watch
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.watch.stop(cr.c)
	cr.reads++
	if cr.remain <= 0 {
		cr.hitLimit = true
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	if b, ok := cr.watch.takeByte(); ok {
		p[0] = b
		cr.remain--
		return 1, nil
	}
	n, err := cr.c.rwc.Read(p)
	cr.remain -= int64(n)
	return n, err
}
