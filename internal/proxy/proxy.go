// Package proxy is switchyard's data plane: a reverse proxy to one active
// target (an app container) that admits at most the target's workers
// requests at once, queues the rest and sheds them with a 503 once they have
// waited the queue timeout, as HAProxy's maxconn and timeout queue do in
// front of gunicorn. Requests to the health-check path and protocol upgrades
// (WebSockets) skip the queue.
//
// With buffering on, a request body is read whole before the request asks
// for a worker slot, and the app's response is read whole before it is sent
// on, so that a slow client never holds a worker (buffer.go).
//
// The active target is swapped atomically with SetTarget: requests admitted
// before the swap finish on the old target, whose drain can be waited on,
// and queued requests move to the new target without losing their place.
//
// The package knows nothing of Docker or S3: whoever manages containers
// drives it through SetTarget, Target.WaitDrained and Target.SetDown.
package proxy

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults, used where a Config field is zero.
const (
	DefaultQueueTimeout      = 3 * time.Second
	DefaultMaxConnections    = 2000
	DefaultHealthPath        = "/healthcheck"
	DefaultConnectTimeout    = 5 * time.Second
	DefaultUpstreamTimeout   = 60 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	// DefaultMaxBody is the largest request body accepted (413 past it).
	DefaultMaxBody = 100 << 20
	// DefaultBufferMemory is how much of one body is buffered in memory
	// before the rest goes to a temporary file.
	DefaultBufferMemory = 1 << 20
	// DefaultClientBodyTimeout is the longest wait for the next bytes of a
	// request body being buffered (nginx's client_body_timeout).
	DefaultClientBodyTimeout = 60 * time.Second
	// DefaultClientSendTimeout is the longest wait for a client to take the
	// next bytes of a buffered response (nginx's send_timeout).
	DefaultClientSendTimeout = 60 * time.Second
)

// Config sets up a Proxy.
type Config struct {
	// QueueTimeout is how long a request may wait for a worker slot before
	// it gets a 503. Default DefaultQueueTimeout.
	QueueTimeout time.Duration
	// QueueSize caps the number of waiting requests; past it a request gets
	// a 503 at once. 0: no cap but the connection limit.
	QueueSize int
	// Discipline orders the queue: DisciplineFIFO (default) or DisciplineLIFO.
	Discipline string
	// HealthPath is the path whose requests skip the queue. Default
	// DefaultHealthPath.
	HealthPath string
	// Scheme, when set, is sent as X-Forwarded-Proto instead of the
	// connection's own (http, or https under TLS).
	Scheme string
	// TrustedProxies are the peers whose X-Forwarded-* headers are kept.
	TrustedProxies []netip.Prefix
	// ResponseHeaders are set on every response.
	ResponseHeaders []Header
	// ConnectTimeout bounds dialing the target. Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// UpstreamTimeout bounds the wait for the target's response headers;
	// past it the client gets a 504. Default DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// AccessLog, when set, gets one line per request.
	AccessLog *AccessLog
	// Logger gets the proxy's events (swaps, upstream errors). Default: none.
	Logger *zerolog.Logger
	// Prefix, when set (e.g. "/api"), is the path the app is mounted under:
	// requests outside it get a 404 from the proxy, the prefix is stripped
	// before forwarding (/api → /, /api/x → /x) and sent as
	// X-Forwarded-Prefix. HealthPath and NoBufferPrefixes are app paths,
	// matched after stripping. Default: none.
	Prefix string

	// BufferRequests reads a request body whole (memory, then a temporary
	// file) before the request asks for a worker slot. Default false;
	// switchyard serve turns it on.
	BufferRequests bool
	// BufferResponses reads the app's response whole before sending it, so
	// that the worker slot and the target reference are released when the
	// app is done rather than when the client is. Upgrades, HEAD,
	// text/event-stream and responses with trailers are never buffered.
	// Default false; switchyard serve turns it on.
	BufferResponses bool
	// MaxBody is the largest request body: a Content-Length over it gets a
	// 413 at once, a chunked body a 413 once past it. 0: DefaultMaxBody;
	// negative: no limit. A buffered response past it is sent on as it
	// comes (holding the worker) rather than buffered further.
	MaxBody int64
	// BufferMemory is how much of one body (request or response) is held in
	// memory before the rest spills to a temporary file. 0:
	// DefaultBufferMemory.
	BufferMemory int64
	// BufferDir is where spill files go; they are unlinked as soon as they
	// are made. Default os.TempDir().
	BufferDir string
	// NoBufferPrefixes are app path prefixes (e.g. "/stream", "/upload")
	// whose requests and responses are never buffered.
	NoBufferPrefixes []string
	// ClientBodyTimeout is the longest wait for the next bytes of a request
	// body being buffered; past it the client gets a 408. Default
	// DefaultClientBodyTimeout.
	ClientBodyTimeout time.Duration
	// ClientSendTimeout is the longest wait for the client to take the next
	// bytes of a buffered response; past it the connection is closed.
	// Default DefaultClientSendTimeout.
	ClientSendTimeout time.Duration

	// DisableStats turns off the counters, their windows and the connection
	// states (Stats, Report and Connections stay at zero, but for the queue
	// length). It exists to measure what they cost (bench_test.go); default
	// false: stats on.
	DisableStats bool
}

