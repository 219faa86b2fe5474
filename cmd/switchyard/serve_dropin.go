package main

import (
	"context"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/proxy"
)

// runDropInAPI serves the read-only part of the API (/status, /metrics,
// /series, /version and the status page) for a static upstream (`serve
// UPSTREAM WORKERS`) on --api, until ctx ends. There are no deployments:
// the POST routes answer 409 read_only.
func runDropInAPI(ctx context.Context, c *serveConfig, p *proxy.Proxy, log zerolog.Logger, ln net.Listener) error {
	st := &staticStatus{p: p, upstream: c.upstream, workers: c.workers, started: time.Now()}
	h := api.New(api.Options{Reader: st, Token: c.apiToken, Logger: log, Version: version,
		Metrics: metrics.Handler(metrics.Source{Proxy: p, Manager: st}), Upgrade: c.upgrade.upgradeFunc()})
	log.Info().Str("api", ln.Addr().String()).Str("upstream", c.upstream).Bool("auth", c.apiToken != "").
		Msg("read-only API listening (a static upstream has no deployments)")
	return c.serveAPI(ctx, h, ln)
}

// staticStatus is the status of a static upstream, in the manager's terms:
// one active "container", the upstream, healthy while it accepts TCP
// connections.
type staticStatus struct {
	p        *proxy.Proxy
	upstream string
	workers  int
	started  time.Time
}

// dialTimeout bounds the check that the upstream accepts connections.
const dialTimeout = time.Second

// Status is /status: 200 while the upstream accepts connections.
func (s *staticStatus) Status() manager.Status {
	health := manager.HealthHealthy
	if conn, err := net.DialTimeout("tcp", s.upstream, dialTimeout); err != nil {
		health = manager.HealthUnhealthy
	} else {
		conn.Close()
	}
	info := manager.ContainerInfo{ID: "static", Name: s.upstream, Addr: s.upstream, Workers: s.workers,
		Started: s.started, Health: health}
	if t := s.p.Active(); t != nil {
		info.InFlight = t.InFlight()
		snap := t.Stats().Snapshot()
		rep := t.Report()
		info.Stats, info.Windows = &snap, &rep
	}
	return manager.Status{App: "static upstream", Healthy: health == manager.HealthHealthy, Active: &info,
		Launched: []manager.ContainerInfo{}, Source: "upstream " + s.upstream, Started: s.started,
		Uptime: time.Since(s.started), Proxy: manager.ProxyStatusOf(s.p), History: []manager.Event{}}
}

// History is empty: nothing is deployed.
func (s *staticStatus) History() []manager.Event { return nil }

// Series is the proxy's last 15 minutes.
func (s *staticStatus) Series() []manager.Point { return s.p.Series() }

// DeployStats are empty: nothing is deployed.
func (s *staticStatus) DeployStats() manager.DeployStats { return manager.DeployStats{} }
