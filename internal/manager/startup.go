package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/statelock"
)

// Start brings the manager up after a (re)start of switchyard:
//   - the active container named by the state file (or, without a state
//     file, the newest running container of the app) is adopted as it runs,
//     never restarted: the proxy points at it again;
//   - the app's other running containers are adopted as launched, stopped
//     ones are removed;
//   - containers the state file names as launching or retiring (switchyard
//     died in their launch or drain) are stopped and removed;
//   - with nothing to adopt, the state file's active config (what ran
//     before a reboot), else current.json, is launched and switched to, in
//     the background, retried until it works or an operator deploys.
//
// It also starts following Docker events; that and the cold start run
// until ctx ends or Close.
//
// First it takes the state directory's lock; while another process holds
// it, Start fails naming it, or with Options.TakeOver serves the state
// file's active container and takes over later (takeover.go).
func (m *Manager) Start(ctx context.Context) error {
	l, err := m.lockOnce()
	if errors.Is(err, statelock.ErrHeld) && m.o.TakeOver > 0 {
		return m.startFollowing(ctx)
	}
	if err != nil {
		return err
	}
	m.held(l)
	return m.startHolding(ctx)
}

// startHolding is Start once the lock is this manager's.
func (m *Manager) startHolding(ctx context.Context) error {
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
	m.previous, m.recorded = st.Previous, st
	m.mu.Unlock()
	cs, err := m.listOurs(ctx)
	if err != nil {
		return false, err
	}
	if err := m.checkOwner(cs); err != nil {
		return false, err
	}
	cs = m.mine(cs) // another state directory's stopped containers are left alone
	cs = m.removeCutShort(ctx, cs, st)
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
	if len(st.Launching)+len(st.Retiring) > 0 {
		m.mu.Lock()
		m.noteStateLocked() // what start-up removed is no longer launching or retiring
		m.mu.Unlock()
	}
	return adopted, nil
}

// removeCutShort stops and removes the containers a launch or a switch's
// drain was working on when switchyard died (the state file names them),
// and returns the others. Nobody waits for such a launch any more, and the
// drain is moot: traffic moved before it began.
func (m *Manager) removeCutShort(ctx context.Context, cs []dockerctl.Container, st state) []dockerctl.Container {
	kept := cs[:0:0]
	for _, c := range cs {
		launching, retiring := slices.Contains(st.Launching, c.ID), slices.Contains(st.Retiring, c.ID)
		if (!launching && !retiring) || c.ID == st.Active {
			kept = append(kept, c)
			continue
		}
		e := Event{Action: ActionRetire, Who: "switchyard start-up", ConfigID: c.Labels[LabelConfig], Container: c.ID}
		if launching {
			e.Action, e.Result = ActionLaunch, resultError
			e.Error = "cut short by a stop of switchyard: its container was removed at start-up"
		}
		m.log.Warn().Str("container", ids.Short(c.ID)).Str("was", map[bool]string{true: "launching", false: "retiring"}[launching]).
			Msg("removing a container whose launch or drain a stop of switchyard cut short")
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := m.o.Docker.Stop(sctx, c.ID, 10*time.Second); err != nil {
			m.log.Error().Err(err).Str("container", ids.Short(c.ID)).Msg("stop a container cut short")
		}
		cancel()
		m.discard(ctx, c.ID)
		m.record(e)
	}
	return kept
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
	if _, err := m.adoptOne(ctx, c, st, Launched); errors.Is(err, errBreaksPolicy) {
		m.log.Error().Err(err).Str("container", ids.Short(c.ID)).Msg("removing a launched container the policy refuses")
		m.discard(ctx, c.ID)
	} else if err != nil {
		m.log.Warn().Err(err).Str("container", ids.Short(c.ID)).Msg("cannot adopt a launched container; leaving it running")
	}
}