// Proxy is an http.Handler forwarding to the active target.
type Proxy struct {
	cfg    Config
	adm    admission
	fwd    forwarded
	ids    *requestIDs
	stats  Stats
	log    zerolog.Logger
	errLog *log.Logger

	current atomic.Pointer[Target] // mirror of adm.active for lock-free readers

	notFound string // the body of the 404 outside the prefix

	// Figures over time: the proxy's windows and its targets' are sampled by
	// one goroutine (nil with DisableStats).
	since    time.Time
	clock    func() time.Time
	interval time.Duration
	windows  *Windows
	sampler  *sampler

	// Connections by state (connstate.go).
	conns     connCounts
	phases    atomic.Uint64 // requests in_app and writing, packed
	untracked sync.Map      // net.Conn → connState, for listeners not made by Listen
}

// sampling says how the windows are sampled: New uses the clock and
// DefaultSampleInterval and starts the sampler; tests inject their own clock
// and tick by hand.
type sampling struct {
	interval time.Duration
	now      func() time.Time
	manual   bool // no goroutine: the caller calls sampler.tick
}

// New checks cfg, fills in defaults and makes a Proxy with no target. Unless
// cfg.DisableStats, it starts the goroutine that samples the stats for
// Report: Close stops it.
func New(cfg Config) (*Proxy, error) {
	return newSampled(cfg, sampling{interval: DefaultSampleInterval, now: time.Now})
}

func newSampled(cfg Config, sm sampling) (*Proxy, error) {
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	if cfg.QueueTimeout < 0 {
		return nil, fmt.Errorf("queue timeout %v: must be positive", cfg.QueueTimeout)
	}
	if cfg.QueueSize < 0 {
		return nil, fmt.Errorf("queue size %d: must be 0 (no cap) or more", cfg.QueueSize)
	}
	if cfg.HealthPath == "" {
		cfg.HealthPath = DefaultHealthPath
	}
	if !strings.HasPrefix(cfg.HealthPath, "/") {
		return nil, fmt.Errorf("health path %q: must start with /", cfg.HealthPath)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.ConnectTimeout < 0 || cfg.UpstreamTimeout < 0 {
		return nil, errors.New("connect and upstream timeouts must be positive")
	}
	switch cfg.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("scheme %q: want http or https", cfg.Scheme)
	}
	for _, h := range cfg.ResponseHeaders {
		if h.Name == "" || strings.ContainsAny(h.Name, " :\r\n") || strings.ContainsAny(h.Value, "\r\n") {
			return nil, fmt.Errorf("response header %q: invalid name or value", h.Name)
		}
	}
	disc, err := newDiscipline(cfg.Discipline)
	if err != nil {
		return nil, err
	}
	prefix, err := normalizePrefix(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	cfg.Prefix = prefix
	if err := cfg.bufferDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg: cfg,
		adm: admission{disc: disc, maxQueue: cfg.QueueSize},
		fwd: forwarded{trusted: cfg.TrustedProxies, scheme: cfg.Scheme, prefix: prefix},
		ids: newRequestIDs(),
		log: zerolog.Nop(),
	}
	if cfg.Logger != nil {
		p.log = *cfg.Logger
	}
	p.notFound = "404 Not Found: this server serves " + prefix + "/ only\n"
	p.errLog = log.New(zerologWriter{p.log}, "", 0)
	p.clock, p.interval, p.since = sm.now, sm.interval, sm.now()
	p.windows = newWindows(&p.stats, p.interval, p.clock)
	if !cfg.DisableStats {
		p.sampler = newSampler(p.interval, p.clock)
		p.sampler.add(p.windows, nil)
		if !sm.manual {
			p.sampler.start()
		}
	}
	return p, nil
}

