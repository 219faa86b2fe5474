// Package manager runs an app's deployments: launch a container from a
// config, wait for it to be healthy, switch the proxy to it, drain and stop
// the old one; roll back; adopt the running containers after a restart. It
// runs one operation at a time and keeps the state of record in container
// labels and a state file.
//
// It sees Docker, the config source and the proxy through small interfaces,
// so that its state machine can be tested with a fake Docker.
package manager

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// Container labels: the state of record that survives a restart.
const (
	LabelApp    = "switchyard.app"
	LabelConfig = "switchyard.config"
)

// Docker is what the manager needs of the Docker Engine (dockerctl.Client).
type Docker interface {
	EnsureImage(ctx context.Context, ref string, progress func(string)) error
	Create(ctx context.Context, s dockerctl.Spec) (string, error)
	Start(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (dockerctl.Container, error)
	List(ctx context.Context, labels map[string]string) ([]dockerctl.Container, error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Logs(ctx context.Context, id string, tail int) (string, error)
	Events(ctx context.Context, labels map[string]string) (<-chan dockerctl.Event, <-chan error)
}

// Proxy is what the manager needs of the data plane (proxy.Proxy).
type Proxy interface {
	SetTarget(id, addr string, workers int) (newT, old *proxy.Target, err error)
	Active() *proxy.Target
	Stats() *proxy.Stats
	Queued() int
	Report() proxy.Report
}

// Options configure a Manager.
type Options struct {
	// App names the app; its containers carry the label switchyard.app=App.
	App string
	// Source is where deployment configs come from.
	Source deployconfig.Source
	// Docker runs the containers.
	Docker Docker
	// Proxy is pointed at the active container.
	Proxy Proxy
	// Policy says what configs may ask for.
	Policy deployconfig.Policy
	// StaticEnv is the operator's key=value env file, for configs' env_file.
	StaticEnv map[string]string
	// StateDir holds the state file and the deployment history.
	StateDir string
	// Network, when set, is the user-defined Docker network containers join
	// (switchyard in a container reaches them by name there).
	Network string
	// Logger gets the event log.
	Logger zerolog.Logger
	// RetryColdStart is how often start-up retries launching current.json
	// while nothing is active. Default 15s.
	RetryColdStart time.Duration
}

// deployment is one container the manager runs. Fields other than info's
// static ones are guarded by Manager.mu.
type deployment struct {
	info      ContainerInfo
	cfg       *deployconfig.Config
	target    *proxy.Target // set while active
	stopProbe context.CancelFunc
	retiring  bool // being stopped by us: its death is expected
}

// statusHistory is how many recent events Status carries.
const statusHistory = 10

// Manager runs the deployments of one app.
type Manager struct {
	o       Options
	log     zerolog.Logger
	started time.Time
	probe   *http.Client

	mu       sync.Mutex
	op       string // the running operation, "" when idle
	active   *deployment
	launched map[string]*deployment // by container id; healthy, not active
	replaced *deployment            // the container the last switch replaced
	previous string                 // config id active before the current one
	history  *history
	// counts are deployment operations since start by action and result;
	// durations their time, by action.
	counts    map[[2]string]uint64
	durations map[string]*histogram.Histogram
	// lastColdErr is the last cold-start failure recorded (coldStart only).
	lastColdErr string
}

// DeployStats are the deployment operations since start, for metrics.
type DeployStats struct {
	// Counts by action (launch, switch, rollback, start, adopt, died,
	// healthy, unhealthy) and result (ok, error).
	Counts map[[2]string]uint64
	// Durations of launch, switch, rollback and start, by action.
	Durations map[string]*histogram.Snapshot
}

// DeployStats returns the deployment counters.
func (m *Manager) DeployStats() DeployStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	ds := DeployStats{Counts: map[[2]string]uint64{}, Durations: map[string]*histogram.Snapshot{}}
	for k, v := range m.counts {
		ds.Counts[k] = v
	}
	for k, h := range m.durations {
		ds.Durations[k] = h.Snapshot()
	}
	return ds
}

// New checks o and makes a Manager. Call Start to adopt or launch.
func New(o Options) (*Manager, error) {
	switch {
	case o.App == "" || strings.ContainsAny(o.App, " /:"):
		return nil, fmt.Errorf("app name %q: want a non-empty name without spaces, / or :", o.App)
	case o.Source == nil:
		return nil, fmt.Errorf("app %s: no config source", o.App)
	case o.Docker == nil || o.Proxy == nil:
		return nil, fmt.Errorf("app %s: docker and proxy are required", o.App)
	case o.StateDir == "":
		return nil, fmt.Errorf("app %s: no state directory", o.App)
	}
	if o.RetryColdStart == 0 {
		o.RetryColdStart = 15 * time.Second
	}
	h, err := openHistory(o.StateDir)
	if err != nil {
		return nil, err
	}
	return &Manager{
		o:         o,
		log:       o.Logger.With().Str("app", o.App).Logger(),
		started:   time.Now(),
		launched:  map[string]*deployment{},
		history:   h,
		counts:    map[[2]string]uint64{},
		durations: map[string]*histogram.Histogram{},
		// No keep-alive: a probe must not hold one of a sync app's workers
		// between probes.
		probe: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
	}, nil
}

// Close stops the health probes. Containers keep running: a restarted
// switchyard adopts them.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range append(m.launchedLocked(), m.active) {
		if d != nil && d.stopProbe != nil {
			d.stopProbe()
		}
	}
}

