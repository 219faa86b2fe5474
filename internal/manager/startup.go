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
// It also starts following Docker events; that and the cold start run
// until ctx ends or Close.
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
	m.spawn(ctx, m.watchEvents)
	m.spawn(ctx, m.expireLaunched)
	if !adopted && !m.o.Follow {
		m.spawn(ctx, m.coldStart)
	}
	return nil
}

// adopt takes over the app's running containers and removes its stopped
// ones. It reports whether an active container was adopted.
func (m *Manager) adopt(ctx context.Context) (bool, error) {
	st, err := m.loadState()
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	m.previous = st.Previous
	m.mu.Unlock()
	cs, err := m.listOurs(ctx)
	if err != nil {
		return false, err
	}
	if err := m.checkOwner(cs); err != nil {
		return false, err
	}
	cs = m.mine(cs) // another state directory's stopped containers are left alone
	active := pickActive(cs, st.Active)
	adopted := false
	if active != nil {
		if d, err := m.adoptOne(ctx, *active, st, Active); err != nil {
			m.log.Error().Err(err).Str("container", ids.Short(active.ID)).Msg("cannot adopt the active container")
		} else {
			adopted = true
			m.record(Event{Action: ActionAdopt, Who: "switchyard start-up", ConfigID: d.cfg.ID, Container: d.info.ID})
		}
	}
	for _, c := range cs {
		if adopted && c.ID == active.ID {
			continue
		}
		m.adoptLaunched(ctx, c, st)
	}
	return adopted, nil
}

// pickActive is the container to adopt as the active one: the state file's,
// or without one the newest running container (List is newest first).
func pickActive(cs []dockerctl.Container, stateActive string) *dockerctl.Container {
	var active *dockerctl.Container
	for i, c := range cs {
		if c.Running && c.Addr != "" && (c.ID == stateActive || (stateActive == "" && active == nil)) {
			active = &cs[i]
		}
	}
	return active
}

// adoptLaunched adopts a running container as launched, or removes a
// stopped one.
func (m *Manager) adoptLaunched(ctx context.Context, c dockerctl.Container, st state) {
	if !c.Running || c.Addr == "" {
		m.log.Info().Str("container", ids.Short(c.ID)).Str("state", c.State).Msg("removing a stopped container of the app")
		m.discard(ctx, c.ID)
		return
	}
	if _, err := m.adoptOne(ctx, c, st, Launched); err != nil {
		m.log.Warn().Err(err).Str("container", ids.Short(c.ID)).Msg("cannot adopt a launched container; leaving it running")
	}
}

// adoptOne takes over a running container as role (active or launched),
// with its config from the state file when it is the one recorded there,
// else from the source.
func (m *Manager) adoptOne(ctx context.Context, c dockerctl.Container, st state, role Role) (*deployment, error) {
	cid := c.Labels[LabelConfig]
	cfg := st.Config // works while the config source is down
	if cfg == nil || st.ConfigID != cid {
		var err error
		if cfg, err = m.o.Source.Fetch(ctx, cid); err != nil {
			return nil, fmt.Errorf("fetch its config %s: %w", ids.Short(cid), err)
		}
	}
	d := &deployment{cfg: cfg, info: ContainerInfo{
		ID: c.ID, Name: c.Name, Image: cfg.Image, ConfigID: cfg.ID, Addr: c.Addr,
		Workers: cfg.Workers, Started: c.StartedAt, Health: HealthStarting,
	}}
	if pass, _ := probe(ctx, m.probe, c.Addr, cfg.Health); pass {
		d.info.Health = HealthHealthy
	}
	if role == Active {
		t, _, err := m.o.Proxy.SetTarget(c.ID, c.Addr, cfg.Workers)
		if err != nil {
			return nil, err
		}
		d.target = t
	}
	m.mu.Lock()
	m.deployments[c.ID] = d
	m.moveLocked(d, role)
	m.mu.Unlock()
	m.log.Info().Str("container", ids.Short(c.ID)).Str("config", ids.Short(cfg.ID)).Str("addr", c.Addr).
		Str("health", string(d.info.Health)).Msg("adopted a running container as " + role.String())
	m.watchHealth(d)
	return d, nil
}

// errNothingDeployed: current.json does not exist yet (a new install).
var errNothingDeployed = errors.New("nothing deployed yet (no current.json)")

// coldStart launches current.json and switches to it, retrying until that
// works, an operator makes something active, or ctx ends.
func (m *Manager) coldStart(ctx context.Context) {
	for {
		done, err := m.coldStartOnce(ctx)
		if done {
			return
		}
		// The history gets a failure once, not every retry; and none for a
		// new install waiting for its first current.json, which is no error.
		if msg := err.Error(); msg != m.lastColdErr && !errors.Is(err, errNothingDeployed) {
			m.lastColdErr = msg
			m.record(Event{Action: ActionStart, Who: "switchyard start-up", Result: resultError, Error: msg})
		}
		ev := m.log.Error()
		if errors.Is(err, errNothingDeployed) {
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
	active := m.activeLocked() != nil
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
	if errors.Is(err, deployconfig.ErrNotFound) {
		return false, fmt.Errorf("%w: %w", errNothingDeployed, err)
	}
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
	m.record(Event{Action: ActionStart, Who: "switchyard start-up", ConfigID: id, Container: info.ID,
		Duration: time.Since(start)})
	return true, nil
}