// Close stops the sampling of the stats; the windows of Report stop moving.
// It does not stop Serve (cancel its context for that): call it once the
// proxy serves no more. It always returns nil.
func (p *Proxy) Close() error {
	if p.sampler != nil {
		p.sampler.close()
	}
	return nil
}

// zerologWriter sends net/http's own error lines (e.g. a broken copy of a
// response body) to the event log.
type zerologWriter struct{ l zerolog.Logger }

func (z zerologWriter) Write(b []byte) (int, error) {
	z.l.Warn().Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}

// SetTarget makes the target at addr, with at most workers concurrent
// requests, the active one, and returns the previous target (nil if none).
// The caller drains the previous target with WaitDrained.
func (p *Proxy) SetTarget(id, addr string, workers int) (newT, old *Target, err error) {
	if workers < 1 {
		return nil, nil, fmt.Errorf("target %s: workers %d: must be at least 1", id, workers)
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("target %s: empty address", id)
	}
	t := p.newTarget(id, addr, workers)
	old = p.swap(t)
	p.log.Info().Str("target", id).Str("addr", addr).Int("workers", workers).
		Str("previous", targetID(old)).Msg("proxy target switched")
	return t, old, nil
}

// ClearTarget leaves the proxy with no active target (requests get a 503 at
// once) and returns the previous one.
func (p *Proxy) ClearTarget() *Target {
	old := p.swap(nil)
	p.log.Warn().Str("previous", targetID(old)).Msg("proxy has no target")
	return old
}

func (p *Proxy) swap(t *Target) *Target {
	old := p.adm.swap(t)
	p.current.Store(t)
	if old != nil {
		old.retire()
	}
	return old
}

func targetID(t *Target) string {
	if t == nil {
		return ""
	}
	return t.id
}

// Active returns the active target, or nil.
func (p *Proxy) Active() *Target { return p.current.Load() }

// Stats are the proxy-wide counters.
func (p *Proxy) Stats() *Stats { return &p.stats }

// Queued is the number of requests waiting for a worker slot.
func (p *Proxy) Queued() int { return p.adm.queued() }