func (m *Manager) launchedLocked() []*deployment {
	out := make([]*deployment, 0, len(m.launched))
	for _, d := range m.launched {
		out = append(out, d)
	}
	return out
}

// begin claims the one-operation slot, or says what holds it.
func (m *Manager) begin(op string) (end func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.op != "" {
		return nil, fmt.Errorf("%w: %s (started by an earlier request); retry when it is done", ErrBusy, m.op)
	}
	m.op = op
	return func() {
		m.mu.Lock()
		m.op = ""
		m.mu.Unlock()
	}, nil
}

// record appends to the deployment history and logs the event.
func (m *Manager) record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Result == "" {
		e.Result = "ok"
	}
	m.history.add(e)
	m.mu.Lock()
	m.counts[[2]string{e.Action, e.Result}]++
	if e.Duration > 0 {
		h := m.durations[e.Action]
		if h == nil {
			h = &histogram.Histogram{}
			m.durations[e.Action] = h
		}
		h.Observe(e.Duration)
	}
	m.mu.Unlock()
	ev := m.log.Info()
	if e.Result != "ok" {
		ev = m.log.Error()
	}
	ev.Str("action", e.Action).Str("who", e.Who).Str("config", e.ConfigID).Str("container", short(e.Container)).
		Dur("took", e.Duration).Str("error", e.Error).Msg("deployment " + e.Action + " " + e.Result)
}

// History returns the recent deployment events, newest first.
func (m *Manager) History() []Event { return m.history.list() }

// Status reports the app, its containers and the proxy's figures.
func (m *Manager) Status() Status {
	m.mu.Lock()
	st := Status{
		App:       m.o.App,
		Operation: m.op,
		Previous:  m.previous,
		Source:    m.o.Source.String(),
		Started:   m.started,
		Uptime:    time.Since(m.started),
		Launched:  []ContainerInfo{},
	}
	if d := m.active; d != nil {
		info := m.infoLocked(d)
		st.Active = &info
		st.Healthy = info.Health == HealthHealthy
	}
	for _, d := range m.launched {
		st.Launched = append(st.Launched, m.infoLocked(d))
	}
	if d := m.replaced; d != nil {
		info := m.infoLocked(d)
		st.Replaced = &info
	}
	m.mu.Unlock()
	sort.Slice(st.Launched, func(i, j int) bool { return st.Launched[i].Started.After(st.Launched[j].Started) })
	st.History = m.History()
	if len(st.History) > statusHistory {
		st.History = st.History[:statusHistory]
	}

	ps := m.o.Proxy.Stats()
	rep := m.o.Proxy.Report()
	st.Proxy = ProxyStatus{Snapshot: ps.Snapshot(), Queued: m.o.Proxy.Queued(), Latency: map[string]Percentiles{
		"queue": percentiles(&ps.Queue), "app": percentiles(&ps.App), "total": percentiles(&ps.Total),
	}, Windows: rep.Windows, Connections: rep.Connections, Queue: rep.Queue}
	if t := m.o.Proxy.Active(); t != nil {
		st.Proxy.InFlight = t.InFlight()
	}
	return st
}

func (m *Manager) infoLocked(d *deployment) ContainerInfo {
	info := d.info
	if d.target != nil {
		info.InFlight = d.target.InFlight()
		s := d.target.Stats().Snapshot()
		info.Stats = &s
		w := d.target.Report()
		info.Windows = &w
	}
	return info
}

func percentiles(h *histogram.Histogram) Percentiles {
	s := h.Snapshot()
	msf := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Percentiles{P50: msf(s.Quantile(0.5)), P90: msf(s.Quantile(0.9)), P99: msf(s.Quantile(0.99)),
		Max: float64(s.MaxMicros) / 1000, N: s.Count}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
