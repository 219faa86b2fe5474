package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// Why the proxy answers a request itself. Every refusalKind and failure on the
// request path is one of these errors, wrapped with detail where that helps
// the log, and answers maps it to the response: one table, in one place.
var (
	errOutsidePrefix   = errors.New("outside the prefix")
	errNoTarget        = errors.New("no app")
	errQueueTimeout    = errors.New("queue timeout")
	errQueueFull       = errors.New("queue full")
	errOverload        = errors.New("overload") // shed by the adaptive queue
	errTooManyRequests = errors.New("too many requests in progress")
	errTargetDown      = errors.New("target down")
	errClientGone      = errors.New("client closed request")
	errBodyTooLarge    = errors.New("request body too large")
	errBodyTimeout     = errors.New("client body timeout")
	errBadBody         = errors.New("bad request body")
	errBuffersFull     = errors.New("the proxy's buffers are full")
	errBufferFailed    = errors.New("buffer")
	errUnreachable     = errors.New("upstream unreachable")
	errUpstreamTimeout = errors.New("upstream timeout")
	errUpstreamBroken  = errors.New("upstream error: broken response body")
	errUpstream        = errors.New("upstream error")

	// The client left at a given point: a 499, with the point in the log.
	errLeftQueued = &reasonError{"client left while queued", errClientGone}
	errLeftBody   = &reasonError{"client closed while sending the body", errClientGone}
	errDiscarded  = &reasonError{"client left before the answer; the app's answer was discarded", errClientGone}
)

// statusClientClosed is nginx's 499: the client left before the answer.
const statusClientClosed = 499

// reasonError is a sentinel said another way.
type reasonError struct {
	msg string
	err error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

// bufferError is a failure of a body buffer itself (its spill file), not
// of either peer.
type bufferError struct{ err error }

func (e *bufferError) Error() string        { return "buffer: " + e.err.Error() }
func (e *bufferError) Unwrap() error        { return e.err }
func (e *bufferError) Is(target error) bool { return target == errBufferFailed }

// answer is the proxy's own response to a failed request.
type answer struct {
	status int
	body   string      // "": none (499: nobody is listening; 404: the proxy's own)
	retry  bool        // Retry-After: 1
	close  bool        // Connection: close (the request body was not read whole)
	why    refusalKind // a 503 of the proxy's own: why (stats.go)
}

const busyBody = "503 Service Unavailable: the app is busy, retry shortly\n"

// answers is the table, first match wins.
var answers = []struct {
	err error
	answer
}{
	{errClientGone, answer{status: statusClientClosed}},
	{errOutsidePrefix, answer{status: http.StatusNotFound}},
	{errNoTarget, answer{http.StatusServiceUnavailable, "503 Service Unavailable: no app is running yet\n", true, false, refusedNoApp}},
	{errQueueTimeout, answer{http.StatusServiceUnavailable, busyBody, true, false, refusedQueueTimeout}},
	{errQueueFull, answer{http.StatusServiceUnavailable, busyBody, true, false, refusedQueueFull}},
	{errOverload, answer{http.StatusServiceUnavailable, busyBody, true, false, refusedOverload}},
	{errTooManyRequests, answer{http.StatusServiceUnavailable, "503 Service Unavailable: too many requests in progress, retry shortly\n", true, false, refusedLimits}},
	{errBuffersFull, answer{http.StatusServiceUnavailable, "503 Service Unavailable: the proxy's buffers are full, retry shortly\n", true, true, refusedLimits}},
	{errTargetDown, answer{http.StatusBadGateway, "502 Bad Gateway: the app is not running\n", false, false, refusedNot}},
	{errBodyTooLarge, answer{http.StatusRequestEntityTooLarge, "413 Request Entity Too Large: the request body is over the limit\n", false, true, refusedNot}},
	{errBodyTimeout, answer{http.StatusRequestTimeout, "408 Request Timeout: the request body stalled\n", false, true, refusedNot}},
	{errBadBody, answer{http.StatusBadRequest, "400 Bad Request: the request body could not be read\n", false, true, refusedNot}},
	{errBufferFailed, answer{http.StatusInternalServerError, "500 Internal Server Error: the proxy could not buffer the body\n", false, true, refusedNot}},
	{errUpstreamTimeout, answer{http.StatusGatewayTimeout, "504 Gateway Timeout: the app did not answer in time\n", false, false, refusedNot}},
	{errUpstreamBroken, answer{http.StatusBadGateway, "502 Bad Gateway: the app's response broke off\n", false, false, refusedNot}},
}

// upstreamAnswer is for every other error: the app could not be asked or
// did not answer.
var upstreamAnswer = answer{http.StatusBadGateway, "502 Bad Gateway: the app did not answer\n", false, false, refusedNot}

func answerFor(err error) answer {
	for _, a := range answers {
		if errors.Is(err, a.err) {
			return a.answer
		}
	}
	return upstreamAnswer
}

// answer responds to a request the proxy could not (or need not) take to
// the end, and records why.
func (p *Proxy) answer(rec *recorder, err error) {
	a := answerFor(err)
	rec.why = a.why
	if a.status == statusClientClosed || rec.up != nil {
		// Nobody is listening, or the connection is no longer HTTP (a
		// protocol switch failed after the hijack): record it, write nothing.
		rec.reason, rec.status = err.Error(), a.status
		return
	}
	h := rec.Header()
	if a.retry {
		h.Set("Retry-After", "1")
	}
	if a.close {
		h.Set("Connection", "close")
	}
	body := a.body
	if a.status == http.StatusNotFound {
		body = p.notFound
	}
	rec.fail(a.status, err.Error(), body, p.cfg.ResponseHeaders)
}

// upstreamError is ReverseProxy's ErrorHandler: it keeps the failed round
// trip's error for forward to answer.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	rec, ok := w.(*recorder)
	if !ok {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	rec.upErr = rec.classify(err)
}

// classify names a failed round trip: the request body over the limit, the
// client gone, the app unreachable, too slow, or failing otherwise.
func (r *recorder) classify(err error) error {
	if r.limited != nil && r.limited.over.Load() {
		return errBodyTooLarge
	}
	if r.client.Err() != nil {
		return errClientGone
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", errUnreachable, err)
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return fmt.Errorf("%w: %w", errUpstreamTimeout, err)
	}
	return fmt.Errorf("%w: %w", errUpstream, err)
}
