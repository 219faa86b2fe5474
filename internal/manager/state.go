package manager

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/internal/deployconfig"
)

// state is the state file: which container is active, with its config (so
// that adoption works while the config source is down), and the config to
// roll back to.
type state struct {
	App      string               `json:"app"`
	Host     string               `json:"host_id,omitempty"`
	Active   string               `json:"active_container,omitempty"`
	ConfigID string               `json:"active_config,omitempty"`
	Config   *deployconfig.Config `json:"config,omitempty"`
	Previous string               `json:"previous_config,omitempty"`
	// Launching and Retiring are the containers a launch is bringing up
	// and a switch is draining, written before that work starts: when
	// switchyard dies meanwhile, start-up removes them (nobody waits for
	// the launch any more; the drain is moot) instead of adopting them.
	Launching []string  `json:"launching,omitempty"`
	Retiring  []string  `json:"retiring,omitempty"`
	Updated   time.Time `json:"updated"`
}

func (m *Manager) statePath() string { return filepath.Join(m.o.StateDir, "state.json") }

func (m *Manager) loadState() (state, error) {
	var st state
	b, err := os.ReadFile(m.statePath())
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state file %s: %w", m.statePath(), err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s is corrupt (%v): move it away to start fresh", m.statePath(), err)
	}
	if st.App != "" && st.App != m.o.App {
		return st, fmt.Errorf("state file %s belongs to app %q, not %q: use another --state-dir", m.statePath(), st.App, m.o.App)
	}
	if st.Config != nil {
		st.Config.ID = st.ConfigID
	}
	return st, nil
}

// saveState writes the state of record; caller holds m.mu. Until a
// container is active (a start-up that adopted nothing) the active config
// read at start-up stays recorded: a reboot brings back what ran before.
func (m *Manager) saveStateLocked() error {
	st := state{App: m.o.App, Host: m.o.HostID, Previous: m.previous, Updated: time.Now().UTC(),
		Active: m.recorded.Active, ConfigID: m.recorded.ConfigID, Config: m.recorded.Config}
	if d := m.activeLocked(); d != nil {
		st.Active, st.ConfigID, st.Config = d.info.ID, d.cfg.ID, d.cfg
	}
	for id, d := range m.deployments {
		switch d.role {
		case Launching:
			st.Launching = append(st.Launching, id)
		case Retiring:
			st.Retiring = append(st.Retiring, id)
		}
	}
	slices.Sort(st.Launching)
	slices.Sort(st.Retiring)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(m.statePath(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state file %s: %w", m.statePath(), err)
	}
	m.recorded = st
	return nil
}

// noteStateLocked writes the state file after a launch began or ended or
// a retirement ended; a failure is logged (the next write retries it).
// Caller holds m.mu.
func (m *Manager) noteStateLocked() {
	if err := m.saveStateLocked(); err != nil {
		m.log.Error().Err(err).Msg("state file not written: a crash now would leave a container to clean up by hand")
	}
}
