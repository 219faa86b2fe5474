// Package proxy is switchyard's data plane: a reverse proxy to one active
// target (an app container) that admits at most the target's workers
// requests at once, queues the rest and sheds them with a 503 once they have
// waited the queue timeout, as HAProxy's maxconn and timeout queue do in
// front of gunicorn. Requests to the health-check path skip the queue.
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
	p := &Proxy{
		cfg: cfg,
		adm: admission{disc: disc, maxQueue: cfg.QueueSize},
		fwd: forwarded{trusted: cfg.TrustedProxies, scheme: cfg.Scheme},
		ids: newRequestIDs(),
		log: zerolog.Nop(),
	}
	if cfg.Logger != nil {
		p.log = *cfg.Logger
	}
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

// ServeHTTP admits, forwards, logs and counts one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorderPool.Get().(*recorder)
	*rec = recorder{ResponseWriter: w}
	if !p.cfg.DisableStats {
		rec.phases = &p.phases
	}

	e := entry{start: start}
	if tc := trackedFrom(r.Context()); tc != nil && r.ProtoMajor == 1 {
		if fb := tc.firstByte.Swap(0); fb != 0 {
			e.start = time.Unix(0, fb)
		}
		e.conn = tc
	}
	e.read = start.Sub(e.start)

	id := r.Header.Get("X-Request-Id")
	if id == "" {
		id = p.ids.next()
		r.Header["X-Request-Id"] = []string{id}
	}

	var t *Target
	var admitErr error
	bypass := r.URL.Path == p.cfg.HealthPath
	if bypass {
		t = p.adm.acquireBypass()
		if t == nil {
			admitErr = errNoTarget
		}
	} else {
		t, admitErr = p.adm.acquire(r.Context(), p.cfg.QueueTimeout)
		e.queued = true
		e.queue = time.Since(start)
	}
	if t != nil {
		rec.enter(phaseInApp)
	}

	// Finish even when ReverseProxy panics with http.ErrAbortHandler (a
	// broken response body): the slot must come back and the line be written.
	defer func() {
		if t != nil {
			if bypass {
				t.release()
			} else {
				p.adm.release(t)
			}
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
		t.rp.ServeHTTP(rec, r)
	}
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
