package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/proxy"
)

// managedSettings are the settings of managed mode (no --upstream): the
// deploy manager, where it finds configs and Docker, and its API.
type managedSettings struct {
	app           string
	hostID        string
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
	// restartAttempts bounds the tries to bring a dead active container
	// back (0: none); launchedTTL is how long a launched container waits
	// for a switch (negative: forever).
	restartAttempts int
	launchedTTL     time.Duration
}

// Managed mode's defaults.
const (
	defaultApp      = "app"
	defaultConfigs  = "./configs" // made at start when missing, so that a first run works
	defaultAPIAddr  = "127.0.0.1:8001"
	defaultStateDir = "./state"
)

// addManagedSettings declares their flags and environment variables.
func addManagedSettings(s *settings, m *managedSettings) {
	s.str(&m.app, "app", []string{"SWITCHYARD_APP"}, defaultApp, "the app's name: its containers carry the label switchyard.app=NAME")
	s.str(&m.hostID, "host-id", []string{"SWITCHYARD_HOST_ID"}, "", "this host's name among the app's hosts (a label on its containers, its heartbeat's name); default: the state file's, else the hostname")
	s.str(&m.configs, "configs", []string{"SWITCHYARD_CONFIGS"}, defaultConfigs, "deployment configs: s3://BUCKET/PREFIX or a local directory")
	s.str(&m.layout, "layout", []string{"SWITCHYARD_LAYOUT"}, deployconfig.LayoutNative.String(), "object names in --configs: native (<sha256>.json) or wunderproxy (container.<md5>.json)")
	s.str(&m.s3Endpoint, "s3-endpoint", []string{"SWITCHYARD_S3_ENDPOINT", "AWS_ENDPOINT_URL"}, "", "S3-compatible endpoint URL (default: AWS)")
	s.str(&m.s3Region, "s3-region", []string{"SWITCHYARD_S3_REGION", "AWS_REGION"}, "", "S3 region (default: the AWS config's, else us-east-1)")
	s.str(&m.s3PathStyle, "s3-path-style", []string{"SWITCHYARD_S3_PATH_STYLE"}, "auto", "path-style S3 addressing: true, false, or auto (true when --s3-endpoint is set)")
	s.str(&m.apiAddr, "api", []string{"SWITCHYARD_API"}, defaultAPIAddr, "management API listen address (with an upstream: the read-only API, served only when this is set)")
	s.str(&m.apiToken, "api-token", []string{"SWITCHYARD_API_TOKEN"}, "", "bearer token the API requires (required when --api is not loopback)")
	s.str(&m.envFile, "env-file", []string{"SWITCHYARD_ENV_FILE"}, "", "static KEY=value file; configs copy the keys they list in env_file")
	s.str(&m.stateDir, "state-dir", []string{"SWITCHYARD_STATE_DIR"}, defaultStateDir, "directory for the state file, deployment history and config cache")
	s.str(&m.dockerNetwork, "docker-network", []string{"SWITCHYARD_DOCKER_NETWORK"}, "", "user-defined Docker network to run containers on, reached by name (when switchyard runs in a container)")
	s.integer(&m.restartAttempts, "restart-attempts", []string{"SWITCHYARD_RESTART_ATTEMPTS"}, strconv.Itoa(manager.DefaultRestartAttempts),
		"tries in a row to bring a dead active container back (requests wait in the queue meanwhile) before giving up; 0: never", 0)
	s.add("launched-ttl", []string{"SWITCHYARD_LAUNCHED_TTL"}, durationText(manager.DefaultLaunchedTTL),
		"how long a launched container waits for a switch before it is removed; off: forever", func(v string) error {
			if strings.EqualFold(strings.TrimSpace(v), "off") {
				m.launchedTTL = -1
				return nil
			}
			d, err := parseDuration(v)
			m.launchedTTL = d
			return err
		})
	addPolicySettings(s, &m.policy)
}

// addPolicySettings declares the operator's policy: what configs may ask
// for, and the limits every container gets (serve and check share them).
func addPolicySettings(s *settings, p *deployconfig.Policy) {
	s.boolean(&p.AllowPrivileged, "allow-privileged", []string{"SWITCHYARD_ALLOW_PRIVILEGED"}, "false", "let configs run privileged containers")
	s.boolean(&p.AllowHostNetwork, "allow-host-network", []string{"SWITCHYARD_ALLOW_HOST_NETWORK"}, "false", "let configs use the host network")
	s.boolean(&p.AllowBindMounts, "allow-bind-mounts", []string{"SWITCHYARD_ALLOW_BIND_MOUNTS"}, "false", "let configs bind-mount host paths")
	s.boolean(&p.AllowCapAdd, "allow-cap-add", []string{"SWITCHYARD_ALLOW_CAP_ADD"}, "false", "let configs add Linux capabilities")
	s.add("default-memory", []string{"SWITCHYARD_DEFAULT_MEMORY"}, "", "memory limit of containers whose config sets none, e.g. 512m (default: none)", func(v string) error {
		n, err := deployconfig.ParseSize(v)
		p.DefaultMemory = n
		return err
	})
	s.add("pids-limit", []string{"SWITCHYARD_PIDS_LIMIT"}, "", "most processes in every container, e.g. 1024 (default: no limit)", func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want a whole number of at least 1", v)
		}
		p.PidsLimit = n
		return nil
	})
}

