package proxy

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// recorder wraps the client's ResponseWriter to learn the status, the size
// and the moment the app's response headers arrived. It unwraps, so that
// http.ResponseController (used by ReverseProxy to flush and to hijack for
// upgrades) reaches the real writer.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	headerAt time.Time
	reason   string // why the proxy answered itself (for the log)
	failed   bool   // the proxy made a 502/504

	phases *atomic.Uint64 // the proxy's request phases; nil with stats off
	phase  uint64         // this request's part in them
}

// enter moves the request to phase ph (phaseNone when it ends).
func (r *recorder) enter(ph uint64) {
	if r.phases != nil && r.phase != ph {
		r.phases.Add(ph - r.phase) // wraps as intended when ph < r.phase
		r.phase = ph
	}
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

func (r *recorder) WriteHeader(code int) {
	// 1xx (but 101) are interim: the final status comes later.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
		r.headerAt = time.Now()
		r.enter(phaseWriting)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
		r.headerAt = time.Now()
		r.enter(phaseWriting)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

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
	r.WriteHeader(code)
	_, _ = r.Write([]byte(body))
}
