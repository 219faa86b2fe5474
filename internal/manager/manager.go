package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/histogram"
	"github.com/switchyard/switchyard/internal/statelock"
)

// Container labels: the state of record that survives a restart.
const (
	LabelApp    = "switchyard.app"
	LabelConfig = "switchyard.config"
)

// DefaultRetryColdStart is how often start-up retries launching
// current.json while nothing is active.
const DefaultRetryColdStart = 15 * time.Second

// Defaults of bringing a dead active container back (restart.go) and of
// removing launched containers nobody switched to (expire.go).
const (
	// DefaultRestartAttempts is how many tries in a row bring a dead active
	// container back before the manager gives up (a crash loop).
	DefaultRestartAttempts = 3
	// DefaultRestartBackoff is the wait before the first try; it doubles
	// with each further one.
	DefaultRestartBackoff = time.Second
	// DefaultLaunchedTTL is how long a launched container may wait for a
	// switch before it is removed.
	DefaultLaunchedTTL = time.Hour
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
	Series() []proxy.Point
	Fallbacks() proxy.FallbackCounts
}

// Options configure a Manager.
type Options struct {
	// App names the app; its containers carry the label switchyard.app=App.
	App string
	// HostID names this host among the app's hosts (and among switchyards
	// on one Docker daemon); its containers carry switchyard.host=HostID.
	// Default: the state file's, else DefaultHostID (the hostname).
	HostID string
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
	// while nothing is active. Default DefaultRetryColdStart.
	RetryColdStart time.Duration
	// RestartAttempts is how many tries in a row bring a dead active
	// container back before the manager gives up. Default
	// DefaultRestartAttempts; negative: never (the proxy answers 502 until
	// a deploy).
	RestartAttempts int
	// RestartBackoff is the wait before the first try, doubled for each
	// further one. Default DefaultRestartBackoff.
	RestartBackoff time.Duration
	// Follow says a fleet follower (internal/fleet) launches what
	// current.json names: start-up adopts what runs but does not launch
	// current.json itself. Default false.
	Follow bool
	// LaunchedTTL is how long a launched container may wait for a switch
	// before it is removed. Default DefaultLaunchedTTL; negative: forever.
	LaunchedTTL time.Duration
	// Holder names this process in the state directory's lock (its pid,
	// version).
	Holder statelock.Holder
	// TakeOver, when set, makes Start succeed while another process holds
	// the lock (an upgrade's predecessor): this manager then serves the
	// active container the state file names, refuses operations with
	// ErrUpgrading, and takes over once the lock is free, logging every
	// TakeOver it waits. Zero: Start fails at once when the lock is held.
	TakeOver time.Duration
}

// deployment is one container the manager runs. Its info's identity fields
// are set once; the rest is guarded by Manager.mu.
type deployment struct {
	info   ContainerInfo
	cfg    *deployconfig.Config
	role   Role          // changed only by Manager.moveLocked
	target *proxy.Target // the proxy's target while active and retiring
	checks *healthCheck  // probing while launched or active; nil before
	// launchedAt is when it became launched (zero for one adopted at
	// start-up: its start time counts); revivedAt when the manager last
	// brought it back from the dead.
	launchedAt, revivedAt time.Time
	// removing is set while the manager removes it: its Docker events
	// (die, destroy) are its own doing.
	removing bool
}

// statusHistory is how many recent events Status carries.
const statusHistory = 10

// errClosing is why operations and goroutines stop when Close is called.
var errClosing = errors.New("switchyard is shutting down")

// Manager runs the deployments of one app. Its goroutines (health checks,
// the Docker event watcher, the cold start) and its operations are its
// own: Close stops them and waits for them.
type Manager struct {
	o       Options
	log     zerolog.Logger
	started time.Time
	probe   *http.Client

	// life ends when Close is called; everything the manager runs ends
	// with it, and wg waits for all of it.
	life   context.Context
	end    context.CancelCauseFunc
	wg     sync.WaitGroup
	closed bool // guarded by mu: nothing new starts

	mu          sync.Mutex
	op          string                 // the running operation, "" when idle
	ctl         *opControl             // how to cancel it; nil when it cannot be
	revive      reviveState            // bringing the dead active container back
	deployments map[string]*deployment // by container id: every one with a container
	replaced    *deployment            // the container the last switch replaced
	previous    string                 // config id active before the current one
	recorded    state                  // the state file as last read or written
	history     *history
	// counts are deployment operations since start by action and result;
	// durations their time, by action.
	counts    map[[2]string]uint64
	durations map[string]*histogram.Histogram
	// lastColdErr is the last cold-start failure recorded (coldStart only).
	lastColdErr string
	// The state directory's lock (takeover.go): held from Start to Close;
	// following while another process holds it (waitingFor, as its file
	// named it), with the proxy target set meanwhile; handing while a
	// successor takes over; predecessor is whom the lock was taken from.
	lock        *statelock.Lock
	following   bool
	handing     bool
	waitingFor  *statelock.Holder
	predecessor *statelock.Holder
	followed    followed
	// owner is the state directory's instance id (host.go); legacy says
	// the state file predates host ids. Both are set in New.
	owner  string
	legacy bool
}

