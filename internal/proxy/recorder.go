package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

// recorder wraps the client's ResponseWriter to learn the status, the size
// and the moment the app's response headers arrived. It unwraps, so that
// http.ResponseController (used by ReverseProxy to flush and to hijack for
// upgrades) reaches the real writer.
//
// It also carries the rest of one request's state through ServeHTTP, so
// that the whole of it comes from one pool: its fields are grouped by the
// file that owns them.
//
// With response buffering it holds the app's response: WriteHeader and
// Write go into resp instead of to the client, and sendBuffered sends them
// once the app is done and its worker slot is released. When the client
// has left before the app answered, the answer is discarded instead.
type recorder struct {
	http.ResponseWriter
	p *Proxy

	// recorder.go: what the client got.
	status     int
	bytes      int64
	headerAt   time.Time
	reason     string      // why the proxy answered itself (for the log)
	why        refusalKind // and, for its own 503s, the kind (for the stats)
	failed     bool        // the proxy made a 502/504
	discarding bool        // the client left before the answer: drop it
	discarded  int64

	// request.go: the request's way through the proxy.
	client context.Context // the client's request context; the app's is detached
	e      entry           // its access-log line
	lease  lease           // what it holds on its target
	target *Target         // the target it was admitted to
	upErr  error           // the failed round trip (answer.go's upstreamError)
	stream *limitListener  // an HTTP/2 stream counted against its connection limit

	// connstate.go: the proxy's request phases (nil with stats off) and
	// this request's part in them.
	phases *atomic.Uint64
	phase  uint64

	// buffer.go: the request body and the app's response while buffered.
	body       *spool // the buffered request body, or nil
	limited    *limitedBody
	bufferable bool  // this request's response may be buffered
	buffering  bool  // resp holds the app's response, nothing is sent yet
	code       int   // the app's status, sent by sendBuffered
	resp       spool // the app's response body while buffering

	// upgrade.go: the connection after a protocol switch.
	up *upgradedConn

	// fallback.go: the origin host of a request a peer sent here, or the
	// peer this one went to.
	fbFrom, fbTo string
	fbMarked     bool // it carried the mark: it stays here
}

// discardLimit is how much of an answer nobody waits for is read from the
// app (so that its connection can serve again) before the proxy closes the
// connection instead.
const discardLimit = 256 << 10

// enter moves the request to phase ph (phaseNone when it ends).
func (r *recorder) enter(ph uint64) {
	if r.phases != nil && r.phase != ph {
		r.phases.Add(ph - r.phase) // wraps as intended when ph < r.phase
		r.phase = ph
	}
}

func (r *recorder) WriteHeader(code int) {
	if r.buffering {
		return // a superfluous call: the status is taken
	}
	// 1xx (but 101) are interim: the final status comes later. They are
	// passed on at once, buffering or not.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
		r.headerAt = time.Now()
		if r.target != nil && r.client.Err() != nil {
			// The client left while the app worked: the app's answer is
			// read (the slot is held until then) and dropped.
			r.discarding = true
			r.status, r.reason = statusClientClosed, errDiscarded.Error()
			return
		}
		if r.bufferable && code >= 200 && bufferableHeader(r.ResponseWriter.Header()) {
			r.buffering = true
			r.code = code
			r.resp.init(&r.p.cfg, &r.p.bufs)
			return
		}
		r.enter(phaseWriting)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.discarding {
		if r.discarded += int64(len(b)); r.discarded > discardLimit {
			return 0, errClientGone
		}
		return len(b), nil
	}
	buffered := 0
	if r.buffering {
		if r.resp.max == 0 || r.resp.n+int64(len(b)) <= r.resp.max {
			n, err := r.resp.Write(b)
			if !errors.Is(err, errBuffersFull) {
				return n, err
			}
			buffered, b = n, b[n:]
		}
		// Past the body limit or the proxy's buffer budget: send what is
		// here and stream the rest, holding the worker as an unbuffered
		// response does.
		if err := r.unbuffer(); err != nil {
			return buffered, err
		}
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return buffered + n, err
}

// FlushError is a no-op while buffering (ReverseProxy flushes streamed
// responses after every write); otherwise it flushes the client's writer.
func (r *recorder) FlushError() error {
	if r.buffering || r.discarding {
		return nil
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Flush is FlushError for http.Flusher users.
func (r *recorder) Flush() { _ = r.FlushError() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// fail answers with a short plain-text error made by the proxy.
func (r *recorder) fail(code int, reason, body string, extra []Header) {
	r.reason = reason
	r.failed = code == http.StatusBadGateway || code == http.StatusGatewayTimeout
	h := r.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	setResponseHeaders(h, extra)
	r.bufferable = false
	r.WriteHeader(code)
	_, _ = r.Write([]byte(body))
}
