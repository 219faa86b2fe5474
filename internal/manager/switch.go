package manager

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
)

// Switch points the proxy at a launched, healthy container (named by its
// id, a unique prefix of it, or its config id or prefix), then drains the
// previously active container (up to its drain timeout), stops and removes
// it. It returns when the old container is gone.
func (m *Manager) Switch(ctx context.Context, ref, who string) (res SwitchResult, err error) {
	err = m.operate(ctx, "switch to "+ids.Short(ref), Event{Action: ActionSwitch, Who: who},
		func(ctx context.Context, e *Event) error {
			var err error
			res, err = m.switchTo(ctx, ref, e)
			e.ConfigID, e.Container = res.Active.ConfigID, res.Active.ID
			return err
		})
	return res, err
}

// Rollback launches the config that was active before the current one and
// switches to it. It is the emergency exit: it preempts (cancels) a running
// launch, switch or restart first.
func (m *Manager) Rollback(ctx context.Context, who string) (res SwitchResult, err error) {
	m.preempt(ctx, "rollback", who)
	err = m.operate(ctx, "rollback", Event{Action: ActionRollback, Who: who},
		func(ctx context.Context, e *Event) error {
			m.mu.Lock()
			prev := m.previous
			m.mu.Unlock()
			if prev == "" {
				return ErrNoPrevious
			}
			e.ConfigID = prev
			info, err := m.launch(ctx, prev)
			if err == nil {
				res, err = m.switchTo(ctx, info.ID, e)
			}
			e.Container = res.Active.ID
			return err
		})
	return res, err
}

// switchTo does Switch's work; the caller holds the operation slot. The
// operation's event e (nil: none) is recorded as soon as traffic moves,
// not after the drain: a crash while the old container drains must not
// lose the record of the switch.
func (m *Manager) switchTo(ctx context.Context, ref string, e *Event) (SwitchResult, error) {
	m.mu.Lock()
	d, err := m.findLaunchedLocked(ref)
	if err == nil && d.info.Health != HealthHealthy {
		err = fmt.Errorf("%w: container %s is %s; launch it again", ErrUnhealthy, ids.Short(d.info.ID), d.info.Health)
	}
	m.mu.Unlock()
	if err == nil {
		err = m.stillRunning(ctx, d)
	}
	if err != nil {
		return SwitchResult{}, err
	}
	// The one atomic step: from here new requests go to d.
	newT, oldT, err := m.o.Proxy.SetTarget(d.info.ID, d.info.Addr, d.cfg.Workers)
	if err != nil {
		return SwitchResult{}, fmt.Errorf("switch proxy to %s: %w", ids.Short(d.info.ID), err)
	}
	m.mu.Lock()
	old := m.activeLocked()
	m.moveLocked(d, Active)
	d.target = newT
	if old != nil {
		m.moveLocked(old, Retiring)
		old.target = oldT
		if old.cfg.ID != d.cfg.ID { // a relaunch of the same config keeps what rollback goes back to
			m.previous = old.cfg.ID
		}
		m.replaced = old
	}
	serr := m.saveStateLocked()
	res := SwitchResult{Active: m.infoLocked(d), Drained: true}
	m.mu.Unlock()
	if serr != nil {
		// Traffic already moved; a restart would adopt the wrong container.
		m.log.Error().Err(serr).Msg("switch done but the state file was not written")
	}
	m.log.Info().Str("container", ids.Short(d.info.ID)).Str("config", ids.Short(d.cfg.ID)).Msg("switched: proxy points at the new container")
	if e != nil && serr == nil {
		e.ConfigID, e.Container = d.cfg.ID, d.info.ID
		m.recordNow(e)
	}
	if old != nil {
		info, drained, took := m.retire(ctx, old)
		res.Previous, res.Drained, res.DrainFor = &info, drained, took
	}
	if serr != nil {
		return res, fmt.Errorf("switched to %s, but %w", ids.Short(d.info.ID), serr)
	}
	return res, nil
}

// findLaunchedLocked resolves ref among the launched deployments. Caller
// holds m.mu.
func (m *Manager) findLaunchedLocked(ref string) (*deployment, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, fmt.Errorf("%w: empty container reference", ErrUnknownContainer)
	}
	var hits, launched []*deployment
	for _, d := range m.deployments {
		if d.role != Launched {
			continue
		}
		launched = append(launched, d)
		if strings.HasPrefix(d.info.ID, ref) || d.info.Name == ref || (len(ref) >= 8 && strings.HasPrefix(d.cfg.ID, ref)) {
			hits = append(hits, d)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		if a := m.activeLocked(); a != nil && strings.HasPrefix(a.info.ID, ref) {
			return nil, fmt.Errorf("%w: %s is already the active container", ErrUnknownContainer, ids.Short(a.info.ID))
		}
		return nil, fmt.Errorf("%w: %q; launched containers: %s", ErrUnknownContainer, ref, describe(launched))
	}
	return nil, fmt.Errorf("%w: %q matches %d launched containers; give more of the id", ErrUnknownContainer, ref, len(hits))
}

// describe lists deployments for an error message.
func describe(ds []*deployment) string {
	var names []string
	for _, d := range ds {
		names = append(names, ids.Short(d.info.ID)+" (config "+ids.Short(d.cfg.ID)+")")
	}
	if len(names) == 0 {
		return "none: launch one first"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// retire drains a retiring deployment's requests (up to its drain
// timeout), then stops and removes its container: it is gone. The stop
// and removal run even when ctx was cancelled (the manager closing), so
// that the container is not left running.
func (m *Manager) retire(ctx context.Context, d *deployment) (ContainerInfo, bool, time.Duration) {
	m.mu.Lock()
	d.checks.stop()
	info := m.infoLocked(d)
	t := d.target
	m.mu.Unlock()
	log := m.log.With().Str("container", ids.Short(d.info.ID)).Logger()
	start := time.Now()
	drained := true
	if t != nil {
		dctx, cancel := context.WithTimeout(ctx, d.cfg.Stop.DrainTimeout.Duration)
		if err := t.WaitDrained(dctx); err != nil {
			drained = false
			log.Warn().Int64("in_flight", t.InFlight()).Dur("drain_timeout", d.cfg.Stop.DrainTimeout.Duration).
				Int("websockets_closed", t.CloseUpgraded()).
				Msg("drain timeout passed: closed its WebSockets; stopping the old container with requests in flight")
		}
		cancel()
	}
	took := time.Since(start)
	log.Info().Dur("took", took).Bool("drained", drained).Msg("old container drained; stopping it")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Stop.Timeout.Duration+30*time.Second)
	defer cancel()
	if err := m.o.Docker.Stop(sctx, d.info.ID, d.cfg.Stop.Timeout.Duration); err != nil {
		log.Error().Err(err).Msg("stop old container")
	}
	if err := m.o.Docker.Remove(sctx, d.info.ID); err != nil {
		log.Error().Err(err).Msg("remove old container")
	}
	m.mu.Lock()
	m.moveLocked(d, Gone)
	m.noteStateLocked()
	m.mu.Unlock()
	m.record(Event{Action: ActionRetire, Who: "switchyard", ConfigID: d.cfg.ID, Container: d.info.ID, Duration: time.Since(start)})
	return info, drained, took
}