// New checks o and makes a Manager. Call Start to adopt or launch, and
// Close when done.
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
		o.RetryColdStart = DefaultRetryColdStart
	}
	o.RestartAttempts = cmp.Or(o.RestartAttempts, DefaultRestartAttempts)
	o.RestartBackoff = cmp.Or(o.RestartBackoff, DefaultRestartBackoff)
	o.LaunchedTTL = cmp.Or(o.LaunchedTTL, DefaultLaunchedTTL)
	h, err := openHistory(o.StateDir)
	if err != nil {
		return nil, err
	}
	life, end := context.WithCancelCause(context.Background())
	m := &Manager{
		o:           o,
		log:         o.Logger.With().Str("app", o.App).Logger(),
		started:     time.Now(),
		life:        life,
		end:         end,
		deployments: map[string]*deployment{},
		history:     h,
		counts:      map[[2]string]uint64{},
		durations:   map[string]*histogram.Histogram{},
		// No keep-alive: a probe must not hold one of a sync app's workers
		// between probes.
		probe: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
	}
	if err := m.resolveHost(); err != nil {
		end(err)
		return nil, err
	}
	m.log = m.log.With().Str("host", m.o.HostID).Logger()
	return m, nil
}

// Close stops the manager: a running operation is cancelled (it cleans up
// after itself and is recorded), the health checks, the event watcher and
// the cold start end, and Close returns once all of them have. Call it
// after the API no longer calls the manager, and before closing Docker.
// Containers keep running: a restarted switchyard adopts them. Close may be
// called more than once.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.end(errClosing)
	m.wg.Wait()
	m.mu.Lock()
	l := m.lock
	m.lock = nil
	m.mu.Unlock()
	if err := l.Release(); err != nil {
		m.log.Error().Err(err).Msg("release the state directory's lock")
	}
}

// bound returns a context that ends when ctx does or when the manager
// closes, with errClosing as its cause then.
func (m *Manager) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(m.life, func() { cancel(context.Cause(m.life)) })
	return ctx, func() { stop(); cancel(nil) }
}

// spawn runs f in a goroutine of the manager's: f's context ends when ctx
// does or the manager closes, and Close waits for f to return. Once the
// manager is closing, f is not started.
func (m *Manager) spawn(ctx context.Context, f func(context.Context)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.wg.Add(1)
	ctx, cancel := m.bound(ctx)
	go func() {
		defer m.wg.Done()
		defer cancel()
		f(ctx)
	}()
}

// begin claims the one-operation slot, or says what holds it. The
// operation counts as the manager's until end is called: Close waits for it.
func (m *Manager) begin(op string) (end func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, fmt.Errorf("%w: %w", ErrBusy, errClosing)
	case m.upgradeLocked() != "":
		return nil, fmt.Errorf("%w: %s; retry in a few seconds", ErrUpgrading, m.upgradeLocked())
	case m.op != "":
		return nil, fmt.Errorf("%w: %s (started by an earlier request); retry when it is done", ErrBusy, m.op)
	}
	m.op = op
	m.wg.Add(1)
	return func() {
		m.mu.Lock()
		m.op = ""
		m.mu.Unlock()
		m.wg.Done()
	}, nil
}

// activeLocked is the active deployment, nil when there is none. Caller
// holds m.mu.
func (m *Manager) activeLocked() *deployment {
	for _, d := range m.deployments {
		if d.role == Active {
			return d
		}
	}
	return nil
}

// record appends to the deployment history, counts and logs the event.
func (m *Manager) record(e Event) {
	e.began, e.recorded = time.Time{}, false
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Result == "" {
		e.Result = resultOK
	}
	m.history.add(e)
	m.mu.Lock()
	m.counts[[2]string{string(e.Action), e.Result}]++
	if e.Duration > 0 {
		h := m.durations[string(e.Action)]
		if h == nil {
			h = &histogram.Histogram{}
			m.durations[string(e.Action)] = h
		}
		h.Observe(e.Duration)
	}
	m.mu.Unlock()
	ev := m.log.Info()
	if e.Result != resultOK {
		ev = m.log.Error()
	}
	ev.Str("action", string(e.Action)).Str("who", e.Who).Str("config", e.ConfigID).Str("container", ids.Short(e.Container)).
		Dur("took", e.Duration).Str("error", e.Error).Msg("deployment " + string(e.Action) + " " + e.Result)
}

// History returns the recent deployment events, newest first.
func (m *Manager) History() []Event { return m.history.list() }
