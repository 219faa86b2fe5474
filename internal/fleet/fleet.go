// Package fleet runs one app on several hosts with S3 as the only thing
// they share: each host follows <prefix>/current.json (launch and switch
// through its manager, with the API's gates), writes a heartbeat to
// <prefix>/hosts/<host-id>.json and reads the others' (its live peers, for
// the proxy's fallback and for `switchyard fleet`); CI publishes configs
// and releases current.json with a conditional PUT (Publish, Release, Wait).
// There is no coordinator: a host that starts late or comes back after S3
// was down converges on what current.json names.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/manager"
)

// Defaults of a fleet host.
const (
	// DefaultPollInterval is how often a host asks whether current.json
	// changed (a conditional GET), give or take a fifth (jitter, so that
	// hosts do not ask in step).
	DefaultPollInterval = 5 * time.Second
	// DefaultHeartbeatInterval is how often a host writes its heartbeat and
	// reads its peers'.
	DefaultHeartbeatInterval = 5 * time.Second
	// StaleAfter is how many heartbeat intervals may pass before a host
	// counts as gone.
	StaleAfter = 3
	// DefaultRetryBackoff is how long a config whose launch failed is left
	// alone (while current.json still names it) before it is tried again;
	// it doubles with each failure, up to MaxRetryBackoff.
	DefaultRetryBackoff = time.Minute
	// MaxRetryBackoff caps that wait.
	MaxRetryBackoff = 30 * time.Minute
)

// hostsDir is where heartbeats live, under the configs' prefix.
const hostsDir = "hosts/"

// Store is the shared bucket (deployconfig.Bucket).
type Store interface {
	Get(ctx context.Context, name, ifNoneMatch string) ([]byte, string, error)
	Put(ctx context.Context, name string, data []byte, cond deployconfig.PutCondition) (string, error)
	List(ctx context.Context, prefix string) ([]string, error)
	ParseRelease(data []byte) (deployconfig.Release, error)
	Where(name string) string
}

// Manager is what a host's follower drives (manager.Manager).
type Manager interface {
	Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error)
	Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error)
	Status() manager.Status
}

// Heartbeat is what a host says of itself in hosts/<host-id>.json.
type Heartbeat struct {
	Host string `json:"host_id"`
	App  string `json:"app"`
	// Addr is where peers reach this host's proxy (plain HTTP), for the
	// fallback of requests its app cannot take; "" when it takes none.
	Addr    string `json:"addr,omitempty"`
	Version string `json:"version"`
	// Active is the config the host serves, Healthy whether its container
	// passes its health checks.
	Active  string `json:"active_config,omitempty"`
	Healthy bool   `json:"healthy"`
	// Want is the config current.json names as the host last read it, and
	// Release that read's ETag.
	Want    string `json:"want_config,omitempty"`
	Release string `json:"release_etag,omitempty"`
	// Operation is what the host's manager is doing (a launch, a switch).
	Operation string `json:"operation,omitempty"`
	// LaunchError is the last failed launch of what current.json named.
	LaunchError *LaunchError `json:"last_launch_error,omitempty"`
	// SourceError is why the host could not read current.json lately.
	SourceError string `json:"source_error,omitempty"`
	// Over the last minute: requests per second, requests shed, and
	// responses 500-599 (the app's and the proxy's, shed 503s included).
	RPS       float64 `json:"rps_1m"`
	Shed      uint64  `json:"shed_1m"`
	Errors5xx uint64  `json:"5xx_1m"`
	// Fallbacks are the requests sent to peers and received from them
	// since the host started, and those a peer could not answer.
	Fallbacks Fallbacks `json:"fallbacks"`
	Time      time.Time `json:"time"`
	// Stopped is set by the last heartbeat of a host that shut down: it
	// is gone at once.
	Stopped bool `json:"stopped,omitempty"`
	// IntervalSeconds is the host's heartbeat interval: it is gone after
	// StaleAfter of them without a heartbeat.
	IntervalSeconds float64 `json:"interval_s"`
}

// Fallbacks count the peer fallback of requests.
type Fallbacks struct {
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	Failed   uint64 `json:"failed"`
}

// LaunchError is a failed launch (or switch) of a released config.
type LaunchError struct {
	ConfigID string    `json:"config_id"`
	Release  string    `json:"release_etag,omitempty"`
	Error    string    `json:"error"`
	Time     time.Time `json:"time"`
	// RetryAt is when the host tries it again if current.json still
	// names it.
	RetryAt time.Time `json:"retry_at"`
}

// Live says whether the host's heartbeat is recent at now (and not its
// last).
func (h Heartbeat) Live(now time.Time) bool {
	if h.Stopped {
		return false
	}
	iv := time.Duration(h.IntervalSeconds * float64(time.Second))
	if iv <= 0 {
		iv = DefaultHeartbeatInterval
	}
	return now.Sub(h.Time) <= StaleAfter*iv
}

// heartbeatName is the object of host id.
func heartbeatName(host string) string { return hostsDir + host + ".json" }

// ReadHosts reads every host's heartbeat, sorted by host id; unreadable
// ones are skipped.
func ReadHosts(ctx context.Context, st Store) ([]Heartbeat, error) {
	names, err := st.List(ctx, hostsDir)
	if err != nil {
		return nil, fmt.Errorf("list the hosts' heartbeats: %w", err)
	}
	var out []Heartbeat
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		data, _, err := st.Get(ctx, n, "")
		if err != nil {
			continue // deleted since the listing, or unreadable: not a host
		}
		var h Heartbeat
		if json.Unmarshal(data, &h) != nil || h.Host == "" {
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

// marshalRelease is current.json's content for rel.
func marshalRelease(rel deployconfig.Release) ([]byte, error) {
	b, err := json.MarshalIndent(rel, "", "  ")
	return append(b, '\n'), err
}
