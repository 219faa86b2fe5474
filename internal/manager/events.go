package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// watchEvents follows Docker's events for the app's containers, so that the
// death of the active container is noticed at once (the manager brings it
// back, or the proxy answers 502 quickly, and /status turns 503), and a
// container removed behind switchyard's back leaves /status. It reconnects
// until ctx ends; after each (re)connection it compares its containers with
// Docker's, for what happened while it did not listen.
func (m *Manager) watchEvents(ctx context.Context) {
	for ctx.Err() == nil {
		evs, errs := m.o.Docker.Events(ctx, m.eventLabels())
		m.reconcile(ctx)
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-evs:
				if !ok {
					break loop
				}
				switch e.Action {
				case "die", "oom":
					m.containerDied(e.ContainerID, e.ExitCode, e.Action)
				case "destroy":
					m.containerRemoved(e.ContainerID)
				}
			case err, ok := <-errs:
				if ok && err != nil {
					m.log.Warn().Err(err).Msg("docker events stream broke; reconnecting")
				}
				break loop
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// reconcile marks the launched and active containers that Docker lists as
// stopped dead, and those it no longer lists removed: events missed while
// the stream was down.
func (m *Manager) reconcile(ctx context.Context) {
	cs, err := m.listOurs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn().Err(err).Msg("list the app's containers after (re)connecting to Docker's events")
		}
		return
	}
	byID := map[string]dockerctl.Container{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	var dead []dockerctl.Container
	var gone []string
	m.mu.Lock()
	for id, d := range m.deployments {
		if (d.role != Launched && d.role != Active) || d.removing {
			continue
		}
		if c, ok := byID[id]; !ok {
			gone = append(gone, id)
		} else if !c.Running && d.info.Health != HealthDead {
			dead = append(dead, c)
		}
	}
	m.mu.Unlock()
	for _, c := range dead {
		m.containerDied(c.ID, c.ExitCode, "exited")
	}
	for _, id := range gone {
		m.containerRemoved(id)
	}
}

// containerDied marks a launched or active container that exited without
// being asked to as dead: its health checks stop, and the active one is
// brought back (restart.go) or, with restarts off, fails its requests at
// once. A launching container's death is its launch's to see, a retiring
// one's is expected, and one the manager removes is its own doing.
func (m *Manager) containerDied(id string, exitCode int, action string) {
	m.mu.Lock()
	d := m.deployments[id]
	if d == nil || d.removing || (d.role != Launched && d.role != Active) || !setHealthLocked(d, HealthDead) {
		m.mu.Unlock()
		return
	}
	d.checks.stop()
	active := d.role == Active
	revive := active && m.activeDiedLocked(d)
	restarting := active && m.o.RestartAttempts > 0
	m.mu.Unlock()
	switch {
	case restarting:
		m.log.Error().Str("container", ids.Short(id)).Int("exit_code", exitCode).Str("event", action).
			Msg("the active container died: requests wait in the queue while switchyard brings it back")
	case active:
		m.log.Error().Str("container", ids.Short(id)).Int("exit_code", exitCode).Str("event", action).
			Msg("the active container died: the proxy answers 502 and /status 503 until a new deployment")
	}
	m.record(Event{Action: ActionDied, Container: id, ConfigID: d.cfg.ID, Who: "docker", Result: resultError,
		Error: fmt.Sprintf("container %s, exit code %d", action, exitCode)})
	if revive {
		m.spawn(context.Background(), func(ctx context.Context) { m.reviveLoop(ctx, d) })
	}
}

// containerRemoved handles a container removed behind switchyard's back
// (docker rm -f): a launched one leaves /status; the active one is dead,
// and bringing it back launches its config again.
func (m *Manager) containerRemoved(id string) {
	m.mu.Lock()
	d := m.deployments[id]
	if d == nil || d.removing {
		m.mu.Unlock()
		return
	}
	switch d.role {
	case Launched:
		d.checks.stop()
		m.moveLocked(d, Gone)
		m.mu.Unlock()
		m.log.Warn().Str("container", ids.Short(id)).Msg("a launched container was removed outside switchyard")
		m.record(Event{Action: ActionRemoved, Container: id, ConfigID: d.cfg.ID, Who: "docker", Result: resultError,
			Error: "the container was removed outside switchyard"})
	case Active:
		m.mu.Unlock()
		m.containerDied(id, 0, "removed")
	default:
		m.mu.Unlock()
	}
}
