package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// Start brings the manager up after a (re)start of switchyard:
//   - the active container named by the state file (or, without a state
//     file, the newest running container of the app) is adopted as it runs,
//     never restarted: the proxy points at it again;
//   - the app's other running containers are adopted as launched, stopped
//     ones are removed;
//   - with nothing to adopt, current.json is launched and switched to, in
//     the background, retried until it works or an operator deploys.
//
// It also starts following Docker events until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	end, err := m.begin("start-up")
	if err != nil {
		return err
	}
	adopted, err := m.adopt(ctx)
	end()
	if err != nil {
		return err
	}
	go m.watchEvents(ctx)
	if !adopted {
		go m.coldStart(ctx)
	}
	return nil
}

func (m *Manager) adopt(ctx context.Context) (bool, error) {
	st, err := m.loadState()
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	m.previous = st.Previous
	m.mu.Unlock()
	cs, err := m.o.Docker.List(ctx, map[string]string{LabelApp: m.o.App})
	if err != nil {
		return false, fmt.Errorf("list the containers of app %s: %w", m.o.App, dockerErr(err))
	}
	var active *dockerctl.Container
	for i, c := range cs {
		if c.Running && c.Addr != "" && (c.ID == st.Active || (st.Active == "" && active == nil)) {
			active = &cs[i] // List is newest first
		}
	}
	adopted := false
	if active != nil {
		if d, err := m.adoptOne(ctx, *active, st, true); err != nil {
			m.log.Error().Err(err).Str("container", ids.Short(active.ID)).Msg("cannot adopt the active container")
		} else {
			adopted = true
			m.record(Event{Action: "adopt", Who: "switchyard start-up", ConfigID: d.cfg.ID, Container: d.info.ID})
		}
	}
	for _, c := range cs {
		if active != nil && c.ID == active.ID && adopted {
			continue
		}
		if !c.Running || c.Addr == "" {
			m.log.Info().Str("container", ids.Short(c.ID)).Str("state", c.State).Msg("removing a stopped container of the app")
			m.discard(ctx, c.ID)
			continue
		}
		if _, err := m.adoptOne(ctx, c, st, false); err != nil {
			m.log.Warn().Err(err).Str("container", ids.Short(c.ID)).Msg("cannot adopt a launched container; leaving it running")
		}
	}
	return adopted, nil
}

// adoptOne takes over a running container, as the active one or as launched.
func (m *Manager) adoptOne(ctx context.Context, c dockerctl.Container, st state, asActive bool) (*deployment, error) {
	cid := c.Labels[LabelConfig]
	var cfg *deployconfig.Config
	if st.Config != nil && st.ConfigID == cid {
		cfg = st.Config // works while the config source is down
	} else {
		var err error
		if cfg, err = m.o.Source.Fetch(ctx, cid); err != nil {
			return nil, fmt.Errorf("fetch its config %s: %w", ids.Short(cid), err)
		}
	}
	d := &deployment{cfg: cfg, info: ContainerInfo{
		ID: c.ID, Name: c.Name, Image: cfg.Image, ConfigID: cfg.ID, Addr: c.Addr,
		Workers: cfg.Workers, Started: c.StartedAt, Health: HealthStarting,
	}}
	if pass, _ := m.probeOnce(ctx, c.Addr, cfg.Health); pass {
		d.info.Health = HealthHealthy
	}
	if asActive {
		t, _, err := m.o.Proxy.SetTarget(c.ID, c.Addr, cfg.Workers)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.active, d.target = d, t
		m.mu.Unlock()
		m.log.Info().Str("container", ids.Short(c.ID)).Str("config", ids.Short(cfg.ID)).Str("addr", c.Addr).
			Str("health", d.info.Health).Msg("adopted the running active container")
	} else {
		m.mu.Lock()
		m.launched[c.ID] = d
		m.mu.Unlock()
		m.log.Info().Str("container", ids.Short(c.ID)).Msg("adopted a launched container")
	}
	m.watchHealth(d)
	return d, nil
}

// coldStart launches current.json and switches to it, retrying until that
// works, an operator makes something active, or ctx ends.
func (m *Manager) coldStart(ctx context.Context) {
	for {
		done, err := m.coldStartOnce(ctx)
		if done {
			return
		}
		// The history gets a failure once, not every retry: a new install
		// waiting for its first current.json would otherwise fill it.
		if msg := err.Error(); msg != m.lastColdErr {
			m.lastColdErr = msg
			m.record(Event{Action: "start", Who: "switchyard start-up", Result: "error", Error: msg})
		}
		ev := m.log.Error()
		if errors.Is(err, deployconfig.ErrNotFound) {
			ev = m.log.Info() // a new install: nothing deployed yet
		}
		ev.Err(err).Dur("retry_in", m.o.RetryColdStart).
			Msg("cold start: nothing is active; retrying (or launch and switch through the API)")
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.o.RetryColdStart):
		}
	}
}

func (m *Manager) coldStartOnce(ctx context.Context) (bool, error) {
	m.mu.Lock()
	active := m.active != nil
	m.mu.Unlock()
	if active || ctx.Err() != nil {
		return true, nil
	}
	end, err := m.begin("start-up: launch current.json")
	if err != nil {
		return false, err
	}
	defer end()
	start := time.Now()
	id, _, err := m.o.Source.Current(ctx)
	if err != nil {
		return false, fmt.Errorf("read current.json from %s: %w", m.o.Source, err)
	}
	info, err := m.launch(ctx, id)
	if err == nil {
		_, err = m.switchTo(ctx, info.ID)
	}
	if err != nil {
		return false, fmt.Errorf("launch current.json's config %s: %w", ids.Short(id), err)
	}
	m.record(Event{Action: "start", Who: "switchyard start-up", ConfigID: id, Container: info.ID,
		Duration: time.Since(start)})
	return true, nil
}
