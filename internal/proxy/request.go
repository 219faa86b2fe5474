package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

// ServeHTTP admits, forwards, logs and counts one request: prefix, body
// (buffered before admission), a worker slot (or a health-path place), the
// app's response (buffered, then the slot released before the client gets
// it), one log line.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorderPool.Get().(*recorder)
	*rec = recorder{ResponseWriter: w, p: p, client: r.Context()}
	if !p.cfg.DisableStats {
		rec.phases = &p.phases
	}
	p.begin(rec, r, start)
	// end runs even when ReverseProxy panics with http.ErrAbortHandler (a
	// broken response body): the slot must come back and the line be written.
	defer p.end(rec, r)
	if err := p.serve(rec, r); err != nil {
		p.answer(rec, err)
	}
}

// serve takes r through the proxy; an error is answered by the caller.
func (p *Proxy) serve(rec *recorder, r *http.Request) error {
	appPath, ok := stripPrefix(p.cfg.Prefix, r.URL.Path)
	if !ok {
		return errOutsidePrefix
	}
	if r.ProtoMajor == 2 {
		// Each HTTP/2 stream counts against the connection limit.
		if tc := trackedFrom(r.Context()); tc != nil {
			if !tc.l.openStream() {
				return errTooManyRequests
			}
			rec.stream = tc.l
		}
	}
	health := appPath == p.cfg.HealthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	stream := len(p.cfg.NoBufferPrefixes) > 0 && p.unbuffered(appPath)
	rec.bufferable = p.cfg.BufferResponses && !stream && r.Method != http.MethodHead
	if err := p.takeBody(rec, r, stream); err != nil {
		return err
	}
	if rec.body != nil { // the time reading the body is the request's, not the queue's
		rec.e.read = time.Since(rec.e.start)
	}
	if p.fb == nil {
		return p.admitAndForward(rec, r, health)
	}
	return p.serveOrFallback(rec, r, health)
}

// serveOrFallback takes r to the local app, or to a peer when the app
// cannot take it (fallback.go).
func (p *Proxy) serveOrFallback(rec *recorder, r *http.Request, health bool) error {
	p.takeMark(rec, r)
	if t := p.current.Load(); t != nil && t.pausedNow.Load() && !health {
		// Being brought back: a peer answers now rather than after the wait.
		if err := p.orFallback(rec, r, health, errPaused); !errors.Is(err, errPaused) {
			return err
		}
	}
	return p.orFallback(rec, r, health, p.admitAndForward(rec, r, health))
}

// admitAndForward takes r to the local app.
func (p *Proxy) admitAndForward(rec *recorder, r *http.Request, health bool) error {
	if err := p.admit(rec, r, health); err != nil {
		return err
	}
	if rec.target.down.Load() {
		return errTargetDown
	}
	return p.forward(rec, r)
}

// begin starts the request's log entry (its first byte, the time reading
// its headers) and gives it a request id.
func (p *Proxy) begin(rec *recorder, r *http.Request, start time.Time) {
	e := &rec.e
	e.start = start
	if tc := trackedFrom(r.Context()); tc != nil && r.ProtoMajor == 1 {
		if fb := tc.firstByte.Swap(0); fb != 0 {
			e.start = time.Unix(0, fb)
		}
		e.conn = tc
	}
	e.read = start.Sub(e.start)
	if r.Header.Get("X-Request-Id") == "" {
		r.Header["X-Request-Id"] = []string{p.ids.next()}
	}
}

// admit takes a lease on the active target: for a health check, a
// reference alone while there is a health place free; else a worker slot,
// waiting in the queue for it.
func (p *Proxy) admit(rec *recorder, r *http.Request, health bool) error {
	if health && p.health.enter() {
		t := p.adm.acquireBypass()
		if t == nil {
			p.health.n.Add(-1)
			return errNoTarget
		}
		rec.lease = lease{t: t, ref: true, health: &p.health.n}
	} else {
		queueStart := rec.e.start.Add(rec.e.read)
		t, since, err := p.adm.acquire(r.Context(), p.cfg.QueueTimeout)
		rec.e.queued = true
		if err != nil {
			since = time.Now()
		}
		rec.e.queue = since.Sub(queueStart) // the granted slot's time: no second clock read
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return errLeftQueued
		case err != nil:
			return err
		}
		rec.lease = lease{adm: &p.adm, t: t, slot: true, since: since, ref: true}
	}
	rec.target = rec.lease.t
	rec.enter(phaseInApp)
	return nil
}

