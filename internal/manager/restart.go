package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// restartStable is how long a container brought back must stay up for its
// next death to start a fresh count of tries: deaths closer together than
// that are a crash loop.
const restartStable = 5 * time.Minute

// restartWho names the manager in the history of a restart.
const restartWho = "switchyard (the active container died)"

// reviveState is how bringing the dead active container back goes. Guarded
// by Manager.mu.
type reviveState struct {
	container string // the active container being (or last) brought back
	running   bool   // a reviveLoop runs
	attempts  int    // tries in a row
	gaveUp    bool
	lastErr   string
}

// activeDiedLocked handles the death of the active container d: while the
// manager brings it back its requests wait in the proxy's queue (up to the
// queue timeout) rather than getting a 502; with restarts off they fail at
// once. It reports whether a reviveLoop must be started. Caller holds m.mu.
func (m *Manager) activeDiedLocked(d *deployment) bool {
	if d.target == nil {
		return false
	}
	if m.o.RestartAttempts < 0 {
		d.target.SetDown(true)
		return false
	}
	d.target.SetPaused(true)
	rv := &m.revive
	if rv.container != d.info.ID || d.revivedAt.IsZero() || time.Since(d.revivedAt) >= restartStable {
		*rv = reviveState{container: d.info.ID, running: rv.running}
	}
	rv.gaveUp = false
	if rv.running {
		return false
	}
	rv.running = true
	return true
}

// reviveLoop brings the dead active container d back: after a backoff that
// doubles with each try, it starts the container again and waits for its
// health checks, or, when the container is gone, launches its config again
// and switches to it. It gives up after Options.RestartAttempts tries in a
// row, and stops when d is no longer the dead active container (a switch
// replaced it) or an operator cancels a try.
func (m *Manager) reviveLoop(ctx context.Context, d *deployment) {
	defer func() {
		m.mu.Lock()
		m.revive.running = false
		m.mu.Unlock()
	}()
	for {
		n, ok := m.nextAttempt(d)
		if !ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.o.RestartBackoff << min(n-1, 10)):
		}
		next, err := m.restartOnce(ctx, d, n)
		m.mu.Lock()
		switch {
		case errors.Is(err, ErrBusy):
			m.revive.attempts-- // another operation runs: not a try
		case err == nil && next != nil:
			next.revivedAt = time.Now()
			m.revive.container, m.revive.lastErr = next.info.ID, ""
			m.mu.Unlock()
			return
		case err != nil && !errors.Is(err, ErrCancelled):
			m.revive.lastErr = err.Error()
		}
		cancelled := errors.Is(err, ErrCancelled)
		m.mu.Unlock()
		if cancelled { // by an operator, or a rollback that replaces it
			m.giveUp(d, firstLine(err.Error()))
			return
		}
	}
}

// nextAttempt counts the next try, or gives up when the tries are used up.
// It returns false when there is nothing (more) to do.
func (m *Manager) nextAttempt(d *deployment) (int, bool) {
	m.mu.Lock()
	if d.role != Active || d.info.Health != HealthDead {
		m.mu.Unlock()
		return 0, false // replaced by a switch, or back
	}
	rv := &m.revive
	if rv.attempts >= m.o.RestartAttempts {
		m.mu.Unlock()
		m.giveUp(d, fmt.Sprintf("%d tries in a row failed", rv.attempts))
		return 0, false
	}
	rv.attempts++
	n := rv.attempts
	m.mu.Unlock()
	return n, true
}

// giveUp leaves d dead: its requests get a 502 at once from now on, and the
// history, /status and /metrics say so.
func (m *Manager) giveUp(d *deployment, why string) {
	m.mu.Lock()
	if d.role != Active {
		m.mu.Unlock()
		return
	}
	m.revive.gaveUp = true
	last := m.revive.lastErr
	if d.target != nil {
		d.target.SetDown(true)
		d.target.SetPaused(false) // the waiting requests get their 502 now
	}
	m.mu.Unlock()
	msg := "gave up bringing the active container back: " + why
	if last != "" {
		msg += "; last: " + firstLine(last)
	}
	msg += "; the proxy answers 502 until a deploy or a rollback"
	m.log.Error().Str("container", ids.Short(d.info.ID)).Msg(msg)
	m.record(Event{Action: ActionRestart, Who: restartWho, ConfigID: d.cfg.ID, Container: d.info.ID, Result: resultError, Error: msg})
}

