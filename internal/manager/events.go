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

// containerDied marks a container that exited without being asked to.
func (m *Manager) containerDied(id string, exitCode int, action string) {
	m.mu.Lock()
	var d *deployment
	active := false
	if m.active != nil && m.active.info.ID == id {
		d, active = m.active, true
	} else if l, ok := m.launched[id]; ok {
		d = l
	}
	if d == nil || d.retiring || d.info.Health == HealthDead {
		m.mu.Unlock()
		return
	}
	d.info.Health = HealthDead
	if d.stopProbe != nil {
		d.stopProbe()
	}
	if d.target != nil {
		d.target.SetDown(true)
	}
	m.mu.Unlock()
	if active {
		m.log.Error().Str("container", ids.Short(id)).Int("exit_code", exitCode).Str("event", action).
			Msg("the active container died: the proxy answers 502 and /status 503 until a new deployment")
	}
	m.record(Event{Action: "died", Container: id, ConfigID: d.cfg.ID, Who: "docker", Result: "error",
		Error: fmt.Sprintf("container %s, exit code %d", action, exitCode)})
}