// forward sends r to the app and its answer to the client.
//
// The request the app gets does not end when the client goes away: the app
// (a gunicorn sync worker never notices a disconnect) goes on working on it,
// so its worker slot stays taken until the app has answered (the answer is
// then read and dropped) or the upstream connection is closed by a timeout.
// A buffered answer is sent after the slot is released.
func (p *Proxy) forward(rec *recorder, r *http.Request) error {
	var err error
	if rec.target.lean() && !isUpgrade(r) {
		err = p.exchange(rec, r)
	} else {
		err = p.roundTrip(rec, r.WithContext(&appContext{r.Context()}))
	}
	if err != nil {
		return err
	}
	if !rec.buffering {
		return nil
	}
	// The app's whole response is in hand and its worker free: let the
	// next request in (and the drain go on) before the client, however
	// slow, gets the response.
	rec.lease.release()
	if r.Context().Err() != nil {
		rec.discardBuffered()
		return errDiscarded
	}
	rec.sendBuffered(p.cfg.ClientSendTimeout)
	return nil
}

// appContext is the context of the request the app gets: the client's
// values (its server, its connection), but not its end, as
// context.WithoutCancel (whose Value allocates at every lookup).
type appContext struct{ context.Context }

func (*appContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*appContext) Done() <-chan struct{}       { return nil }
func (*appContext) Err() error                  { return nil }

// roundTrip forwards r to the target. A response that breaks while it is
// buffered or discarded has not reached the client: it is answered (or
// recorded) instead of the connection being aborted.
func (p *Proxy) roundTrip(rec *recorder, r *http.Request) (err error) {
	defer func() {
		if !rec.buffering && !rec.discarding {
			return // not recovered: the panic goes on, net/http aborts the response
		}
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler {
			panic(v)
		}
		err = rec.abortError()
	}()
	rec.target.rp.ServeHTTP(rec, r)
	return rec.upErr
}

// abortError names why ReverseProxy gave up on a response being buffered
// or discarded.
func (r *recorder) abortError() error {
	err := r.resp.err
	discarding := r.discarding
	r.discardBuffered()
	switch {
	case discarding || r.client.Err() != nil:
		return errDiscarded
	case errors.Is(err, errBufferFailed):
		return fmt.Errorf("response %w", err)
	}
	return errUpstreamBroken
}

// end releases what the request holds and writes its log line.
func (p *Proxy) end(rec *recorder, r *http.Request) {
	rec.lease.release()
	if rec.stream != nil {
		rec.stream.closeStream()
	}
	rec.body.close()
	rec.resp.close()
	if rec.up != nil {
		rec.target.upgraded.remove(rec.up)
		rec.bytes += rec.up.out.Load()
	}
	if v := recover(); v != nil {
		if rec.reason == "" {
			rec.reason = fmt.Sprint("aborted: ", v)
		}
		p.finish(rec, r)
		panic(v)
	}
	p.finish(rec, r)
}

// finish records the request in the stats and the access log.
func (p *Proxy) finish(rec *recorder, r *http.Request) {
	rec.enter(phaseNone)
	e, t := &rec.e, rec.target
	e.all = time.Since(e.start)
	if tc := e.conn; tc != nil { // bytes read for this request, known once the body is consumed
		n := tc.read.Load()
		e.in = n - tc.mark
		tc.mark = n
	}
	if e.in == 0 && r.ContentLength > 0 {
		e.in = r.ContentLength
	}
	e.status, e.out, e.reason = rec.status, rec.bytes, rec.reason
	if e.status == 0 {
		e.status = statusClientClosed
	}
	if t != nil && !rec.headerAt.IsZero() && rec.reason == "" {
		e.gotApp = true
		e.app = rec.headerAt.Sub(e.start) - e.read - e.queue
	}
	p.record(rec)
	if t != nil {
		e.target, e.targetAddr = t.id, t.addr
	}
	switch {
	case rec.fbTo != "":
		e.target, e.targetAddr, e.fallback = "peer", rec.fbTo, "to:"+rec.fbTo
	case rec.fbFrom != "":
		e.fallback = "from:" + rec.fbFrom
	}
	if rec.failed {
		p.log.Warn().Str("request_id", r.Header.Get("X-Request-Id")).Str("target", e.target).
			Int("status", e.status).Str("reason", rec.reason).Msg("upstream failed")
	}
	if l := p.cfg.AccessLog; l != nil {
		e.client = hostOnly(r.RemoteAddr)
		e.method, e.uri, e.proto = r.Method, r.RequestURI, r.Proto
		e.id = r.Header.Get("X-Request-Id")
		l.write(e)
	}
	*rec = recorder{}
	recorderPool.Put(rec)
}

// record counts the request in the proxy's stats and its target's. A shed
// request waited for the active target's workers: it counts in that
// target's shed rate.
func (p *Proxy) record(rec *recorder) {
	if p.cfg.DisableStats {
		return
	}
	e := &rec.e
	app := time.Duration(-1)
	if e.gotApp {
		app = e.app
	}
	p.stats.record(e.status, rec.why, rec.failed, e.in, e.out, e.queue, app, e.all, e.queued)
	st := rec.target
	if rec.why.shed() && st == nil {
		st = p.current.Load()
	}
	if st != nil {
		st.stats.record(e.status, rec.why, rec.failed, e.in, e.out, e.queue, app, e.all, e.queued)
	}
}
