package proxy

// Buffering for slow clients, as nginx does in front of gunicorn: a request
// body is read whole before the request asks for a worker slot, and the
// app's response is read whole before it is sent on, so that a client on a
// slow link (or a slowloris) costs a connection and a buffer, never one of
// the app's few workers.
//
// This file is the policy: which bodies are buffered (not under a no-buffer
// prefix, not HEAD, not server-sent events or responses with trailers), the
// limits and timeouts while reading a request body, and the sending of a
// buffered response once the app is done. spool.go holds the bodies.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// hasBody is false for GET and the like: nothing to read, nothing allocated.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// takeBody applies the body limit and, when requests are buffered, reads the
// body whole (into rec.body) before the request asks for a worker slot. An
// error says why the body is refused.
func (p *Proxy) takeBody(rec *recorder, r *http.Request, stream bool) error {
	if !hasBody(r) {
		return nil
	}
	if p.cfg.MaxBody > 0 && r.ContentLength > p.cfg.MaxBody {
		return errBodyTooLarge
	}
	if stream || !p.cfg.BufferRequests {
		// The transport may still be reading the body (its last read looks
		// for EOF) when the app's response headers go out; net/http would
		// then discard and close the body under it, and the transport
		// would drop the app connection mid-response. Full duplex leaves
		// the body to the transport.
		_ = http.NewResponseController(rec.ResponseWriter).EnableFullDuplex()
		if p.cfg.MaxBody > 0 && r.ContentLength < 0 {
			rec.limited = &limitedBody{ReadCloser: r.Body, left: p.cfg.MaxBody}
			r.Body = rec.limited
		}
		return nil
	}
	s := &spool{}
	s.init(&p.cfg, &p.bufs)
	s.dl.init(rec.ResponseWriter, r, p.cfg.ClientBodyTimeout)
	if err := s.readFrom(&s.dl); err != nil {
		// Leave the read deadline in the past: net/http's attempt to
		// discard the rest of the body after the handler fails at once.
		s.dl.set(time.Now())
		s.close()
		return bodyError(r, err)
	}
	s.dl.set(time.Time{})
	s.dl = bodyDeadline{}
	if s.n == 0 { // an empty chunked body
		s.close()
		r.Body, r.ContentLength = http.NoBody, 0
		return nil
	}
	s.rd.s = s
	r.Body = &s.rd
	r.GetBody = s.getBody
	r.ContentLength = s.n // sent with a Content-Length, not chunked
	r.TransferEncoding = nil
	r.Trailer = nil
	// The body is here: the app has nothing to agree to.
	delete(r.Header, "Expect")
	rec.body = s
	return nil
}

// bodyError names a failure to read the request body.
func bodyError(r *http.Request, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, errBodyTooLarge), errors.Is(err, errBufferFailed), errors.Is(err, errBuffersFull):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return errBodyTimeout
	case r.Context().Err() != nil, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &ne):
		return errLeftBody
	}
	return fmt.Errorf("%w: %w", errBadBody, err)
}

// bodyDeadline reads a request body with a read deadline renewed before
// each read: the client must send something every timeout (nginx's
// client_body_timeout), however long the whole body takes.
type bodyDeadline struct {
	body    io.Reader
	timeout time.Duration
	w       http.ResponseWriter // set: deadlines through it
	tc      *trackedConn        // else set: on the connection
}

// init prepares to set the read deadline through w's ResponseController,
// or, when a handler in front of the proxy hides it, on the HTTP/1
// connection itself.
func (d *bodyDeadline) init(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	*d = bodyDeadline{body: r.Body, timeout: timeout, w: w}
	if r.ProtoMajor == 1 {
		d.tc = trackedFrom(r.Context())
	}
}

func (d *bodyDeadline) set(t time.Time) {
	if d.w != nil {
		if http.NewResponseController(d.w).SetReadDeadline(t) == nil {
			return
		}
		d.w = nil // not supported: fall back to the connection
	}
	if d.tc != nil {
		_ = d.tc.SetReadDeadline(t)
	}
}

func (d *bodyDeadline) Read(p []byte) (int, error) {
	d.set(time.Now().Add(d.timeout))
	return d.body.Read(p)
}

