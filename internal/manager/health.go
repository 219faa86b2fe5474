package manager

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// healthConsumer is told when what a healthCheck sees changes.
type healthConsumer interface {
	healthChanged(now Health, last string)
}

// healthCheck probes one running container's health path every interval
// from its own goroutine and tells its consumer when the health changes:
// healthy after HealthyAfter passing probes in a row, unhealthy after
// UnhealthyAfter failing ones (rise and fall, as HAProxy's checks). It keeps
// probing after the first success, so a container that goes bad later is
// noticed.
type healthCheck struct {
	client   *http.Client
	addr     string
	cfg      deployconfig.Health
	consumer healthConsumer
	cancel   context.CancelFunc
}

// run probes until ctx ends, starting from health now.
func (h *healthCheck) run(ctx context.Context, now Health) {
	t := time.NewTicker(h.cfg.Interval.Duration)
	defer t.Stop()
	ok, bad := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pass, desc := probe(ctx, h.client, h.addr, h.cfg)
		if ctx.Err() != nil {
			return
		}
		next := now
		if pass {
			ok, bad = ok+1, 0
			if ok >= h.cfg.HealthyAfter {
				next = HealthHealthy
			}
		} else {
			ok, bad = 0, bad+1
			if bad >= h.cfg.UnhealthyAfter {
				next = HealthUnhealthy
			}
		}
		if next != now {
			now = next
			h.consumer.healthChanged(now, desc)
		}
	}
}

// stop ends the probing; a nil healthCheck (not started) is fine.
func (h *healthCheck) stop() {
	if h != nil {
		h.cancel()
	}
}

// probe does one health check: GET path on the container; 2xx and 3xx
// pass. It returns a short description of the answer for error messages.
func probe(ctx context.Context, client *http.Client, addr string, h deployconfig.Health) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "switchyard-health")
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	desc := fmt.Sprintf("HTTP %d %q", resp.StatusCode, strings.TrimSpace(string(body)))
	return resp.StatusCode >= 200 && resp.StatusCode < 400, desc
}

// watchHealth starts d's health checks, in a goroutine of the manager's,
// from d's current health; they run until d.checks.stop() or Close.
func (m *Manager) watchHealth(d *deployment) {
	ctx, cancel := context.WithCancel(context.Background())
	m.mu.Lock()
	hc := &healthCheck{client: m.probe, addr: d.info.Addr, cfg: d.cfg.Health, consumer: deploymentHealth{m, d}, cancel: cancel}
	d.checks = hc
	now := d.info.Health
	m.mu.Unlock()
	m.spawn(ctx, func(ctx context.Context) { hc.run(ctx, now) })
}

// deploymentHealth is the health consumer of one deployment.
type deploymentHealth struct {
	m *Manager
	d *deployment
}

// healthChanged applies the change (unless the container died meanwhile)
// and records it in the history.
func (c deploymentHealth) healthChanged(now Health, last string) {
	m, d := c.m, c.d
	m.mu.Lock()
	changed := setHealthLocked(d, now)
	active := d.role == Active
	m.mu.Unlock()
	if !changed {
		return
	}
	e := Event{Action: ActionHealthy, Container: d.info.ID, ConfigID: d.cfg.ID, Who: "health check", Result: resultOK, Error: last}
	if now == HealthUnhealthy {
		e.Action, e.Result = ActionUnhealthy, resultError
	}
	m.record(e)
	if active && now == HealthUnhealthy {
		m.log.Error().Str("container", ids.Short(d.info.ID)).Str("last", last).
			Msg("the active container is unhealthy: /status answers 503")
	}
}

// waitHealthy probes a new container until HealthyAfter consecutive
// successes, failing when it exits, StartTimeout passes or ctx ends.
func (m *Manager) waitHealthy(ctx context.Context, id string, cfg *deployconfig.Config) (dockerctl.Container, error) {
	h := cfg.Health
	begun := time.Now()
	deadline := begun.Add(h.StartTimeout.Duration)
	last := "no probe answered yet"
	ok := 0
	for {
		ct, err := m.o.Docker.Inspect(ctx, id)
		if err != nil {
			return ct, dockerErr(err)
		}
		if !ct.Running {
			return ct, fmt.Errorf("%w: the container exited with code %d (state %s, OOM-killed %v) before passing health checks on %s",
				ErrUnhealthy, ct.ExitCode, ct.State, ct.OOMKilled, h.Path)
		}
		if ct.Addr != "" {
			var pass bool
			if pass, last = probe(ctx, m.probe, ct.Addr, h); !pass {
				ok = 0
			} else if ok++; ok >= h.HealthyAfter {
				return m.confirmRunning(ctx, ct, cfg, begun)
			}
		}
		if time.Now().Add(h.Interval.Duration).After(deadline) {
			return ct, fmt.Errorf("%w: no %d consecutive passing health checks on %s within the start timeout %v; last answer: %s",
				ErrUnhealthy, h.HealthyAfter, h.Path, h.StartTimeout.Duration, last)
		}
		select {
		case <-ctx.Done():
			return ct, fmt.Errorf("stopped waiting for health checks on %s: %w", h.Path, context.Cause(ctx))
		case <-time.After(h.Interval.Duration):
		}
	}
}

// confirmRunning checks that a container whose probes passed still runs:
// the answers may have come from another process on its address. On the
// host network that is the active container on the same port, while the
// new one failed to bind it and exited; so there the container must also
// have run for a whole probe interval.
func (m *Manager) confirmRunning(ctx context.Context, ct dockerctl.Container, cfg *deployconfig.Config, begun time.Time) (dockerctl.Container, error) {
	if wait := cfg.Health.Interval.Duration - time.Since(begun); cfg.NetworkMode == "host" && wait > 0 {
		select {
		case <-ctx.Done():
			return ct, fmt.Errorf("stopped waiting for health checks on %s: %w", cfg.Health.Path, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
	now, err := m.o.Docker.Inspect(ctx, ct.ID)
	if err != nil {
		return ct, dockerErr(err)
	}
	if !now.Running {
		return now, fmt.Errorf("%w: its health checks passed, but the container exited (code %d, state %s): the answers came from another process on %s%s",
			ErrUnhealthy, now.ExitCode, now.State, ct.Addr, hostNetworkHint(cfg))
	}
	return now, nil
}

// stillRunning refuses to switch to a container that is no longer running,
// whatever its last probes said (a host-network container may have exited
// while another process answered on its port).
func (m *Manager) stillRunning(ctx context.Context, d *deployment) error {
	ct, err := m.o.Docker.Inspect(ctx, d.info.ID)
	if err != nil {
		return fmt.Errorf("check container %s before switching: %w", ids.Short(d.info.ID), dockerErr(err))
	}
	if !ct.Running {
		return fmt.Errorf("%w: container %s is no longer running (exit code %d, state %s)%s; launch it again",
			ErrUnhealthy, ids.Short(d.info.ID), ct.ExitCode, ct.State, hostNetworkHint(d.cfg))
	}
	return nil
}

// hostNetworkHint explains the likely cause for a host-network config.
func hostNetworkHint(cfg *deployconfig.Config) string {
	if cfg.NetworkMode != "host" {
		return ""
	}
	return fmt.Sprintf(" (on the host network port %d may be taken by the active container: two versions cannot listen on one host port side by side)", cfg.Port)
}
