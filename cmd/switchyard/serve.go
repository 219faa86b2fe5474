package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/logsink"
	"github.com/switchyard/switchyard/proxy"
)

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
}

func serveSettings(c *serveConfig) *settings {
	s := &settings{cmd: "serve"}
	s.str(&c.listen, "listen", []string{"SWITCHYARD_LISTEN"}, ":8000", "address the proxy listens on")
	s.str(&c.upstream, "upstream", []string{"SWITCHYARD_UPSTREAM", "UPSTREAM"}, "", "static upstream host:port to proxy to (instead of managed containers)")
	s.integer(&c.workers, "workers", []string{"SWITCHYARD_WORKERS", "WORKERS"}, "1", "requests the static upstream takes at once (its worker count)", 1)
	s.integer(&c.maxConns, "max-connections", []string{"SWITCHYARD_MAX_CONNECTIONS", "MAX_CONNECTIONS"}, "2000", "concurrent client connections; past it new ones get a quick 503 and are closed", 1)
	s.duration(&c.queueTimeout, "queue-timeout", []string{"SWITCHYARD_QUEUE_TIMEOUT", "QUEUE_TIMEOUT"}, "3s", "how long a request waits for a worker before a 503 (bare number: milliseconds)")
	s.integer(&c.queueSize, "queue-size", []string{"SWITCHYARD_QUEUE_SIZE"}, "0", "most requests waiting at once; past it a 503 at once (0: no cap but max-connections)", 0)
	s.str(&c.discipline, "queue-discipline", []string{"SWITCHYARD_QUEUE_DISCIPLINE"}, "fifo", "order of the queue: fifo or lifo")
	s.str(&c.healthPath, "healthcheck-path", []string{"SWITCHYARD_HEALTHCHECK_PATH", "HEALTHCHECK_PATH"}, "/healthcheck", "path whose requests skip the queue")
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
	s.str(&c.logFormat, "log-format", []string{"SWITCHYARD_LOG_FORMAT", "LOG_FORMAT"}, "text", "access log format: text, json, or a template of %-codes (see docs)")
	s.str(&c.logLevel, "log-level", []string{"SWITCHYARD_LOG_LEVEL"}, "info", "event log level: debug, info, warn, error")
	s.duration(&c.connectTimeout, "connect-timeout", []string{"SWITCHYARD_CONNECT_TIMEOUT"}, "5s", "upstream connect timeout (502 past it)")
	s.duration(&c.upstreamTimeout, "upstream-timeout", []string{"SWITCHYARD_UPSTREAM_TIMEOUT"}, "60s", "wait for the upstream's response headers (504 past it)")
	s.duration(&c.readHeader, "read-header-timeout", []string{"SWITCHYARD_READ_HEADER_TIMEOUT"}, "10s", "client request header read timeout")
	s.duration(&c.idleTimeout, "idle-timeout", []string{"SWITCHYARD_IDLE_TIMEOUT"}, "60s", "client keep-alive idle timeout")
	s.duration(&c.shutdownTimeout, "shutdown-timeout", []string{"SWITCHYARD_SHUTDOWN_TIMEOUT"}, "30s", "on SIGTERM/SIGINT, how long in-flight requests may finish")
	return s
}

// parseServe reads serve's flags, environment and positional
// `UPSTREAM [WORKERS]` (gunicorn-proxy's form).
func parseServe(args []string, environ []string) (*serveConfig, error) {
	c := &serveConfig{}
	s := serveSettings(c)
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	rest, err := s.parse(args, func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	for _, h := range headersFromEnv(environ) {
		name, value, _ := strings.Cut(h, ": ")
		c.headers = append(c.headers, proxy.Header{Name: name, Value: value})
	}
	switch len(rest) {
	case 0:
	case 1, 2:
		c.upstream = rest[0]
		if len(rest) == 2 {
			if err := s.list[2].set(rest[1]); err != nil { // workers
				return nil, fmt.Errorf("serve: positional WORKERS: %v", err)
			}
		}
	default:
		return nil, fmt.Errorf("serve: too many arguments %q (want at most UPSTREAM WORKERS)", rest)
	}
	if c.upstream != "" {
		if _, _, err := net.SplitHostPort(c.upstream); err != nil {
			return nil, fmt.Errorf("serve: upstream %q: want host:port", c.upstream)
		}
	}
	switch c.discipline {
	case proxy.DisciplineFIFO, proxy.DisciplineLIFO:
	default:
		return nil, fmt.Errorf("serve: queue-discipline %q: want fifo or lifo", c.discipline)
	}
	switch c.scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("serve: scheme %q: want http or https", c.scheme)
	}
	if !strings.HasPrefix(c.healthPath, "/") {
		return nil, fmt.Errorf("serve: healthcheck-path %q: must start with /", c.healthPath)
	}
	if _, err := zerolog.ParseLevel(c.logLevel); err != nil || c.logLevel == "" {
		return nil, fmt.Errorf("serve: log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.logFormat != proxy.LogFormatJSON && c.logFormat != proxy.LogFormatText {
		if _, err := proxy.NewAccessLog(nil, c.logFormat); err != nil {
			return nil, fmt.Errorf("serve: log-format: %v", err)
		}
	}
	return c, nil
}

func runServe(ctx context.Context, args []string) error {
	c, err := parseServe(args, os.Environ())
	if err != nil {
		return err
	}
	level, _ := zerolog.ParseLevel(c.logLevel)
	logger := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("component", "switchyard").Logger()

	var access *proxy.AccessLog
	if c.logAddress != "off" {
		sink, err := logsink.Open(c.logAddress, "switchyard")
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer sink.Close()
		if access, err = proxy.NewAccessLog(sink, c.logFormat); err != nil {
			return fmt.Errorf("serve: log-format: %w", err)
		}
	}
	p, err := proxy.New(proxy.Config{
		QueueTimeout:    c.queueTimeout,
		QueueSize:       c.queueSize,
		Discipline:      c.discipline,
		HealthPath:      c.healthPath,
		Scheme:          c.scheme,
		TrustedProxies:  c.trusted,
		ResponseHeaders: c.headers,
		ConnectTimeout:  c.connectTimeout,
		UpstreamTimeout: c.upstreamTimeout,
		AccessLog:       access,
		Logger:          &logger,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if c.upstream != "" {
		if _, _, err := p.SetTarget("static", c.upstream, c.workers); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	ln, err := proxy.Listen(c.listen, c.maxConns)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", c.listen, err)
	}
	logger.Info().Str("listen", ln.Addr().String()).Str("upstream", c.upstream).Int("workers", c.workers).
		Dur("queue_timeout", c.queueTimeout).Int("max_connections", c.maxConns).Msg("proxy listening")

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = p.Serve(ctx, ln, proxy.ServerConfig{
		ReadHeaderTimeout: c.readHeader,
		IdleTimeout:       c.idleTimeout,
		ShutdownTimeout:   c.shutdownTimeout,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info().Msg("stopped")
	return nil
}
