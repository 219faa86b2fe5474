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

// probe does one health check: GET path on the container; 2xx and 3xx pass.
// It returns a short description of the answer for error messages.
func (m *Manager) probeOnce(ctx context.Context, addr string, h deployconfig.Health) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "switchyard-health")
	resp, err := m.probe.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	desc := fmt.Sprintf("HTTP %d %q", resp.StatusCode, strings.TrimSpace(string(body)))
	return resp.StatusCode >= 200 && resp.StatusCode < 400, desc
}

// waitHealthy probes a new container until HealthyAfter consecutive
// successes, failing when it exits or StartTimeout passes.
func (m *Manager) waitHealthy(ctx context.Context, id string, cfg *deployconfig.Config) (dockerctl.Container, error) {
	h := cfg.Health
	deadline := time.Now().Add(h.StartTimeout.Duration)
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
			pass, last = m.probeOnce(ctx, ct.Addr, h)
			if pass {
				ok++
				if ok >= h.HealthyAfter {
					return ct, nil
				}
			} else {
				ok = 0
			}
		}
		if time.Now().Add(h.Interval.Duration).After(deadline) {
			return ct, fmt.Errorf("%w: no %d consecutive passing health checks on %s within the start timeout %v; last answer: %s",
				ErrUnhealthy, h.HealthyAfter, h.Path, h.StartTimeout.Duration, last)
		}
		time.Sleep(h.Interval.Duration)
	}
}

// watchHealth keeps probing a running container (launched or active) and
// updates its health with rise/fall thresholds, until stopProbe is called.
func (m *Manager) watchHealth(d *deployment) {
	ctx, cancel := context.WithCancel(context.Background())
	m.mu.Lock()
	d.stopProbe = cancel
	m.mu.Unlock()
	h := d.cfg.Health
	go func() {
		t := time.NewTicker(h.Interval.Duration)
		defer t.Stop()
		ok, bad := 0, 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pass, desc := m.probeOnce(ctx, d.info.Addr, h)
			if ctx.Err() != nil {
				return
			}
			if pass {
				ok, bad = ok+1, 0
			} else {
				ok, bad = 0, bad+1
			}
			m.mu.Lock()
			was := d.info.Health
			switch {
			case was == HealthDead:
			case !pass && bad >= h.UnhealthyAfter && was != HealthUnhealthy:
				d.info.Health = HealthUnhealthy
			case pass && ok >= h.HealthyAfter && was != HealthHealthy:
				d.info.Health = HealthHealthy
			}
			now, active := d.info.Health, m.active == d
			m.mu.Unlock()
			if now != was {
				m.record(Event{Action: now, Container: d.info.ID, ConfigID: d.cfg.ID, Who: "health check",
					Result: map[bool]string{true: "ok", false: "error"}[now == HealthHealthy], Error: desc})
				if active && now == HealthUnhealthy {
					m.log.Error().Str("container", ids.Short(d.info.ID)).Str("last", desc).
						Msg("the active container is unhealthy: /status answers 503")
				}
			}
		}
	}()
}
