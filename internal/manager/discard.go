package manager

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
)

// Discard removes a launched container nobody will switch to (named as
// Switch names it: its id, a unique prefix, its name or its config id): CI
// was cancelled, or the launch was a try. The active container is not a
// launched one: switch away from it first.
func (m *Manager) Discard(ctx context.Context, ref, who string) (info ContainerInfo, err error) {
	err = m.operate(ctx, "discard "+ids.Short(ref), Event{Action: ActionDiscard, Who: who},
		func(ctx context.Context, e *Event) error {
			m.mu.Lock()
			d, err := m.findLaunchedLocked(ref)
			m.mu.Unlock()
			if err != nil {
				return err
			}
			e.ConfigID, e.Container = d.cfg.ID, d.info.ID
			info = m.removeLaunched(ctx, d)
			return nil
		})
	return info, err
}

// removeLaunched stops a launched deployment's health checks and removes
// its container: it is gone. Its Docker events (die, destroy) are the
// manager's own doing and are not recorded.
func (m *Manager) removeLaunched(ctx context.Context, d *deployment) ContainerInfo {
	m.mu.Lock()
	d.removing = true
	d.checks.stop()
	info := m.infoLocked(d)
	m.mu.Unlock()
	m.discard(ctx, d.info.ID)
	m.mu.Lock()
	m.moveLocked(d, Gone)
	m.mu.Unlock()
	m.log.Info().Str("container", ids.Short(d.info.ID)).Msg("removed a launched container")
	return info
}

// expiryLocked is when launched d is removed if nobody switches to it: its
// launch (or, adopted at start-up, its start) plus Options.LaunchedTTL.
// Caller holds m.mu.
func (m *Manager) expiryLocked(d *deployment) (time.Time, bool) {
	if d.role != Launched || m.o.LaunchedTTL < 0 {
		return time.Time{}, false
	}
	since := d.launchedAt
	if since.IsZero() {
		since = d.info.Started
	}
	if since.IsZero() {
		since = m.started
	}
	return since.Add(m.o.LaunchedTTL), true
}

// expireLaunched removes the launched containers whose time is up, until
// ctx ends. It looks every tenth of the TTL, at most every minute.
func (m *Manager) expireLaunched(ctx context.Context) {
	if m.o.LaunchedTTL < 0 {
		return
	}
	t := time.NewTicker(min(max(m.o.LaunchedTTL/10, 10*time.Millisecond), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.expireDue(ctx)
		}
	}
}

// expireDue removes each launched container past its expiry, as an
// operation of its own; while another operation runs it waits for the next
// round.
func (m *Manager) expireDue(ctx context.Context) {
	now := time.Now()
	var due []*deployment
	m.mu.Lock()
	for _, d := range m.deployments {
		if at, ok := m.expiryLocked(d); ok && !now.Before(at) {
			due = append(due, d)
		}
	}
	m.mu.Unlock()
	for _, d := range due {
		e := Event{Action: ActionExpire, Who: "switchyard (launched-ttl)", ConfigID: d.cfg.ID, Container: d.info.ID}
		err := m.operate(ctx, "expire "+ids.Short(d.info.ID), e, func(ctx context.Context, e *Event) error {
			m.mu.Lock()
			still := d.role == Launched
			m.mu.Unlock()
			if !still {
				return errNothingToDo // switched to meanwhile
			}
			m.removeLaunched(ctx, d)
			return nil
		})
		if errors.Is(err, ErrBusy) {
			return
		}
	}
}
