package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/proxy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// serveConfig is everything `switchyard serve` is told.
type serveConfig struct {
	listen          string
	upstream        string
	workers         int
	maxConns        int
	queueTimeout    time.Duration
	queueSize       int
	discipline      string
	healthPath      string
	scheme          string
	trusted         []netip.Prefix
	headers         []proxy.Header
	logAddress      string
	logFormat       string
	logLevel        string
	connectTimeout  time.Duration
	upstreamTimeout time.Duration
	readHeader      time.Duration
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
	threads         int
	stdHTTP1        bool

	// Managed mode (no upstream): the deploy manager and its API
	// (serve_managed.go).
	managedSettings
	// apiGiven says --api (or SWITCHYARD_API) was set: with an upstream,
	// the read-only API is served there (serve_dropin.go); apiFlagged says
	// the flag set it; apiSkipped why it is not served after all.
	apiGiven, apiFlagged bool
	apiSkipped           string

	// Production HTTP, each in its own file: TLS (serve_tls.go), the
	// request path's HTTP features (serve_http.go), and the handlers in
	// front of the proxy (serve_edge.go).
	tls   tlsSettings
	http  httpSettings
	edge  edgeSettings
	fleet fleetSettings // serve_fleet.go
	// upgrade is switchyard's upgrade of itself (serve_upgrade.go).
	upgrade upgradeSettings
}

// serve's own defaults; the proxy's come from its Default constants.
const (
	defaultListen  = ":8000"
	defaultWorkers = 1 // a static upstream's, as gunicorn-proxy's WORKERS
)

func serveSettings(c *serveConfig) *settings {
	s := &settings{cmd: "serve"}
	s.str(&c.listen, "listen", []string{"SWITCHYARD_LISTEN"}, defaultListen, "address the proxy listens on")
	s.str(&c.upstream, "upstream", []string{"SWITCHYARD_UPSTREAM", "UPSTREAM"}, "", "static upstream host:port to proxy to (instead of managed containers)")
	s.integer(&c.workers, "workers", []string{"SWITCHYARD_WORKERS", "WORKERS"}, strconv.Itoa(defaultWorkers), "requests the static upstream takes at once (its worker count)", 1)
	s.integer(&c.maxConns, "max-connections", []string{"SWITCHYARD_MAX_CONNECTIONS", "MAX_CONNECTIONS"}, strconv.Itoa(proxy.DefaultMaxConnections), "concurrent client connections; past it new ones get a quick 503 and are closed", 1)
	s.duration(&c.queueTimeout, "queue-timeout", []string{"SWITCHYARD_QUEUE_TIMEOUT", "QUEUE_TIMEOUT"}, durationText(proxy.DefaultQueueTimeout), "how long a request waits for a worker before a 503 (bare number: milliseconds)")
	s.integer(&c.queueSize, "queue-size", []string{"SWITCHYARD_QUEUE_SIZE"}, strconv.Itoa(proxy.DefaultQueueSize), "most requests waiting at once; past it a 503 at once", 1)
	s.str(&c.discipline, "queue-discipline", []string{"SWITCHYARD_QUEUE_DISCIPLINE"}, proxy.DefaultDiscipline, "adaptive (FIFO until FIFO would shed, then the newest served and the oldest shed at once), fifo (HAProxy's) or lifo; see docs/queue.md")
	s.str(&c.healthPath, "healthcheck-path", []string{"SWITCHYARD_HEALTHCHECK_PATH", "HEALTHCHECK_PATH"}, proxy.DefaultHealthPath, "path whose GET and HEAD requests skip the queue (at most two at once)")
	s.str(&c.scheme, "scheme", []string{"SWITCHYARD_SCHEME", "SCHEME"}, "", "X-Forwarded-Proto to send (http or https); default: the connection's")
	s.add("trusted-proxies", []string{"SWITCHYARD_TRUSTED_PROXIES", "TRUSTED_PROXIES"}, "", "comma-separated CIDRs whose X-Forwarded-* headers are kept and appended to", func(v string) error {
		p, err := parseCIDRs(v)
		c.trusted = append(c.trusted, p...)
		return err
	})
	s.add("header", []string{"SWITCHYARD_HEADER"}, "", `response header "Name: value" added to every response (repeatable; also HEADER_NAME=value)`, func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("%q is not \"Name: value\"", v)
		}
		c.headers = append(c.headers, proxy.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		return nil
	})
	s.str(&c.logAddress, "log-address", []string{"SWITCHYARD_LOG_ADDRESS", "LOG_ADDRESS"}, "stdout", "access log destination: stdout, stderr, a file path, udp://host:port, tcp://host:port, unix:///path, or off")
	s.str(&c.logFormat, "log-format", []string{"SWITCHYARD_LOG_FORMAT", "LOG_FORMAT"}, proxy.LogFormatText, "access log format: text, json, or a template of %-codes (see docs)")
	s.str(&c.logLevel, "log-level", []string{"SWITCHYARD_LOG_LEVEL"}, zerolog.InfoLevel.String(), "event log level: debug, info, warn, error")
	s.duration(&c.connectTimeout, "connect-timeout", []string{"SWITCHYARD_CONNECT_TIMEOUT"}, durationText(proxy.DefaultConnectTimeout), "upstream connect timeout (502 past it)")
	s.duration(&c.upstreamTimeout, "upstream-timeout", []string{"SWITCHYARD_UPSTREAM_TIMEOUT"}, durationText(proxy.DefaultUpstreamTimeout), "wait for the upstream's response headers (504 past it)")
	s.duration(&c.readHeader, "read-header-timeout", []string{"SWITCHYARD_READ_HEADER_TIMEOUT"}, durationText(proxy.DefaultReadHeaderTimeout), "client request header read timeout")
	s.duration(&c.idleTimeout, "idle-timeout", []string{"SWITCHYARD_IDLE_TIMEOUT"}, durationText(proxy.DefaultIdleTimeout), "client keep-alive idle timeout")
	s.duration(&c.shutdownTimeout, "shutdown-timeout", []string{"SWITCHYARD_SHUTDOWN_TIMEOUT"}, durationText(proxy.DefaultShutdownTimeout), "on SIGTERM/SIGINT, how long in-flight requests may finish")
	s.integer(&c.threads, "threads", []string{"SWITCHYARD_THREADS"}, "0", "OS threads running Go code at once (GOMAXPROCS); 0: one per CPU the process may use. 1 costs less CPU per request on small hosts (see bench/README.md)", 0)
	s.boolean(&c.stdHTTP1, "std-http1", []string{"SWITCHYARD_STD_HTTP1"}, "false", "serve plain HTTP/1.1 with Go's net/http server instead of switchyard's own (same behaviour, more CPU per request; for comparison)")
	addManagedSettings(s, &c.managedSettings)
	addTLSSettings(s, &c.tls)
	addHTTPSettings(s, &c.http)
	addEdgeSettings(s, &c.edge)
	addFleetSettings(s, &c.fleet)
	addUpgradeSettings(s, &c.upgrade)
	return s
}