// validate checks them after parsing, in managed mode only.
func (m *managedSettings) validate() error {
	if err := checkAPIAddr(m.apiAddr, m.apiToken); err != nil {
		return err
	}
	if m.hostID != "" {
		if err := manager.ValidHostID(m.hostID); err != nil {
			return fmt.Errorf("host-id: %v", err)
		}
	}
	if _, err := deployconfig.ParseLayout(m.layout); err != nil {
		return fmt.Errorf("layout: %v", err)
	}
	switch m.s3PathStyle {
	case "auto", "true", "false":
	default:
		return fmt.Errorf("s3-path-style %q: want true, false or auto", m.s3PathStyle)
	}
	return nil
}

// checkAPIAddr refuses an API reachable beyond loopback without a token.
func checkAPIAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api %q: want host:port", addr)
	}
	if token != "" || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("api %s listens beyond loopback: set --api-token (or SWITCHYARD_API_TOKEN)", addr)
}

// dockerClient is the Docker the manager drives, and its Close.
type dockerClient interface {
	manager.Docker
	Close() error
}

// newDocker connects to the Docker daemon (DOCKER_HOST or the socket).
func newDocker(ctx context.Context) (dockerClient, error) { return dockerctl.New(ctx) }

// runManaged runs the deploy manager and its API until ctx ends. On the way
// up: the config source, Docker, the manager, the API's listener (a bad
// address fails before anything is adopted), then the start-up (adoption
// or the cold start), and only then the API and the proxy answer: requests
// that arrive meanwhile wait in the listeners' queues. On the way down, in order: the
// API's graceful shutdown, so that no request still uses the manager (a
// launch may run for minutes: past the shutdown timeout the manager
// cancels it, and it cleans up); then the manager, which waits for its
// goroutines; then Docker.
func runManaged(ctx context.Context, c *serveConfig, p *proxy.Proxy, log zerolog.Logger,
	connect func(context.Context) (dockerClient, error), adopted chan<- struct{}) error {
	m, closeAll, err := c.newManager(ctx, p, log, connect)
	if err != nil {
		return err
	}
	defer closeAll()
	ln, err := c.upgrade.listenTCP(c.apiAddr)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w", c.apiAddr, err)
	}
	if u := c.upgrade.upgrader; u != nil {
		u.setManager(m)
	}
	if err := m.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("start-up: %w", err)
	}
	close(adopted) // the proxy accepts now
	stopFleet, err := c.startFleet(ctx, m, p, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopFleet() // before closeAll: the follower drives the manager
	h := api.New(api.Options{Manager: c.apiManager(m), Token: c.apiToken, Logger: log, Version: version,
		Metrics: metrics.Handler(metrics.Source{Proxy: p, Manager: m}), Upgrade: c.upgrade.upgradeFunc()})
	log.Info().Str("api", ln.Addr().String()).Str("configs", m.Status().Source).Str("app", c.app).
		Bool("auth", c.apiToken != "").Msg("management API listening")
	return c.serveAPI(ctx, h, ln)
}

// serveAPI serves the API's handler h on ln until ctx ends, then shuts it
// down gracefully.
func (c *serveConfig) serveAPI(ctx context.Context, h http.Handler, ln net.Listener) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: proxy.DefaultReadHeaderTimeout,
		IdleTimeout:       proxy.DefaultIdleTimeout,
		// No write timeout: a launch answers when the container is healthy.
	}
	return proxy.ServeUntil(ctx, srv, ln, c.shutdownTimeout)
}

// newManager opens the config source, connects to Docker and makes the
// manager. closeAll closes the manager, then Docker.
func (c *serveConfig) newManager(ctx context.Context, p *proxy.Proxy, log zerolog.Logger,
	connect func(context.Context) (dockerClient, error)) (*manager.Manager, func(), error) {
	src, static, err := c.source(ctx)
	if err != nil {
		return nil, nil, err
	}
	dc, err := connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	restarts := c.restartAttempts
	if restarts == 0 {
		restarts = -1 // off
	}
	m, err := manager.New(manager.Options{
		App: c.app, HostID: c.hostID, Source: src, Docker: dc, Proxy: p, Policy: c.policy, StaticEnv: static,
		StateDir: c.stateDir, Network: c.dockerNetwork, Logger: log,
		RestartAttempts: restarts, LaunchedTTL: c.launchedTTL, Follow: c.fleet.follow,
		Holder: processHolder(), TakeOver: c.upgrade.takeOver(),
	})
	if err != nil {
		dc.Close()
		return nil, nil, err
	}
	return m, func() { m.Close(); dc.Close() }, nil
}

// openOptions are how --configs is opened. Configs used once stay readable
// while S3 is down: rollback, restarts and relaunches read them from the
// state directory.
func (c *serveConfig) openOptions() deployconfig.OpenOptions {
	layout, _ := deployconfig.ParseLayout(c.layout)
	pathStyle := c.s3PathStyle == "true" || (c.s3PathStyle == "auto" && c.s3Endpoint != "")
	return deployconfig.OpenOptions{Endpoint: c.s3Endpoint, Region: c.s3Region, PathStyle: pathStyle, Layout: layout,
		CacheDir: filepath.Join(c.stateDir, "configs")}
}

// source opens the config source and reads the static env file.
func (c *serveConfig) source(ctx context.Context) (deployconfig.Source, map[string]string, error) {
	if c.configs == defaultConfigs {
		if err := os.MkdirAll(c.configs, 0o755); err != nil {
			return nil, nil, fmt.Errorf("configs directory %s: %w", c.configs, err)
		}
	}
	src, err := deployconfig.Open(ctx, c.configs, c.openOptions())
	if err != nil {
		return nil, nil, fmt.Errorf("--configs: %w", err)
	}
	var static map[string]string
	if c.envFile != "" {
		if static, err = deployconfig.LoadEnvFile(c.envFile); err != nil {
			return nil, nil, fmt.Errorf("--env-file: %w", err)
		}
	}
	return src, static, nil
}
