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
func (m *Manager) Switch(ctx context.Context, ref, who string) (SwitchResult, error) {
	end, err := m.begin("switch to " + ids.Short(ref))
	if err != nil {
		return SwitchResult{}, err
	}
	defer end()
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	res, err := m.switchTo(ctx, ref)
	m.record(Event{Action: "switch", Who: who, ConfigID: res.Active.ConfigID, Container: res.Active.ID,
		Result: result(err), Error: errText(err), Duration: time.Since(start)})
	return res, err
}

// Rollback launches the config that was active before the current one and
// switches to it.
func (m *Manager) Rollback(ctx context.Context, who string) (SwitchResult, error) {
	end, err := m.begin("rollback")
	if err != nil {
		return SwitchResult{}, err
	}
	defer end()
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	m.mu.Lock()
	prev := m.previous
	m.mu.Unlock()
	var res SwitchResult
	if prev == "" {
		err = ErrNoPrevious
	} else {
		var info ContainerInfo
		if info, err = m.launch(ctx, prev); err == nil {
			res, err = m.switchTo(ctx, info.ID)
		}
	}
	m.record(Event{Action: "rollback", Who: who, ConfigID: prev, Container: res.Active.ID,
		Result: result(err), Error: errText(err), Duration: time.Since(start)})
	return res, err
}

// findLaunched resolves ref among launched containers; caller holds m.mu.
func (m *Manager) findLaunchedLocked(ref string) (*deployment, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, fmt.Errorf("%w: empty container reference", ErrUnknownContainer)
	}
	var hits []*deployment
	for _, d := range m.launched {
		if strings.HasPrefix(d.info.ID, ref) || d.info.Name == ref || (len(ref) >= 8 && strings.HasPrefix(d.cfg.ID, ref)) {
			hits = append(hits, d)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		var names []string
		for _, d := range m.launched {
			names = append(names, ids.Short(d.info.ID)+" (config "+ids.Short(d.cfg.ID)+")")
		}
		sort.Strings(names)
		known := "none: launch one first"
		if len(names) > 0 {
			known = strings.Join(names, ", ")
		}
		if m.active != nil && strings.HasPrefix(m.active.info.ID, ref) {
			return nil, fmt.Errorf("%w: %s is already the active container", ErrUnknownContainer, ids.Short(m.active.info.ID))
		}
		return nil, fmt.Errorf("%w: %q; launched containers: %s", ErrUnknownContainer, ref, known)
	}
	return nil, fmt.Errorf("%w: %q matches %d launched containers; give more of the id", ErrUnknownContainer, ref, len(hits))
}

// switchTo does Switch's work; the caller holds the operation slot.
func (m *Manager) switchTo(ctx context.Context, ref string) (SwitchResult, error) {
	m.mu.Lock()
	d, err := m.findLaunchedLocked(ref)
	if err == nil && d.info.Health != HealthHealthy {
		err = fmt.Errorf("%w: container %s is %s; launch it again", ErrUnhealthy, ids.Short(d.info.ID), d.info.Health)
	}
	m.mu.Unlock()
	if err != nil {
		return SwitchResult{}, err
	}
	// The one atomic step: from here new requests go to d.
	newT, oldT, err := m.o.Proxy.SetTarget(d.info.ID, d.info.Addr, d.cfg.Workers)
	if err != nil {
		return SwitchResult{}, fmt.Errorf("switch proxy to %s: %w", ids.Short(d.info.ID), err)
	}
	m.mu.Lock()
	old := m.active
	m.active = d
	d.target = newT
	delete(m.launched, d.info.ID)
	if old != nil {
		old.retiring = true
		old.target = oldT
		m.previous = old.cfg.ID
		m.replaced = old
	}
	serr := m.saveStateLocked()
	res := SwitchResult{Active: m.infoLocked(d)}
	m.mu.Unlock()
	if serr != nil {
		// Traffic already moved; a restart would adopt the wrong container.
		m.log.Error().Err(serr).Msg("switch done but the state file was not written")
	}
	m.log.Info().Str("container", ids.Short(d.info.ID)).Str("config", ids.Short(d.cfg.ID)).Msg("switched: proxy points at the new container")

	if old != nil {
		info, drained, took := m.retire(ctx, old, oldT)
		res.Previous, res.Drained, res.DrainFor = &info, drained, took
	} else {
		res.Drained = true
	}
	if serr != nil {
		return res, fmt.Errorf("switched to %s, but %w", ids.Short(d.info.ID), serr)
	}
	return res, nil
}

// retire drains a replaced container's requests (up to its drain timeout),
// then stops and removes it.
func (m *Manager) retire(ctx context.Context, d *deployment, t interface {
	WaitDrained(context.Context) error
	InFlight() int64
	CloseUpgraded() int
}) (ContainerInfo, bool, time.Duration) {
	m.mu.Lock()
	if d.stopProbe != nil {
		d.stopProbe()
	}
	info := m.infoLocked(d)
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
	sctx, cancel := context.WithTimeout(ctx, d.cfg.Stop.Timeout.Duration+30*time.Second)
	defer cancel()
	if err := m.o.Docker.Stop(sctx, d.info.ID, d.cfg.Stop.Timeout.Duration); err != nil {
		log.Error().Err(err).Msg("stop old container")
	}
	if err := m.o.Docker.Remove(sctx, d.info.ID); err != nil {
		log.Error().Err(err).Msg("remove old container")
	}
	return info, drained, took
}