// adoptOne takes over a running container as role (active or launched),
// with its config from the state file when it is the one recorded there,
// else from the source.
func (m *Manager) adoptOne(ctx context.Context, c dockerctl.Container, st state, role Role) (*deployment, error) {
	cfg, err := m.adoptedConfig(ctx, c, st, role)
	if err != nil {
		return nil, err
	}
	d := &deployment{cfg: cfg, info: ContainerInfo{
		ID: c.ID, Name: c.Name, Image: cfg.Image, ConfigID: cfg.ID, Addr: c.Addr,
		Workers: cfg.Workers, Started: c.StartedAt, Health: HealthStarting,
	}}
	if pass, _ := probe(ctx, m.probe, c.Addr, cfg.Health); pass {
		d.info.Health = HealthHealthy
	}
	if role == Active {
		t := m.reuseFollowed(c.ID, c.Addr)
		if t == nil {
			if t, _, err = m.o.Proxy.SetTarget(c.ID, c.Addr, cfg.Workers); err != nil {
				return nil, err
			}
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

// adoptedConfig is the config of a container to adopt: the state file's
// when it is the one recorded there (that works while the config source
// is down), else the source's. The policy is checked again, since the
// operator may have tightened it: a launched container that breaks it is
// not adopted (the caller removes it); the active one keeps serving, since
// removing it would take the app down, but the breach is logged and
// recorded in the history.
func (m *Manager) adoptedConfig(ctx context.Context, c dockerctl.Container, st state, role Role) (*deployconfig.Config, error) {
	cid := c.Labels[LabelConfig]
	cfg := st.Config
	if cfg == nil || st.ConfigID != cid {
		var err error
		if cfg, err = m.o.Source.Fetch(ctx, cid); err != nil {
			return nil, fmt.Errorf("fetch its config %s: %w", ids.Short(cid), err)
		}
	}
	err := m.o.Policy.Check(cfg)
	switch {
	case err == nil:
		return cfg, nil
	case role == Active:
		m.record(Event{Action: ActionAdopt, Who: "switchyard start-up", ConfigID: cfg.ID, Container: c.ID, Result: resultError,
			Error: fmt.Sprintf("the active container keeps serving, but its config breaks the policy: %v; deploy a config that passes", err)})
		return cfg, nil
	}
	return nil, fmt.Errorf("%w: %w", errBreaksPolicy, err)
}

// errBreaksPolicy: a launched container found at start-up whose config the
// policy refuses; it is removed.
var errBreaksPolicy = errors.New("its config breaks the policy")

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

// coldStartConfig is the config a cold start launches: the state file's
// active config, which is what ran before a reboot (a rollback included),
// else current.json's. what names it for messages.
func (m *Manager) coldStartConfig(ctx context.Context) (id, what string, err error) {
	m.mu.Lock()
	recorded := m.recorded.ConfigID
	m.mu.Unlock()
	if recorded != "" {
		if _, err := m.o.Source.Fetch(ctx, recorded); !errors.Is(err, deployconfig.ErrNotFound) {
			return recorded, "the state file's active config", nil
		}
		m.log.Warn().Str("config", ids.Short(recorded)).Msg("the state file's active config is gone from the source and the cache: starting current.json's")
	}
	id, _, err = m.o.Source.Current(ctx)
	if errors.Is(err, deployconfig.ErrNotFound) {
		return "", "", fmt.Errorf("%w: %w", errNothingDeployed, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("read current.json from %s: %w", m.o.Source, err)
	}
	return id, "current.json's config", nil
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
	id, what, err := m.coldStartConfig(ctx)
	if err != nil {
		return false, err
	}
	info, err := m.launch(ctx, id)
	if err == nil {
		_, err = m.switchTo(ctx, info.ID, nil)
	}
	if err != nil {
		return false, fmt.Errorf("launch %s %s: %w", what, ids.Short(id), err)
	}
	m.record(Event{Action: ActionStart, Who: "switchyard start-up", ConfigID: id, Container: info.ID,
		Duration: time.Since(start)})
	return true, nil
}
