package proxy

// Every setting of the proxy in one place: Config documents each field,
// the Default* constants give the defaults, validate checks what the caller
// asked for (a zero field asks for its default) and withDefaults fills in
// the defaults and puts paths in their canonical form. New runs both;
// switchyard serve builds its flags' defaults from the constants and leaves
// the checks to New.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults, used where a Config or ServerConfig field is zero.
const (
	// DefaultQueueTimeout is how long a request waits for a worker slot
	// (HAProxy's timeout queue in gunicorn-proxy).
	DefaultQueueTimeout = 3 * time.Second
	// DefaultQueueSize is the most requests waiting for a worker at once.
	// 1000 waiters are served within the default queue timeout only by an
	// app doing 333 requests/s, more than the sync-worker apps the proxy
	// fronts; the ones past it would wait only to be shed.
	DefaultQueueSize = 1000
	// DefaultDiscipline is the adaptive queue: FIFO while the app keeps
	// up and during a burst FIFO would absorb, the newest served and the
	// oldest shed at once when FIFO would be shedding (docs/queue.md).
	DefaultDiscipline = DisciplineAdaptive
	// DefaultHealthPath is the path whose requests skip the queue.
	DefaultHealthPath = "/healthcheck"
	// DefaultHealthInFlight is the most health-path requests that skip the
	// queue at once: a load balancer's checks, and a second one's.
	DefaultHealthInFlight = 2
	// DefaultConnectTimeout bounds dialing the app (502 past it).
	DefaultConnectTimeout = 5 * time.Second
	// DefaultUpstreamTimeout bounds the wait for the app's response
	// headers (504 past it).
	DefaultUpstreamTimeout = 60 * time.Second
	// DefaultMaxBody is the largest request body accepted (413 past it).
	DefaultMaxBody = 100 << 20
	// DefaultBufferMemory is how much of one body is buffered in memory
	// before the rest goes to a temporary file.
	DefaultBufferMemory = 1 << 20
	// DefaultBufferTotalMemory is the memory all buffered bodies together
	// may hold; past it they spill to files sooner. 4096 chunks of 32 KiB:
	// two for each of DefaultMaxConnections.
	DefaultBufferTotalMemory = 128 << 20
	// DefaultBufferTotalDisk is what all spill files together may hold;
	// past it a request body is refused (503) and a response streamed. Ten
	// bodies of DefaultMaxBody.
	DefaultBufferTotalDisk = 1 << 30
	// DefaultClientBodyTimeout is the longest wait for the next bytes of a
	// request body being buffered (nginx's client_body_timeout).
	DefaultClientBodyTimeout = 60 * time.Second
	// DefaultClientSendTimeout is the longest wait for a client to take the
	// next bytes of a buffered response (nginx's send_timeout).
	DefaultClientSendTimeout = 60 * time.Second
	// DefaultHTTP2MaxStreams is the most concurrent streams one HTTP/2
	// connection may open (nginx: 128, HAProxy: 100).
	DefaultHTTP2MaxStreams = 100
	// DefaultSampleInterval is how often the proxy samples its counters for
	// the 1-minute and 15-minute windows. A window's start is known to
	// within it.
	DefaultSampleInterval = 5 * time.Second

	// DefaultMaxConnections is the connection limit switchyard serve gives
	// Listen (gunicorn-proxy's MAX_CONNECTIONS).
	DefaultMaxConnections = 2000
	// DefaultReadHeaderTimeout bounds reading a request's headers
	// (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultShutdownTimeout is how long a graceful stop waits for the
	// requests in flight.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxHeaderBytes bounds a request's headers (HTTP/1 and HTTP/2).
	DefaultMaxHeaderBytes = 64 << 10

	// DefaultTextFormat is the access log's "text" line (LogFormatText):
	// HAProxy's `%HM %HU %ST %TR/%Tw/%Tr/%Ta %U` plus time, client, bytes
	// out, request id, target and the proxy's reason when it answered
	// itself.
	DefaultTextFormat = `%T %ci "%HM %HU %HV" %ST %TR/%Tw/%Tr/%Ta %U %B %ID %s %E`
)

// Config sets up a Proxy.
type Config struct {
	// QueueTimeout is how long a request may wait for a worker slot before
	// it gets a 503. Default DefaultQueueTimeout.
	QueueTimeout time.Duration
	// QueueSize caps the number of waiting requests; past it a request gets
	// a 503 at once. Default DefaultQueueSize.
	QueueSize int
	// Discipline orders the queue and decides whom to shed before the
	// queue timeout: DisciplineAdaptive, DisciplineFIFO (HAProxy's
	// behaviour exactly) or DisciplineLIFO; see docs/queue.md. Default
	// DefaultDiscipline.
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

	// Fallback, when set, sends requests the app cannot take to a peer's
	// proxy (fallback.go). Default nil: none are.
	Fallback *Fallback

	// DisableStats turns off the counters, their windows and the connection
	// states (Stats, Report and Connections stay at zero, but for the queue
	// length). It exists to measure what they cost (bench_test.go); default
	// false: stats on.
	DisableStats bool
}

