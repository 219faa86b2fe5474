package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/logsink"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/metrics"
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

	// Managed mode (no --upstream): deployments of an app's containers.
	app           string
	configs       string
	layout        string
	s3Endpoint    string
	s3Region      string
	s3PathStyle   string
	apiAddr       string
	apiToken      string
	envFile       string
	stateDir      string
	dockerNetwork string
	policy        deployconfig.Policy

	// Production HTTP, each in its own file: TLS (serve_tls.go), the
	// request path's HTTP features (serve_http.go), and the handlers in
	// front of the proxy (serve_edge.go).
	tls  tlsSettings
	http httpSettings
	edge edgeSettings
}

func serveSettings(c *serveConfig) *settings {
	s := &settings{cmd: "serve"}
	s.str(&c.listen, "listen", []string{"SWITCHYARD_LISTEN"}, ":8000", "address the proxy listens on")
	s.str(&c.upstream, "upstream", []string{"SWITCHYARD_UPSTREAM", "UPSTREAM"}, "", "static upstream host:port to proxy to (instead of managed containers)")
	s.integer(&c.workers, "workers", []string{"SWITCHYARD_WORKERS", "WORKERS"}, "1", "requests the static upstream takes at once (its worker count)", 1)
	s.integer(&c.maxConns, "max-connections", []string{"SWITCHYARD_MAX_CONNECTIONS", "MAX_CONNECTIONS"}, "2000", "concurrent client connections; past it new ones get a quick 503 and are closed", 1)
	s.duration(&c.queueTimeout, "queue-timeout", []string{"SWITCHYARD_QUEUE_TIMEOUT", "QUEUE_TIMEOUT"}, "3s", "how long a request waits for a worker before a 503 (bare number: milliseconds)")
	s.integer(&c.queueSize, "queue-size", []string{"SWITCHYARD_QUEUE_SIZE"}, strconv.Itoa(proxy.DefaultQueueSize), "most requests waiting at once; past it a 503 at once", 1)
	s.str(&c.discipline, "queue-discipline", []string{"SWITCHYARD_QUEUE_DISCIPLINE"}, proxy.DefaultDiscipline, "adaptive (FIFO until FIFO would shed, then the newest served and the oldest shed at once), fifo (HAProxy's) or lifo; see docs/queue.md")
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
	s.str(&c.app, "app", []string{"SWITCHYARD_APP"}, "app", "the app's name: its containers carry the label switchyard.app=NAME")
	s.str(&c.configs, "configs", []string{"SWITCHYARD_CONFIGS"}, "./configs", "deployment configs: s3://BUCKET/PREFIX or a local directory")
	s.str(&c.layout, "layout", []string{"SWITCHYARD_LAYOUT"}, "native", "object names in --configs: native (<sha256>.json) or wunderproxy (container.<md5>.json)")
	s.str(&c.s3Endpoint, "s3-endpoint", []string{"SWITCHYARD_S3_ENDPOINT", "AWS_ENDPOINT_URL"}, "", "S3-compatible endpoint URL (default: AWS)")
	s.str(&c.s3Region, "s3-region", []string{"SWITCHYARD_S3_REGION", "AWS_REGION"}, "", "S3 region (default: the AWS config's, else us-east-1)")
	s.str(&c.s3PathStyle, "s3-path-style", []string{"SWITCHYARD_S3_PATH_STYLE"}, "auto", "path-style S3 addressing: true, false, or auto (true when --s3-endpoint is set)")
	s.str(&c.apiAddr, "api", []string{"SWITCHYARD_API"}, "127.0.0.1:8001", "management API listen address")
	s.str(&c.apiToken, "api-token", []string{"SWITCHYARD_API_TOKEN"}, "", "bearer token the API requires (required when --api is not loopback)")
	s.str(&c.envFile, "env-file", []string{"SWITCHYARD_ENV_FILE"}, "", "static KEY=value file; configs copy the keys they list in env_file")
	s.str(&c.stateDir, "state-dir", []string{"SWITCHYARD_STATE_DIR"}, "./state", "directory for the state file and deployment history")
	s.str(&c.dockerNetwork, "docker-network", []string{"SWITCHYARD_DOCKER_NETWORK"}, "", "user-defined Docker network to run containers on, reached by name (when switchyard runs in a container)")
	s.boolean(&c.policy.AllowPrivileged, "allow-privileged", []string{"SWITCHYARD_ALLOW_PRIVILEGED"}, "false", "let configs run privileged containers")
	s.boolean(&c.policy.AllowHostNetwork, "allow-host-network", []string{"SWITCHYARD_ALLOW_HOST_NETWORK"}, "false", "let configs use the host network")
	s.boolean(&c.policy.AllowBindMounts, "allow-bind-mounts", []string{"SWITCHYARD_ALLOW_BIND_MOUNTS"}, "false", "let configs bind-mount host paths")
	s.boolean(&c.policy.AllowCapAdd, "allow-cap-add", []string{"SWITCHYARD_ALLOW_CAP_ADD"}, "false", "let configs add Linux capabilities")
	addTLSSettings(s, &c.tls)
	addHTTPSettings(s, &c.http)
	addEdgeSettings(s, &c.edge)
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
	case proxy.DisciplineAdaptive, proxy.DisciplineFIFO, proxy.DisciplineLIFO:
	default:
		return nil, fmt.Errorf("serve: queue-discipline %q: want adaptive, fifo or lifo", c.discipline)
	}
	switch c.scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("serve: scheme %q: want http or https", c.scheme)
	}
	if !strings.HasPrefix(c.healthPath, "/") {
		return nil, fmt.Errorf("serve: healthcheck-path %q: must start with /", c.healthPath)
	}
	if c.upstream == "" {
		if err := checkAPIAddr(c.apiAddr, c.apiToken); err != nil {
			return nil, err
		}
		if _, err := deployconfig.ParseLayout(c.layout); err != nil {
			return nil, fmt.Errorf("serve: layout: %v", err)
		}
		switch c.s3PathStyle {
		case "auto", "true", "false":
		default:
			return nil, fmt.Errorf("serve: s3-path-style %q: want true, false or auto", c.s3PathStyle)
		}
	}
	for _, v := range []interface{ validate() error }{&c.tls, &c.http, &c.edge} {
		if err := v.validate(); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
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
	pcfg := proxy.Config{
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
	}
	c.http.apply(&pcfg)
	p, err := proxy.New(pcfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer p.Close()
	if c.upstream != "" {
		if _, _, err := p.SetTarget("static", c.upstream, c.workers); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	ln, err := proxy.Listen(c.listen, c.maxConns)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", c.listen, err)
	}
	if ln, err = c.http.wrapListener(ln); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	c.edge.responseHeaders = c.headers // static responses get them too
	handler, err := c.edge.wrap(p, logger)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info().Str("listen", ln.Addr().String()).Str("upstream", c.upstream).Int("workers", c.workers).
		Dur("queue_timeout", c.queueTimeout).Int("max_connections", c.maxConns).Msg("proxy listening")

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP reloads certificates when TLS is on (serve_tls.go asks for it);
	// without TLS it must not kill the proxy, as its default action would.
	signal.Ignore(syscall.SIGHUP)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// TLS may bring servers of its own (ACME challenges, the plain-HTTP
	// redirect); they run until ctx ends and report into errs.
	tlsConf, err := c.tls.setup(ctx, c.stateDir, logger, &wg, errs)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := p.Serve(ctx, ln, proxy.ServerConfig{
			Handler:           handler,
			TLS:               tlsConf,
			ReadHeaderTimeout: c.readHeader,
			IdleTimeout:       c.idleTimeout,
			ShutdownTimeout:   c.shutdownTimeout,
		})
		if err != nil {
			errs <- err
			cancel(err)
		}
	}()
	if c.upstream == "" {
		if err := startManaged(ctx, c, p, logger, &wg, errs, cancel); err != nil {
			cancel(err)
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	logger.Info().Msg("stopped")
	return nil
}

// startManaged starts the deploy manager and its API: config source,
// Docker, then the API listener, then adoption or the cold start.
func startManaged(ctx context.Context, c *serveConfig, p *proxy.Proxy, logger zerolog.Logger,
	wg *sync.WaitGroup, errs chan<- error, cancel context.CancelCauseFunc) error {
	layout, _ := deployconfig.ParseLayout(c.layout)
	if !strings.HasPrefix(c.configs, "s3://") && c.configs == "./configs" {
		// The embedded default: make the directory so that a first run works.
		if err := os.MkdirAll(c.configs, 0o755); err != nil {
			return fmt.Errorf("serve: configs directory %s: %w", c.configs, err)
		}
	}
	pathStyle := c.s3PathStyle == "true" || (c.s3PathStyle == "auto" && c.s3Endpoint != "")
	src, err := deployconfig.Open(ctx, c.configs, deployconfig.OpenOptions{
		Endpoint: c.s3Endpoint, Region: c.s3Region, PathStyle: pathStyle, Layout: layout})
	if err != nil {
		return fmt.Errorf("serve: --configs: %w", err)
	}
	var static map[string]string
	if c.envFile != "" {
		if static, err = deployconfig.LoadEnvFile(c.envFile); err != nil {
			return fmt.Errorf("serve: --env-file: %w", err)
		}
	}
	dc, err := dockerctl.New(ctx)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	m, err := manager.New(manager.Options{
		App: c.app, Source: src, Docker: dc, Proxy: p, Policy: c.policy, StaticEnv: static,
		StateDir: c.stateDir, Network: c.dockerNetwork, Logger: logger,
	})
	if err != nil {
		dc.Close()
		return fmt.Errorf("serve: %w", err)
	}
	aln, err := net.Listen("tcp", c.apiAddr)
	if err != nil {
		dc.Close()
		return fmt.Errorf("serve: API listen on %s: %w", c.apiAddr, err)
	}
	srv := &http.Server{
		Handler: api.New(api.Options{Manager: m, Token: c.apiToken, Logger: logger, Version: version,
			Metrics: metrics.Handler(metrics.Source{Proxy: p, Manager: m})}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// No write timeout: a launch answers when the container is healthy.
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer dc.Close()
		defer m.Close()
		go func() {
			<-ctx.Done()
			sctx, stop := context.WithTimeout(context.Background(), c.shutdownTimeout)
			defer stop()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serve: API on %s: %w", c.apiAddr, err)
			cancel(err)
		}
	}()
	logger.Info().Str("api", aln.Addr().String()).Str("configs", src.String()).Str("app", c.app).
		Bool("auth", c.apiToken != "").Msg("management API listening")
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("serve: start-up: %w", err)
	}
	return nil
}

// checkAPIAddr refuses an API reachable beyond loopback without a token.
func checkAPIAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("serve: api %q: want host:port", addr)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("serve: api %s listens beyond loopback: set --api-token (or SWITCHYARD_API_TOKEN)", addr)
}