// restartOnce is one try, as an operation: the container started again
// and healthy, or its config launched again and switched to when it is
// gone. It returns the deployment that is active afterwards.
func (m *Manager) restartOnce(ctx context.Context, d *deployment, n int) (*deployment, error) {
	var next *deployment
	e := Event{Action: ActionRestart, Who: restartWho, ConfigID: d.cfg.ID, Container: d.info.ID}
	op := fmt.Sprintf("restart %s (try %d of %d)", ids.Short(d.info.ID), n, m.o.RestartAttempts)
	err := m.operate(ctx, op, e, func(ctx context.Context, e *Event) error {
		m.mu.Lock()
		still := d.role == Active && d.info.Health == HealthDead
		m.mu.Unlock()
		if !still {
			return errNothingToDo
		}
		ct, err := m.o.Docker.Inspect(ctx, d.info.ID)
		if errors.Is(err, dockerctl.ErrNotFound) {
			next, err = m.relaunch(ctx, d)
			if next != nil {
				e.Container = next.info.ID
			}
			return err
		}
		if err == nil && !ct.Running {
			err = m.o.Docker.Start(ctx, d.info.ID)
		}
		if err != nil {
			return fmt.Errorf("container %s: %w", ids.Short(d.info.ID), dockerErr(err))
		}
		if ct, err = m.waitHealthy(ctx, d.info.ID, d.cfg); err != nil {
			return m.withLogs(ctx, d.info.ID, fmt.Errorf("container %s started again: %w", ids.Short(d.info.ID), err))
		}
		next = d
		return m.resume(d, ct)
	})
	return next, err
}

// relaunch launches d's config again (from the config cache while the
// source is down) and switches to the new container: d, removed behind
// switchyard's back, retires.
func (m *Manager) relaunch(ctx context.Context, d *deployment) (*deployment, error) {
	info, err := m.launch(ctx, d.cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s is gone; launching its config again: %w", ids.Short(d.info.ID), err)
	}
	if _, err := m.switchTo(ctx, info.ID, nil); err != nil {
		return nil, fmt.Errorf("container %s is gone; switching to its relaunch %s: %w", ids.Short(d.info.ID), ids.Short(info.ID), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deployments[info.ID], nil
}

// resume points the proxy at d again, at the address its restart got: the
// queued requests go to it.
func (m *Manager) resume(d *deployment, ct dockerctl.Container) error {
	t, _, err := m.o.Proxy.SetTarget(d.info.ID, ct.Addr, d.cfg.Workers)
	if err != nil {
		return fmt.Errorf("point the proxy at container %s again: %w", ids.Short(d.info.ID), err)
	}
	m.mu.Lock()
	d.target = t
	d.info.Addr, d.info.Started = ct.Addr, ct.StartedAt
	d.info.Health = HealthHealthy // the one way back from dead: the manager's restart
	m.mu.Unlock()
	m.log.Info().Str("container", ids.Short(d.info.ID)).Str("addr", ct.Addr).Msg("the active container is back: the proxy points at it again")
	m.watchHealth(d)
	return nil
}

// restartStatusLocked is /status's view of the restarts of active. Caller
// holds m.mu.
func (m *Manager) restartStatusLocked(active *ContainerInfo) *RestartStatus {
	rv := m.revive
	if active == nil || rv.container != active.ID || (!rv.running && !rv.gaveUp) {
		return nil
	}
	st := &RestartStatus{Container: rv.container, State: RestartRunning, Attempts: rv.attempts,
		MaxAttempts: m.o.RestartAttempts, LastError: firstLine(rv.lastErr)}
	if rv.gaveUp {
		st.State = RestartGaveUp
	}
	return st
}

// withLogs adds a container's last log lines to err.
func (m *Manager) withLogs(ctx context.Context, id string, err error) error {
	logs, _ := m.o.Docker.Logs(context.WithoutCancel(ctx), id, 20)
	if logs = strings.TrimSpace(logs); logs != "" {
		return fmt.Errorf("%w\ncontainer's last log lines:\n%s", err, logs)
	}
	return err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
