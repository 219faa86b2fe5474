package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
)

// watchEvents follows Docker's events for the app's containers, so that the
// death of the active container is noticed at once: the proxy then answers
// 502 quickly and /status turns 503. It reconnects until ctx ends.
func (m *Manager) watchEvents(ctx context.Context) {
	for ctx.Err() == nil {
		evs, errs := m.o.Docker.Events(ctx, map[string]string{LabelApp: m.o.App})
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-evs:
				if !ok {
					break loop
				}
				if e.Action == "die" || e.Action == "oom" {
					m.containerDied(e.ContainerID, e.ExitCode, e.Action)
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

// containerDied marks a launched or active container that exited without
// being asked to as dead: its health checks stop, and the proxy fails its
// requests at once. A launching container's death is its launch's to see,
// a retiring one's is expected.
func (m *Manager) containerDied(id string, exitCode int, action string) {
	m.mu.Lock()
	d := m.deployments[id]
	if d == nil || (d.role != Launched && d.role != Active) || !setHealthLocked(d, HealthDead) {
		m.mu.Unlock()
		return
	}
	d.checks.stop()
	if d.target != nil {
		d.target.SetDown(true)
	}
	active := d.role == Active
	m.mu.Unlock()
	if active {
		m.log.Error().Str("container", ids.Short(id)).Int("exit_code", exitCode).Str("event", action).
			Msg("the active container died: the proxy answers 502 and /status 503 until a new deployment")
	}
	m.record(Event{Action: ActionDied, Container: id, ConfigID: d.cfg.ID, Who: "docker", Result: resultError,
		Error: fmt.Sprintf("container %s, exit code %d", action, exitCode)})
}
