// Package proxy is switchyard's data plane: a reverse proxy to one active
// target (an app container) that admits at most the target's workers
// requests at once, queues the rest and sheds them with a 503 once they have
// waited the queue timeout, as HAProxy's maxconn and timeout queue do in
// front of gunicorn; or, with the adaptive discipline (the default), at once
// when FIFO would be shedding, serving the newest instead (adaptive.go).
//
// That promise holds against any client: a request keeps its worker slot
// until the app has finished it, even when its client left (lease.go);
// upgrade headers buy nothing until the app has answered 101 to a real
// WebSocket handshake (upgrade.go); a few health checks at most skip the
// queue (request.go); HTTP/2 streams are admitted as HTTP/1 requests are and
// count against the connection limit (listener.go).
//
// With buffering on, a request body is read whole before the request asks
// for a worker slot, and the app's response is read whole before it is sent
// on, so that a slow client never holds a worker (buffer.go), within a
// memory and disk budget (spool.go).
//
// The active target is swapped atomically with SetTarget: requests admitted
// before the swap finish on the old target, whose drain can be waited on,
// and queued requests move to the new target without losing their place.
//
// The package knows nothing of Docker or S3: whoever manages containers
// drives it through SetTarget, Target.WaitDrained, Target.SetDown and
// Target.SetPaused. A
// first page: ExampleProxy. The map: config.go (settings and defaults),
// request.go (a request's way), queue.go (admission), discipline.go and
// adaptive.go (the queue's order, and whom it sheds early), lease.go (what an
// admitted request holds), target.go (the drain), forward.go (a target's
// pools), exchange.go and upstream/ (the lean HTTP/1.1 path to the app),
// answer.go (the proxy's own answers), buffer.go and spool.go,
// upgrade.go, headers.go, prefix.go, accesslog.go, server.go and
// listener.go (the client side), stats.go, windows.go, sampler.go,
// connstate.go and report.go (the figures), static.go (files in front).
package proxy

import (
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Proxy is an http.Handler forwarding to the active target.
type Proxy struct {
	cfg    Config
	adm    admission
	health healthGate // places on the health path
	bufs   buffers    // the budgets of buffered bodies
	fwd    forwarded
	ids    *requestIDs
	stats  Stats
	log    zerolog.Logger
	errLog *log.Logger

	current atomic.Pointer[Target] // mirror of adm.active for lock-free readers
	targets targetSet              // every target that may have requests in flight

	notFound string    // the body of the 404 outside the prefix
	fb       *fallback // nil without Config.Fallback

	// Figures over time: the proxy's windows and its targets' are sampled by
	// one goroutine (nil with DisableStats).
	since    time.Time
	clock    func() time.Time
	interval time.Duration
	windows  *windowSet
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
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	disc, _ := newDiscipline(cfg.Discipline, cfg.QueueTimeout) // validated
	p := &Proxy{
		cfg:  cfg,
		adm:  admission{disc: disc, maxQueue: cfg.QueueSize, now: sm.now},
		bufs: buffers{mem: budget{limit: cfg.BufferTotalMemory}, disk: budget{limit: cfg.BufferTotalDisk}},
		fwd:  forwarded{trusted: cfg.TrustedProxies, scheme: cfg.Scheme, prefix: cfg.Prefix},
		ids:  newRequestIDs(),
		log:  zerolog.Nop(),
	}
	if cfg.Logger != nil {
		p.log = *cfg.Logger
	}
	p.health.max = int32(max(cfg.HealthInFlight, 0))
	p.fb = newFallback(cfg.Fallback, cfg.ConnectTimeout, cfg.UpstreamTimeout)
	p.notFound = "404 Not Found: this server serves " + cfg.Prefix + "/ only\n"
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