// limitedBody caps a streamed (unbuffered) chunked body at the body limit
// and says so, so that the failed round trip is answered with a 413. It is
// read by the transport's goroutine, hence the atomic.
type limitedBody struct {
	io.ReadCloser
	left int64
	over atomic.Bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over.Store(true)
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over.Store(true)
		return n, errBodyTooLarge
	}
	return n, err
}

// unbuffered reports whether the app path is under one of the
// no-buffer prefixes.
func (p *Proxy) unbuffered(path string) bool {
	for _, pre := range p.cfg.NoBufferPrefixes {
		if underPrefix(pre, path) {
			return true
		}
	}
	return false
}

// bufferableHeader is false for responses that must stream: server-sent
// events, and responses with trailers (they need chunked encoding).
func bufferableHeader(h http.Header) bool {
	if _, ok := h["Trailer"]; ok {
		return false
	}
	if ct := h["Content-Type"]; len(ct) > 0 {
		const sse = "text/event-stream"
		if v := strings.TrimSpace(ct[0]); len(v) >= len(sse) && strings.EqualFold(v[:len(sse)], sse) {
			return false
		}
	}
	return true
}

// unbuffer sends the buffered head of a response that grew past the limit
// and switches to passing writes through.
func (r *recorder) unbuffer() error {
	r.buffering = false
	r.enter(phaseWriting)
	r.ResponseWriter.WriteHeader(r.code)
	_, err := r.writeSpool(0)
	r.resp.close()
	return err
}

// sendBuffered sends the buffered response to the client. The app is done
// with it: the caller has released the worker slot. The client must take
// each piece of a response over one chunk (32 KiB) within timeout (0: no
// limit), else the connection is dropped; a smaller one goes to the socket
// buffer in one write, as an unbuffered response would.
func (r *recorder) sendBuffered(timeout time.Duration) {
	r.buffering = false
	h := r.ResponseWriter.Header()
	if _, ok := h["Content-Length"]; !ok && bodyAllowed(r.code) {
		// The length is known now, even when the app streamed.
		h["Content-Length"] = []string{strconv.FormatInt(r.resp.n, 10)}
	}
	r.enter(phaseWriting)
	if r.resp.n <= spoolChunk {
		timeout = 0
	}
	rc := http.NewResponseController(r.ResponseWriter)
	if timeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(timeout))
	}
	r.ResponseWriter.WriteHeader(r.code)
	if _, err := r.writeSpool(timeout); err == nil && timeout > 0 {
		// Push out what net/http still holds while the deadline stands,
		// then clear it: the connection may serve another request.
		_ = rc.Flush()
	}
	if timeout > 0 {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	r.resp.close()
}

// writeSpool writes resp to the client, renewing the write deadline before
// each piece when timeout > 0.
func (r *recorder) writeSpool(timeout time.Duration) (int64, error) {
	s := &r.resp
	var rc *http.ResponseController
	if timeout > 0 {
		rc = http.NewResponseController(r.ResponseWriter)
	}
	var bp *[]byte // for the part in the file
	var off int64
	var err error
	for off < s.n && err == nil {
		var piece []byte
		if off < s.memN {
			piece = s.chunk(off)
		} else {
			if bp == nil {
				bp = chunkPool.Get().(*[]byte)
			}
			var n int
			if n, err = s.readAt((*bp)[:spoolChunk], off); n == 0 {
				break
			}
			piece = (*bp)[:n]
		}
		if rc != nil && off > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		}
		var n int
		n, err = r.ResponseWriter.Write(piece)
		r.bytes += int64(n)
		off += int64(n)
	}
	if bp != nil {
		chunkPool.Put(bp)
	}
	return off, err
}

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(code int) bool {
	switch {
	case code >= 100 && code <= 199, code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}

// discardBuffered forgets a response being buffered (the app's body broke):
// the proxy answers instead.
func (r *recorder) discardBuffered() {
	r.buffering = false
	r.resp.close()
	clear(r.ResponseWriter.Header())
	r.status, r.headerAt = 0, time.Time{}
}