// ServeHTTP admits, forwards, logs and counts one request: prefix, body
// (buffered before admission), a worker slot (or none for the health path
// and upgrades), the app's response (buffered, then the slot released
// before the client gets it), one log line.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorderPool.Get().(*recorder)
	*rec = recorder{ResponseWriter: w, cfg: &p.cfg}
	if !p.cfg.DisableStats {
		rec.phases = &p.phases
	}
	e := p.begin(r, start)

	appPath, ok := stripPrefix(p.cfg.Prefix, r.URL.Path)
	if !ok {
		rec.fail(http.StatusNotFound, errOutsidePrefix.Error(), p.notFound, p.cfg.ResponseHeaders)
		p.finish(rec, r, nil, &e, errOutsidePrefix)
		return
	}
	upgrade := isUpgrade(r)
	bypass := upgrade || appPath == p.cfg.HealthPath
	stream := upgrade || (len(p.cfg.NoBufferPrefixes) > 0 && p.unbuffered(appPath))
	rec.bufferable = p.cfg.BufferResponses && !stream && r.Method != http.MethodHead

	body, code, reason := p.takeBody(w, r, rec, stream)
	if code != 0 {
		p.refuseBody(rec, code, reason)
		p.finish(rec, r, nil, &e, errBodyRefused)
		return
	}
	queueStart := start
	if body != nil { // the time reading the body is the request's, not the queue's
		queueStart = time.Now()
		e.read = queueStart.Sub(e.start)
	}

	t, admitErr := p.admit(r, bypass, queueStart, &e)
	held := t != nil // the slot (or the bypass reference) is not yet released
	if held {
		rec.enter(phaseInApp)
	}

	// Finish even when ReverseProxy panics with http.ErrAbortHandler (a
	// broken response body): the slot must come back and the line be written.
	defer func() {
		if held {
			p.release(t, bypass)
		}
		body.close()
		rec.resp.close()
		if rec.up != nil {
			t.removeUpgraded(rec.up)
			rec.bytes += rec.up.out.Load()
		}
		if v := recover(); v != nil {
			if rec.reason == "" {
				rec.reason = fmt.Sprint("aborted: ", v)
			}
			p.finish(rec, r, t, &e, admitErr)
			panic(v)
		}
		p.finish(rec, r, t, &e, admitErr)
	}()

	switch {
	case admitErr != nil:
		p.refuse(rec, r, admitErr)
	case t.down.Load():
		rec.fail(http.StatusBadGateway, "target down", "502 Bad Gateway: the app is not running\n", p.cfg.ResponseHeaders)
	default:
		p.forward(rec, r, t, bypass, upgrade, &held)
	}
}

// forward sends r to t and its answer to the client. A buffered answer is
// sent after the slot (or reference) is released, and *held cleared.
func (p *Proxy) forward(rec *recorder, r *http.Request, t *Target, bypass, upgrade bool, held *bool) {
	if upgrade {
		rec.target = t
	}
	p.roundTrip(rec, r, t)
	if !rec.buffering {
		return
	}
	// The app's whole response is in hand and its worker free: let the
	// next request in (and the drain go on) before the client, however
	// slow, gets the response.
	p.release(t, bypass)
	*held = false
	rec.sendBuffered(p.cfg.ClientSendTimeout)
}

// begin starts the request's log entry (its first byte, the time reading
// its headers) and gives it a request id.
func (p *Proxy) begin(r *http.Request, start time.Time) entry {
	e := entry{start: start}
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
	return e
}

// admit takes a worker slot of the active target, waiting in the queue, or
// for the health path and upgrades (bypass) only a reference on it.
func (p *Proxy) admit(r *http.Request, bypass bool, queueStart time.Time, e *entry) (*Target, error) {
	if bypass {
		if t := p.adm.acquireBypass(); t != nil {
			return t, nil
		}
		return nil, errNoTarget
	}
	t, err := p.adm.acquire(r.Context(), p.cfg.QueueTimeout)
	e.queued = true
	e.queue = time.Since(queueStart)
	return t, err
}

// release gives back a slot taken by acquire, or a bypass reference.
func (p *Proxy) release(t *Target, bypass bool) {
	if bypass {
		t.release()
	} else {
		p.adm.release(t)
	}
}

// roundTrip forwards r to t. A response whose body breaks while it is being
// buffered has not reached the client: it is answered with a 502 (499 when
// the client left) instead of the connection being aborted.
func (p *Proxy) roundTrip(rec *recorder, r *http.Request, t *Target) {
	defer func() {
		if !rec.buffering {
			return // not recovered: the panic goes on
		}
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler {
			panic(v)
		}
		err := rec.resp.err
		rec.discardBuffered()
		var be *bufferError
		switch {
		case r.Context().Err() != nil:
			rec.reason, rec.status = "client closed request", statusClientClosed
		case errors.As(err, &be):
			rec.fail(http.StatusInternalServerError, "response "+be.Error(),
				"500 Internal Server Error: the proxy could not buffer the response\n", p.cfg.ResponseHeaders)
		default:
			rec.fail(http.StatusBadGateway, "upstream error: broken response body",
				"502 Bad Gateway: the app's response broke off\n", p.cfg.ResponseHeaders)
		}
	}()
	t.rp.ServeHTTP(rec, r)
}

