package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/statelock"
)

// ErrUpgrading: two switchyard processes overlap in an upgrade (this one
// hands over, or it waits to take over): operations are refused until the
// successor runs the deployments.
var ErrUpgrading = errors.New("upgrade in progress")

// ErrUpgradeFailed: the new switchyard process of an upgrade did not take
// over (it exited, or was not ready in time); this one serves on.
var ErrUpgradeFailed = errors.New("upgrade failed")

// RecordUpgrade records an upgrade of switchyard in the history: its
// failure (err), or this process handing over.
func (m *Manager) RecordUpgrade(who string, took time.Duration, err error) {
	e := Event{Action: ActionUpgrade, Who: who, Duration: took}
	e.Result, e.Error = outcome(err)
	m.record(e)
}

// One manager at a time: the state directory's lock (statelock) is held
// from Start to Close; only its holder runs operations, health checks,
// restarts and writes the state file. An upgrade's successor starts while
// its predecessor still holds it: with Options.TakeOver it then follows
// (serves the active container the state file names, refuses operations)
// until the predecessor lets go, and takes over.

// lockOnce tries the lock without waiting.
func (m *Manager) lockOnce() (*statelock.Lock, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return statelock.Acquire(ctx, m.o.StateDir, m.holder())
}

// holder is this process as the lock file names it.
func (m *Manager) holder() statelock.Holder {
	h := m.o.Holder
	if h.Since.IsZero() {
		h.Since = m.started
	}
	return h
}

// held records the lock and whom it was taken over from.
func (m *Manager) held(l *statelock.Lock) {
	m.mu.Lock()
	m.lock, m.following = l, false
	m.predecessor = l.Previous // the last to run the deployments (pids repeat across containers)
	m.mu.Unlock()
	if err := m.history.reload(); err != nil {
		m.log.Error().Err(err).Msg("read the history again after taking the lock")
	}
}

// startFollowing is Start while another process holds the lock: the proxy
// points at the active container the state file names, at once, and a
// goroutine waits for the lock, then adopts and runs as usual.
func (m *Manager) startFollowing(ctx context.Context) error {
	m.mu.Lock()
	m.following, m.waitingFor = true, statelock.ReadHolder(m.o.StateDir)
	m.mu.Unlock()
	if err := m.follow(ctx); err != nil {
		m.log.Warn().Err(err).Msg("taking over: cannot serve the state file's active container before the lock is ours")
	}
	m.log.Info().Msg("taking over: another switchyard holds the state directory; waiting for it to hand over")
	m.spawn(ctx, m.awaitLock)
	return nil
}

// follow points the proxy at the state file's active container.
func (m *Manager) follow(ctx context.Context) error {
	st, err := m.loadState()
	if err != nil {
		return err
	}
	if st.Active == "" || st.Config == nil {
		return errors.New("the state file names no active container")
	}
	c, err := m.o.Docker.Inspect(ctx, st.Active)
	if err != nil {
		return dockerErr(err)
	}
	if !c.Running || c.Addr == "" {
		return fmt.Errorf("container %s is not running", ids.Short(c.ID))
	}
	t, _, err := m.o.Proxy.SetTarget(c.ID, c.Addr, st.Config.Workers)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.followed = followed{id: c.ID, addr: c.Addr, target: t}
	m.mu.Unlock()
	return nil
}

// followed is the proxy target a following manager set.
type followed struct {
	id, addr string
	target   *proxy.Target
}

// reuseFollowed is the target the follower set for container c at addr,
// nil when it set none for it: adoption keeps it rather than making a
// second target (and a second set of worker slots) for the same container.
func (m *Manager) reuseFollowed(id, addr string) *proxy.Target {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.followed
	m.followed = followed{}
	if f.id == id && f.addr == addr && f.target != nil && m.o.Proxy.Active() == f.target {
		return f.target
	}
	return nil
}

// awaitLock waits for the predecessor to let go of the lock, then starts
// as the holder. It logs every TakeOver it waits.
func (m *Manager) awaitLock(ctx context.Context) {
	for {
		wctx, cancel := context.WithTimeout(ctx, m.o.TakeOver)
		l, err := statelock.Acquire(wctx, m.o.StateDir, m.holder())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			m.held(l)
			m.log.Info().Str("from", describeHolder(l.Previous)).Msg("took over the deployments")
			if err := m.startHolding(ctx); err != nil {
				m.log.Error().Err(err).Msg("taking over: start-up failed")
			}
			return
		}
		m.log.Error().Err(err).Dur("waited", m.o.TakeOver).Msg("taking over: the predecessor still holds the state directory; still waiting")
	}
}

func describeHolder(h *statelock.Holder) string {
	if h == nil {
		return "nobody"
	}
	return h.String()
}

// Handover readies the manager for a successor process: operations are
// refused with ErrUpgrading from now on, and Handover returns once the
// running one (a deploy's launch or switch) has ended, so that the state
// the successor adopts holds still. Past ctx the running operation is
// cancelled (it cleans up: a launch removes its container, a switch stops
// draining). abort gives operations back when the successor failed.
func (m *Manager) Handover(ctx context.Context) (abort func(), err error) {
	m.mu.Lock()
	if m.handing {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: an upgrade is already running", ErrUpgrading)
	}
	m.handing = true
	m.mu.Unlock()
	abort = func() {
		m.mu.Lock()
		m.handing = false
		m.mu.Unlock()
	}
	cancelled := false
	for {
		m.mu.Lock()
		op, ctl := m.op, m.ctl
		m.mu.Unlock()
		if op == "" {
			return abort, nil
		}
		if ctx.Err() != nil && ctl != nil && !cancelled {
			m.log.Warn().Str("operation", op).Msg("upgrade: cancelling the running operation, which did not end in time")
			ctl.cancel(fmt.Errorf("%w: switchyard is upgrading", ErrCancelled))
			cancelled = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upgradeLocked says why operations are refused during an upgrade, "" when
// they are not. Caller holds m.mu.
func (m *Manager) upgradeLocked() string {
	switch {
	case m.handing:
		return "handing over to a new switchyard process"
	case m.following:
		return "taking over from " + describeHolder(m.waitingFor)
	}
	return ""
}
