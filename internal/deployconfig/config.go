package deployconfig

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
)

// Defaults applied by parseConfig to fields that are absent (or 0).
const (
	// DefaultWorkers is how many concurrent requests the app takes when the
	// config does not say: 4, a small Gunicorn-style worker pool.
	DefaultWorkers = 4
	// DefaultHealthPath is the path probed for health.
	DefaultHealthPath = "/healthcheck"
	// DefaultHealthInterval is the time between health probes.
	DefaultHealthInterval = 1 * time.Second
	// DefaultHealthTimeout is how long one probe may take.
	DefaultHealthTimeout = 2 * time.Second
	// DefaultHealthyAfter is how many consecutive successes make a container healthy.
	DefaultHealthyAfter = 1
	// DefaultUnhealthyAfter is how many consecutive failures make a running
	// container unhealthy.
	DefaultUnhealthyAfter = 3
	// DefaultStartTimeout is how long a new container has to become healthy.
	DefaultStartTimeout = 60 * time.Second
	// DefaultStopSignal is the signal that asks the container to stop.
	DefaultStopSignal = "SIGTERM"
	// DefaultStopTimeout is the time between the stop signal and SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// DefaultDrainTimeout is how long a switch waits for the old container's
	// in-flight requests before stopping it anyway.
	DefaultDrainTimeout = 30 * time.Second
)

// Bounds of a config's values. The manager runs one operation at a time and
// waits on these timings while it does, so a config must not be able to
// hold it for days; the operator can still cancel an operation sooner.
const (
	// MinHealthInterval is the shortest time between health probes (at
	// most 10 probes a second per container).
	MinHealthInterval = 100 * time.Millisecond
	// MaxHealthInterval is the longest time between health probes.
	MaxHealthInterval = time.Minute
	// MaxHealthTimeout is the longest a probe may take.
	MaxHealthTimeout = time.Minute
	// MaxStartTimeout is the longest a new container may take to become
	// healthy (a launch waits that long).
	MaxStartTimeout = 30 * time.Minute
	// MaxStopTimeout is the longest time between the stop signal and
	// SIGKILL.
	MaxStopTimeout = 10 * time.Minute
	// MaxDrainTimeout is the longest a switch waits for the old container's
	// requests (WebSockets included).
	MaxDrainTimeout = time.Hour
	// MaxHealthCount bounds healthy_after and unhealthy_after.
	MaxHealthCount = 100
	// MinCPUs is Docker's smallest CPU limit; a smaller one would round to
	// no limit at all.
	MinCPUs = 0.01
	// MaxCPUs is the largest CPU limit a config may give.
	MaxCPUs = 1024
)

// Config is one deployment config: what container to run and how to judge
// and stop it. parseConfig fills in the defaults and validates it; a Source also
// sets ID.
type Config struct {
	// ID is set by the source: the full lowercase hex SHA-256 of the file's
	// bytes (the MD5 for wunderproxy-named objects). Not part of the file.
	ID string `json:"-"`
	// Image is the Docker image reference to run. Required.
	Image string `json:"image"`
	// Port is the container's HTTP port, 1..65535. Required.
	Port int `json:"port"`
	// Cmd overrides the image's command. Default: the image's.
	Cmd []string `json:"cmd,omitempty"`
	// Env sets container environment variables; it wins over EnvFile.
	Env map[string]string `json:"env,omitempty"`
	// EnvFile names keys copied from the operator's static key=value env
	// file (secrets stay out of S3). A key absent from that file is an error.
	EnvFile []string `json:"env_file,omitempty"`
	// Workers is how many concurrent requests the app takes; the proxy
	// queues the rest. 0 or absent means DefaultWorkers (4).
	Workers int `json:"workers,omitempty"`
	// Health says how the container's health is probed.
	Health Health `json:"health"`
	// Stop says how the container is stopped and drained.
	Stop Stop `json:"stop"`
	// Resources limits the container's memory and CPU. Default: no limits.
	Resources Resources `json:"resources"`
	// Labels are added to the container; keys starting "switchyard." are
	// reserved for switchyard's own labels.
	Labels map[string]string `json:"labels,omitempty"`

	// The rest are refused unless the operator's Policy allows them.

	// Privileged runs the container privileged. Default false.
	Privileged bool `json:"privileged,omitempty"`
	// NetworkMode is "" or "bridge" (the default) or "host".
	NetworkMode string `json:"network_mode,omitempty"`
	// Binds are host bind mounts "src:dst[:ro|rw]" with absolute paths.
	Binds []string `json:"binds,omitempty"`
	// CapAdd are Linux capabilities added to the container, e.g. "NET_ADMIN".
	CapAdd []string `json:"cap_add,omitempty"`

	// envFileAll copies every key of the static env file, as wunderproxy
	// did; only configs in wunderproxy's format set it.
	envFileAll bool
}

// Health configures the health probe: GET Path on the container's port.
type Health struct {
	// Path is the HTTP path probed; must start with "/". Default "/healthcheck".
	Path string `json:"path"`
	// Interval is the time between probes. Default 1s.
	Interval Duration `json:"interval"`
	// Timeout is how long one probe may take. Default 2s.
	Timeout Duration `json:"timeout"`
	// HealthyAfter is how many consecutive successes make the container
	// healthy. Default 1.
	HealthyAfter int `json:"healthy_after"`
	// UnhealthyAfter is how many consecutive failures make a running
	// container unhealthy. Default 3.
	UnhealthyAfter int `json:"unhealthy_after"`
	// StartTimeout is how long a new container has to become healthy before
	// the launch fails. Default 60s.
	StartTimeout Duration `json:"start_timeout"`
}