var errBodyRefused = errors.New("request body refused")

// refuseBody answers a request whose body is over the limit, too slow or
// broken; the connection is closed after it. A client that left gets
// nothing.
func (p *Proxy) refuseBody(rec *recorder, code int, reason string) {
	if code == statusClientClosed {
		rec.reason, rec.status = reason, code
		return
	}
	rec.Header().Set("Connection", "close")
	rec.fail(code, reason, strconv.Itoa(code)+" "+http.StatusText(code)+": "+reason+"\n", p.cfg.ResponseHeaders)
}

// refuse answers a request that got no worker slot.
func (p *Proxy) refuse(rec *recorder, r *http.Request, err error) {
	switch {
	case errors.Is(err, errQueueTimeout), errors.Is(err, errQueueFull):
		rec.Header().Set("Retry-After", "1")
		rec.fail(http.StatusServiceUnavailable, err.Error(),
			"503 Service Unavailable: the app is busy, retry shortly\n", p.cfg.ResponseHeaders)
	case errors.Is(err, errNoTarget):
		rec.Header().Set("Retry-After", "1")
		rec.fail(http.StatusServiceUnavailable, err.Error(),
			"503 Service Unavailable: no app is running yet\n", p.cfg.ResponseHeaders)
	default: // the client left while queued
		rec.reason = "client left while queued"
		rec.status = statusClientClosed
	}
}

// finish records the request in the stats and the access log.
func (p *Proxy) finish(rec *recorder, r *http.Request, t *Target, e *entry, admitErr error) {
	end := time.Now()
	rec.enter(phaseNone)
	e.all = end.Sub(e.start)
	if tc := e.conn; tc != nil { // bytes read for this request, known once the body is consumed
		n := tc.read.Load()
		e.in = n - tc.mark
		tc.mark = n
	}
	if e.in == 0 && r.ContentLength > 0 {
		e.in = r.ContentLength
	}
	e.status = rec.status
	if e.status == 0 {
		e.status = statusClientClosed
	}
	e.out = rec.bytes
	e.reason = rec.reason
	if admitErr == nil && !rec.headerAt.IsZero() && rec.reason == "" {
		e.gotApp = true
		e.app = rec.headerAt.Sub(e.start) - e.read - e.queue
	}
	shed := admitErr != nil && e.status == http.StatusServiceUnavailable
	app := time.Duration(-1)
	if e.gotApp {
		app = e.app
	}
	if !p.cfg.DisableStats {
		p.stats.record(e.status, shed, rec.failed, e.in, e.out, e.queue, app, e.all, e.queued)
		st := t
		if shed && st == nil {
			// A shed request waited for the active target's workers: it
			// counts in that target's shed rate.
			st = p.current.Load()
		}
		if st != nil {
			st.stats.record(e.status, shed, rec.failed, e.in, e.out, e.queue, app, e.all, e.queued)
		}
	}
	if t != nil {
		e.target, e.targetAddr = t.id, t.addr
	}
	if rec.failed {
		p.log.Warn().Str("request_id", r.Header.Get("X-Request-Id")).Str("target", e.target).
			Int("status", e.status).Str("reason", rec.reason).Msg("upstream failed")
	}
	if l := p.cfg.AccessLog; l != nil {
		e.client = hostOnly(r.RemoteAddr)
		e.method = r.Method
		e.uri = r.RequestURI
		e.proto = r.Proto
		e.id = r.Header.Get("X-Request-Id")
		l.write(e)
	}
	*rec = recorder{}
	recorderPool.Put(rec)
}