// validate checks what the caller asked for; a zero field asks for its
// default and is fine. The error names the setting, its value and what is
// wanted.
func (c *Config) validate() error {
	for _, check := range []func() error{c.checkQueue, c.checkUpstream, c.checkPaths, c.checkBuffering} {
		if err := check(); err != nil {
			return err
		}
	}
	return checkHeaders(c.ResponseHeaders)
}

func (c *Config) checkQueue() error {
	if c.QueueTimeout < 0 {
		return fmt.Errorf("queue timeout %v: must be positive", c.QueueTimeout)
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("queue size %d: must be positive (0: the default, %d)", c.QueueSize, DefaultQueueSize)
	}
	if c.HTTP2MaxStreams < 0 {
		return fmt.Errorf("HTTP/2 max streams %d: must be positive", c.HTTP2MaxStreams)
	}
	_, err := newDiscipline(c.Discipline, c.QueueTimeout)
	return err
}

func (c *Config) checkUpstream() error {
	if c.ConnectTimeout < 0 || c.UpstreamTimeout < 0 {
		return errors.New("connect and upstream timeouts must be positive")
	}
	switch c.Scheme {
	case "", "http", "https":
		return nil
	}
	return fmt.Errorf("scheme %q: want http or https", c.Scheme)
}

func (c *Config) checkPaths() error {
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("health path %q: must start with /", c.HealthPath)
	}
	if _, err := normalizePrefix(c.Prefix); err != nil {
		return err
	}
	for _, pre := range c.NoBufferPrefixes {
		if !strings.HasPrefix(pre, "/") {
			return fmt.Errorf("no-buffer prefix %q: must start with /", pre)
		}
	}
	return nil
}

func (c *Config) checkBuffering() error {
	if c.BufferMemory < 0 {
		return fmt.Errorf("buffer memory %d: must be positive", c.BufferMemory)
	}
	if c.ClientBodyTimeout < 0 || c.ClientSendTimeout < 0 {
		return errors.New("client body and send timeouts must be positive")
	}
	if c.BufferDir == "" {
		return nil
	}
	fi, err := os.Stat(c.BufferDir)
	if err != nil {
		return fmt.Errorf("buffer dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("buffer dir %s: not a directory", c.BufferDir)
	}
	return nil
}

// withDefaults returns c with each zero field that has a default set to it,
// and the paths in their canonical form (prefixes without a trailing
// slash). c must have passed validate.
func (c Config) withDefaults() Config {
	orDefault(&c.QueueTimeout, DefaultQueueTimeout)
	orDefault(&c.QueueSize, DefaultQueueSize)
	orDefault(&c.Discipline, DefaultDiscipline)
	orDefault(&c.HealthPath, DefaultHealthPath)
	orDefault(&c.HealthInFlight, DefaultHealthInFlight)
	orDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	orDefault(&c.UpstreamTimeout, DefaultUpstreamTimeout)
	orDefault(&c.MaxBody, DefaultMaxBody)
	orDefault(&c.BufferMemory, DefaultBufferMemory)
	orDefault(&c.BufferTotalMemory, DefaultBufferTotalMemory)
	orDefault(&c.BufferTotalDisk, DefaultBufferTotalDisk)
	orDefault(&c.ClientBodyTimeout, DefaultClientBodyTimeout)
	orDefault(&c.ClientSendTimeout, DefaultClientSendTimeout)
	orDefault(&c.HTTP2MaxStreams, DefaultHTTP2MaxStreams)
	c.Prefix, _ = normalizePrefix(c.Prefix)
	pres := make([]string, 0, len(c.NoBufferPrefixes))
	for _, pre := range c.NoBufferPrefixes {
		if pre = strings.TrimRight(pre, "/"); pre == "" {
			pre = "/"
		}
		pres = append(pres, pre)
	}
	c.NoBufferPrefixes = pres
	return c
}

// orDefault sets *v to def when it is zero.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// withDefaults fills in the zero fields of sc; the handler defaults to p.
func (sc ServerConfig) withDefaults(p *Proxy) ServerConfig {
	orDefault(&sc.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&sc.IdleTimeout, DefaultIdleTimeout)
	orDefault(&sc.ShutdownTimeout, DefaultShutdownTimeout)
	if sc.Handler == nil {
		sc.Handler = p
	}
	return sc
}