// durationText writes a default duration as people type it: 60s rather
// than time.Duration's 1m0s.
func durationText(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// parseServe reads serve's flags, environment and positional
// `UPSTREAM [WORKERS]` (gunicorn-proxy's form), then checks the result.
// Its errors are one line naming the setting.
func parseServe(args []string, environ []string) (*serveConfig, error) {
	c := &serveConfig{}
	s := serveSettings(c)
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	// Flags may follow the positional UPSTREAM WORKERS, as they may
	// precede them.
	rest, err := s.parse(orderArgs(args, s), func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	c.apiGiven, c.apiFlagged = s.given["api"], s.flagged["api"]
	for _, h := range headersFromEnv(environ) {
		name, value, _ := strings.Cut(h, ": ")
		c.headers = append(c.headers, proxy.Header{Name: name, Value: value})
	}
	switch len(rest) {
	case 0:
	case 1, 2:
		c.upstream = rest[0]
		if len(rest) == 2 {
			if err := s.lookup("workers").set(rest[1]); err != nil {
				return nil, fmt.Errorf("positional WORKERS: %v", err)
			}
		}
	default:
		return nil, fmt.Errorf("too many arguments %q (want at most UPSTREAM WORKERS)", rest)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check checks what the settings' own parsing cannot: each value against
// the others, and against the one place that checks each part (proxy.New
// for the proxy, the edge handlers' constructors).
func (c *serveConfig) check() error {
	if c.upstream != "" {
		if _, _, err := net.SplitHostPort(c.upstream); err != nil {
			return fmt.Errorf("upstream %q: want host:port", c.upstream)
		}
		// Drop-in mode serves the read-only API only when asked. Asked by
		// the environment alone (as the image's SWITCHYARD_API does) for an
		// address beyond loopback without a token, it serves none and says
		// why; asked by the flag, that is an error.
		if err := checkAPIAddr(c.apiAddr, c.apiToken); c.apiGiven && err != nil {
			if c.apiFlagged {
				return err
			}
			c.apiGiven, c.apiSkipped = false, err.Error()
		}
	} else if err := c.managedSettings.validate(); err != nil {
		return err
	}
	for _, validate := range []func() error{func() error { return c.fleet.validate(c) }, c.tls.validate, c.http.validate} {
		if err := validate(); err != nil {
			return err
		}
	}
	if _, err := zerolog.ParseLevel(c.logLevel); err != nil || c.logLevel == "" {
		return fmt.Errorf("log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.logFormat != proxy.LogFormatJSON && c.logFormat != proxy.LogFormatText {
		if _, err := proxy.NewAccessLog(nil, c.logFormat); err != nil {
			return fmt.Errorf("log-format: %v", err)
		}
	}
	if err := c.checkProxy(); err != nil {
		return err
	}
	c.edge.responseHeaders = c.headers // static responses get them too
	return c.edge.build()
}

// runServe is `switchyard serve`: it runs until SIGTERM or SIGINT, then
// stops gracefully. Its errors, parse errors included, start "serve: ".
func runServe(ctx context.Context, args []string) error {
	if err := parseAndServe(ctx, args); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func parseAndServe(ctx context.Context, args []string) error {
	c, err := parseServe(args, os.Environ())
	if err != nil {
		return err
	}
	defer c.edge.close()
	if c.threads > 0 {
		runtime.GOMAXPROCS(c.threads)
	}
	level, _ := zerolog.ParseLevel(c.logLevel)
	logger := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("component", "switchyard").Logger()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP reloads certificates when TLS is on (serve_tls.go asks for it);
	// without TLS it must not kill the proxy, as its default action would.
	signal.Ignore(syscall.SIGHUP)
	err = withHandoff(ctx, c, logger, func(ctx context.Context) error { return serve(ctx, c, logger, newDocker) })
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info().Msg("stopped")
	return nil
}