// Stop configures how a container is stopped.
type Stop struct {
	// Signal asks the container to stop: SIGTERM, SIGINT, SIGQUIT, SIGKILL,
	// SIGHUP, SIGUSR1, SIGUSR2 or SIGWINCH, with or without "SIG", any case;
	// parseConfig normalises it to the SIG form. Default "SIGTERM".
	Signal string `json:"signal"`
	// Timeout is the time between the signal and SIGKILL. Default 10s.
	Timeout Duration `json:"timeout"`
	// DrainTimeout is how long a switch waits for the old container's
	// in-flight requests before stopping it. Default 30s.
	DrainTimeout Duration `json:"drain_timeout"`
}

// Resources limits a container. Zero values mean no limit.
type Resources struct {
	// Memory is the memory limit: bytes ("268435456") or with a binary unit
	// ("512m", "1g", "1.5GiB"); at least 6m, Docker's minimum. Default: none.
	Memory string `json:"memory"`
	// CPUs is the CPU limit in cores, e.g. 0.5; > 0 when set. Default: none.
	CPUs float64 `json:"cpus"`
}

// MemoryBytes returns the memory limit in bytes, 0 for none (or, for a
// config that did not pass parseConfig, an unparsable value).
func (r Resources) MemoryBytes() int64 {
	if r.Memory == "" {
		return 0
	}
	n, err := parseMemory(r.Memory)
	if err != nil {
		return 0
	}
	return n
}

// NanoCPUs returns the CPU limit in units of 1e-9 CPUs, as the Docker API
// wants it; 0 for none.
func (r Resources) NanoCPUs() int64 {
	return int64(r.CPUs*1e9 + 0.5)
}

// parseConfig parses a config file strictly (unknown fields, duplicate
// keys, type errors and trailing data are errors naming the field), applies
// the defaults and validates it, and reports every problem at once. It sets
// no ID. Errors wrap ErrInvalid.
func parseConfig(data []byte) (*Config, error) {
	c, p := parseProblems(data)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseProblems is parseConfig's work: the config as far as it could be
// read, and everything wrong with it.
func parseProblems(data []byte) (*Config, *problems) {
	var c Config
	p := &problems{}
	if !decodeInto(data, &c, false, p) {
		return nil, p
	}
	zeroGiven(data, p)
	c.applyDefaults()
	c.validateInto(p)
	return &c, p
}

// zeroGiven refuses a 0 given for a number whose absence means its default
// (as a duration of 0 is refused): the author meant something else.
func zeroGiven(data []byte, p *problems) {
	var given struct {
		Workers *int `json:"workers"`
		Health  struct {
			HealthyAfter   *int `json:"healthy_after"`
			UnhealthyAfter *int `json:"unhealthy_after"`
		} `json:"health"`
		Resources struct {
			CPUs *float64 `json:"cpus"`
		} `json:"resources"`
	}
	_ = json.Unmarshal(data, &given) // type errors are reported already
	for _, z := range []struct {
		field string
		zero  bool
		msg   string
	}{
		{"workers", given.Workers != nil && *given.Workers == 0, fmt.Sprint("must be at least 1 (leave the field out for the default, ", DefaultWorkers, ")")},
		{"health.healthy_after", given.Health.HealthyAfter != nil && *given.Health.HealthyAfter == 0, fmt.Sprint("must be at least 1 (leave the field out for the default, ", DefaultHealthyAfter, ")")},
		{"health.unhealthy_after", given.Health.UnhealthyAfter != nil && *given.Health.UnhealthyAfter == 0, fmt.Sprint("must be at least 1 (leave the field out for the default, ", DefaultUnhealthyAfter, ")")},
		{"resources.cpus", given.Resources.CPUs != nil && *given.Resources.CPUs == 0, "must be > 0 (leave the field out for no limit)"},
	} {
		if z.zero {
			p.add(z.field, "0: %s", z.msg)
		}
	}
}

// name is how messages name the config: its short id, or "(no id)" for
// one parsed from bytes rather than fetched from a source.
func (c *Config) name() string { return cmp.Or(ids.Short(c.ID), "(no id)") }

// applyDefaults fills in absent fields. Durations that were given (even as
// 0 or negative) are left for validate to refuse.
func (c *Config) applyDefaults() {
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	h := &c.Health
	h.Path = cmp.Or(h.Path, DefaultHealthPath)
	h.Interval.orDefault(DefaultHealthInterval)
	h.Timeout.orDefault(DefaultHealthTimeout)
	h.StartTimeout.orDefault(DefaultStartTimeout)
	h.HealthyAfter = cmp.Or(h.HealthyAfter, DefaultHealthyAfter)
	h.UnhealthyAfter = cmp.Or(h.UnhealthyAfter, DefaultUnhealthyAfter)
	s := &c.Stop
	s.Signal = cmp.Or(s.Signal, DefaultStopSignal)
	s.Timeout.orDefault(DefaultStopTimeout)
	s.DrainTimeout.orDefault(DefaultDrainTimeout)
}
