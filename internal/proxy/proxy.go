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
	// DefaultHTTP2MaxStreams is the most concurrent streams one HTTP/2
	// connection may open.
	DefaultHTTP2MaxStreams = 100
	// DefaultQueueSize is the most requests waiting for a worker at once.
	DefaultQueueSize = 1000
	// DefaultBufferTotalMemory is the memory all buffered bodies together
	// may hold; past it they spill to files.
	DefaultBufferTotalMemory = 128 << 20
	// DefaultBufferTotalDisk is what all spill files together may hold;
	// past it a request body is refused (503) and a response streamed.
	DefaultBufferTotalDisk = 1 << 30
	// DefaultHealthInFlight is the most health-path requests that skip the
	// queue at once.
	DefaultHealthInFlight = 2
)

// Config sets up a Proxy.
type Config struct {
	// QueueTimeout is how long a request may wait for a worker slot before
	// it gets a 503. Default DefaultQueueTimeout.
	QueueTimeout time.Duration
	// QueueSize caps the number of waiting requests; past it a request gets
	// a 503 at once. Default DefaultQueueSize.
	QueueSize int
	// Discipline orders the queue: DisciplineFIFO (default) or DisciplineLIFO.
	Discipline string
	// HealthPath is the path whose GET and HEAD requests skip the queue
	// (at most HealthInFlight at once). Default DefaultHealthPath.
	HealthPath string
	// HealthInFlight is the most health-path requests that skip the queue
	// at once, so that the bypass cannot be used to overload the app; past
	// it a health request waits in the queue as any other. 0:
	// DefaultHealthInFlight; negative: none skip.
	HealthInFlight int
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
	// BufferTotalMemory caps the memory all buffered bodies hold together;
	// past it a body spills to its file sooner. 0: DefaultBufferTotalMemory;
	// negative: no cap.
	BufferTotalMemory int64
	// BufferTotalDisk caps what all spill files hold together; past it a
	// request body being buffered is refused with a 503 (Retry-After) and
	// a response is sent on as it comes (holding its worker) rather than
	// buffered further. 0: DefaultBufferTotalDisk; negative: no cap.
	BufferTotalDisk int64
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

	// HTTP2MaxStreams is the most concurrent streams (requests) one HTTP/2
	// connection may have. Default DefaultHTTP2MaxStreams.
	HTTP2MaxStreams int

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
	health healthGate // places on the health path
	bufs   buffers    // the budgets of buffered bodies
	fwd    forwarded
	ids    *requestIDs
	stats  Stats
	log    zerolog.Logger
	errLog *log.Logger

	current atomic.Pointer[Target] // mirror of adm.active for lock-free readers
	targets targetSet              // every target that may have requests in flight

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
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.QueueSize < 0 {
		return nil, fmt.Errorf("queue size %d: must be positive (0: the default, %d)", cfg.QueueSize, DefaultQueueSize)
	}
	if cfg.HealthPath == "" {
		cfg.HealthPath = DefaultHealthPath
	}
	switch {
	case cfg.HealthInFlight == 0:
		cfg.HealthInFlight = DefaultHealthInFlight
	case cfg.HealthInFlight < 0:
		cfg.HealthInFlight = 0
	}
	if !strings.HasPrefix(cfg.HealthPath, "/") {
		return nil, fmt.Errorf("health path %q: must start with /", cfg.HealthPath)
	}
	if cfg.HTTP2MaxStreams == 0 {
		cfg.HTTP2MaxStreams = DefaultHTTP2MaxStreams
	}
	if cfg.HTTP2MaxStreams < 0 {
		return nil, fmt.Errorf("HTTP/2 max streams %d: must be positive", cfg.HTTP2MaxStreams)
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
	if err := checkHeaders(cfg.ResponseHeaders); err != nil {
		return nil, err
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
		cfg:  cfg,
		adm:  admission{disc: disc, maxQueue: cfg.QueueSize},
		bufs: buffers{mem: budget{limit: cfg.BufferTotalMemory}, disk: budget{limit: cfg.BufferTotalDisk}},
		fwd:  forwarded{trusted: cfg.TrustedProxies, scheme: cfg.Scheme, prefix: prefix},
		ids:  newRequestIDs(),
		log:  zerolog.Nop(),
	}
	if cfg.Logger != nil {
		p.log = *cfg.Logger
	}
	p.health.max = int32(cfg.HealthInFlight)
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
