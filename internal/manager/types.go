package manager

import (
	"errors"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/statelock"
)

// Errors the API maps to status codes. Source and Docker errors keep their
// own sentinels (deployconfig.ErrNotFound, dockerctl.ErrImagePull, ...) wrapped
// inside the manager's.
var (
	// ErrBusy: another operation (launch, switch, rollback, start-up) is
	// running. The message says which.
	ErrBusy = errors.New("another operation is running")
	// ErrUnhealthy: the launched container did not become healthy (or
	// exited) within its start timeout. The message carries its last log
	// lines and health responses.
	ErrUnhealthy = errors.New("container did not become healthy")
	// ErrUnknownContainer: a switch named no launched container.
	ErrUnknownContainer = errors.New("no such launched container")
	// ErrNoPrevious: rollback with nothing to roll back to.
	ErrNoPrevious = errors.New("no previous deployment to roll back to")
	// ErrDocker: the Docker daemon failed or is unreachable.
	ErrDocker = errors.New("docker")
	// ErrCancelled: an operator cancelled the operation, or a rollback
	// preempted it. The message says who.
	ErrCancelled = errors.New("cancelled")
	// ErrNoOperation: Cancel found nothing to cancel (or not the operation
	// it was told to cancel).
	ErrNoOperation = errors.New("no such operation running")
)

// ContainerInfo describes one container the manager runs.
type ContainerInfo struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Image    string    `json:"image"`
	ConfigID string    `json:"config_id"`
	Addr     string    `json:"addr"`
	Workers  int       `json:"workers"`
	Started  time.Time `json:"started"`
	Health   Health    `json:"health"`
	// InFlight is the proxy's count of requests on it (active or draining).
	InFlight int64 `json:"in_flight"`
	// Stats are the proxy's counters for it while it is or was active.
	Stats *proxy.Snapshot `json:"stats,omitempty"`
	// Windows are its status codes, shed rate and latencies over the last
	// minute, 15 minutes and since it became active.
	Windows *proxy.WindowReport `json:"windows,omitempty"`
	// ExpiresAt is when a launched container nobody switched to is removed
	// (Options.LaunchedTTL); nil for the others.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// SwitchResult is what a switch (or rollback) did.
type SwitchResult struct {
	Active   ContainerInfo  `json:"active"`
	Previous *ContainerInfo `json:"previous,omitempty"`
	// Drained says whether the old container's requests all finished before
	// it was stopped (false: the drain timeout passed).
	Drained  bool          `json:"drained"`
	DrainFor time.Duration `json:"drain_ns"`
}

// Status is the whole state for /status.
type Status struct {
	App      string          `json:"app"`
	Host     string          `json:"host_id"`
	Healthy  bool            `json:"healthy"` // an active container that is healthy
	Active   *ContainerInfo  `json:"active"`
	Launched []ContainerInfo `json:"launched"`
	// Replaced is the container the last switch replaced, with its figures,
	// so that the old and the new version can be compared after a switch.
	Replaced  *ContainerInfo `json:"replaced,omitempty"`
	Operation string         `json:"operation,omitempty"` // what is running now
	// Restart is set while the manager brings the dead active container
	// back, and once it gave up.
	Restart  *RestartStatus `json:"restart,omitempty"`
	Previous string         `json:"previous_config,omitempty"`
	Source   string         `json:"source"`
	Uptime   time.Duration  `json:"uptime_ns"`
	Started  time.Time      `json:"started"` // when this process started
	PID      int            `json:"pid,omitempty"`
	// TookOverFrom is the process this one took the deployments over from
	// (an upgrade's predecessor, or the last one to run them), and Upgrade
	// says while an upgrade is under way which side this process is on.
	TookOverFrom *statelock.Holder `json:"took_over_from,omitempty"`
	Upgrade      string            `json:"upgrade,omitempty"`
	Proxy        ProxyStatus       `json:"proxy"`
	// History is the most recent deployment events, newest first (all of
	// them at /deployments).
	History []Event `json:"history"`
}

// RestartStatus says how bringing the dead active container back goes.
type RestartStatus struct {
	Container string `json:"container"`
	// State is RestartRunning while the manager tries, RestartGaveUp once
	// it stopped trying (a crash loop): then only a deploy or a rollback
	// brings the app back.
	State string `json:"state"`
	// Attempts are the tries in a row so far, of at most MaxAttempts.
	Attempts    int    `json:"attempts"`
	MaxAttempts int    `json:"max_attempts"`
	LastError   string `json:"last_error,omitempty"`
}

// The states of a RestartStatus.
const (
	RestartRunning = "restarting"
	RestartGaveUp  = "gave_up"
)

// ProxyStatus are the proxy-wide figures.
type ProxyStatus struct {
	proxy.Snapshot
	InFlight int64                  `json:"in_flight"`
	Queued   int                    `json:"queued"`
	Latency  map[string]Percentiles `json:"latency_ms"` // "queue", "app", "total", since start
	// Windows are the proxy-wide figures over 1m, 15m and since start.
	Windows proxy.WindowReport `json:"windows"`
	// Connections are the client connections by state.
	Connections proxy.ConnStates `json:"connections"`
	// Fallbacks are the requests sent to peers because the app could not
	// take them, and those peers sent here.
	Fallbacks proxy.FallbackCounts `json:"fallbacks"`
	// Queue is the admission queue's discipline and state: normal,
	// queueing or overloaded, its effective timeout, time overloaded.
	Queue proxy.QueueState `json:"queue"`
}

// Percentiles of a latency histogram, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   uint64  `json:"count"`
}

// Event is one entry of the deployment history.
type Event struct {
	Time      time.Time     `json:"time"`
	Action    Action        `json:"action"`
	Who       string        `json:"who,omitempty"`
	ConfigID  string        `json:"config_id,omitempty"`
	Container string        `json:"container,omitempty"`
	Result    string        `json:"result"` // "ok" or "error"
	Error     string        `json:"error,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	// began is when the operation began; recorded is set once an
	// operation recorded its event before its end (a switch, when traffic
	// moved), so that operate does not record it twice.
	began    time.Time
	recorded bool
}
