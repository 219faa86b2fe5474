package dockerctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/switchyard/switchyard/internal/ids"
)

// LabelPort is the label Create adds with the container's HTTP port, so that
// Inspect (also after a switchyard restart) knows which port the proxy dials
// even when the image exposes others.
const LabelPort = "switchyard.port"

// publishIP is where a container's port is published on the host: loopback,
// so the app is reachable only through switchyard.
const publishIP = "127.0.0.1"

// Spec describes a container to create. Zero values mean the image's or the
// daemon's default unless said otherwise.
type Spec struct {
	// Name is the container name (required). On a Network it is also the
	// host name the proxy dials.
	Name string
	// Image is the image reference (required); see EnsureImage.
	Image string
	// Cmd replaces the image's CMD when not empty.
	Cmd []string
	// Env is KEY=value pairs added to the image's environment.
	Env []string
	// Labels are set on the container (LabelPort is added to them).
	Labels map[string]string
	// Port is the container's HTTP port. Unless Network (or NetworkMode
	// "host") is set, it is published on 127.0.0.1 with an ephemeral host
	// port, which Inspect reports in Container.Addr. 0 publishes nothing.
	Port int
	// Network is an optional user-defined network (it must exist) that the
	// container joins instead of the default bridge; it is then reached as
	// <Name>:<Port> and nothing is published on the host.
	Network string
	// MemoryBytes is the memory limit; 0 is unlimited.
	MemoryBytes int64
	// NanoCPUs is the CPU limit in billionths of a CPU; 0 is unlimited.
	NanoCPUs int64
	// PidsLimit caps the container's processes; 0 is unlimited.
	PidsLimit int64
	// StopSignal is sent by Stop (and `docker stop`); "" is the image's
	// STOPSIGNAL, else SIGTERM.
	StopSignal string
	// StopTimeout is how long Stop waits before SIGKILL when called without a
	// timeout; it is rounded up to whole seconds. 0 is the daemon's 10 s.
	StopTimeout time.Duration

	// The fields below are passed to the daemon as they are: the operator's
	// policy, which may refuse them, is checked before Create.

	// Privileged runs the container with all capabilities and devices.
	Privileged bool
	// NetworkMode is "bridge", "host", "none", "container:<id>" or a network
	// name; "" is the daemon default (bridge). If set with Network it must
	// be the same.
	NetworkMode string
	// Binds are bind mounts, "host-path:container-path[:options]".
	Binds []string
	// CapAdd are Linux capabilities added to the default set.
	CapAdd []string
}

// Container is what Inspect and List report about a container.
type Container struct {
	ID     string // full id
	Name   string // without the leading "/"
	Image  string // the image reference it was created from
	Labels map[string]string
	// State is the daemon's status: created, running, paused, restarting,
	// removing, exited or dead.
	State      string
	Running    bool
	ExitCode   int  // of the last run; 0 while running
	OOMKilled  bool // the last run ended because it hit its memory limit
	StartedAt  time.Time
	FinishedAt time.Time
	Created    time.Time
	// Addr is the host:port the proxy dials while the container runs:
	// 127.0.0.1:<published port> on the default bridge, <name>:<port> on a
	// user-defined network, 127.0.0.1:<port> on the host network. It is ""
	// when the container is not running or has no known port.
	Addr string
}

// Create creates (does not start) a container from s and returns its id.
// The image must be present (EnsureImage). The container gets no restart
// policy: switchyard decides what runs.
func (c *Client) Create(ctx context.Context, s Spec) (string, error) {
	if s.Name == "" || s.Image == "" {
		return "", fmt.Errorf("create container %q: name and image are required (image %q)", s.Name, s.Image)
	}
	if s.Network != "" && s.NetworkMode != "" && s.NetworkMode != s.Network {
		return "", fmt.Errorf("create container %s: network %q and network mode %q conflict", s.Name, s.Network, s.NetworkMode)
	}
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        s.Cmd,
		Env:        s.Env,
		Labels:     maps.Clone(s.Labels),
		StopSignal: s.StopSignal,
	}
	if s.StopTimeout > 0 {
		secs := int((s.StopTimeout + time.Second - 1) / time.Second)
		cfg.StopTimeout = &secs
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(s.NetworkMode),
		Privileged:  s.Privileged,
		Binds:       s.Binds,
		CapAdd:      s.CapAdd,
		Resources:   container.Resources{Memory: s.MemoryBytes, NanoCPUs: s.NanoCPUs},
	}
	if s.PidsLimit > 0 {
		hc.Resources.PidsLimit = &s.PidsLimit
	}
	var nc *network.NetworkingConfig
	if s.Network != "" {
		hc.NetworkMode = container.NetworkMode(s.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {}}}
	}
	if s.Port > 0 {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[LabelPort] = strconv.Itoa(s.Port)
		p := tcpPort(s.Port)
		cfg.ExposedPorts = network.PortSet{p: {}}
		if publishes(hc.NetworkMode) {
			// HostPort "" lets the daemon pick a free port; Inspect reads it back.
			hc.PortBindings = network.PortMap{p: {{HostIP: netip.MustParseAddr(publishIP), HostPort: ""}}}
		}
	}
	resp, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, NetworkingConfig: nc, Name: s.Name})
	if err != nil {
		return "", fmt.Errorf("create container %s from %s: %w", s.Name, s.Image, invalidSpec(err))
	}
	return resp.ID, nil
}

// tcpPort is the API's name of TCP port n.
func tcpPort(n int) network.Port {
	p, _ := network.ParsePort(strconv.Itoa(n) + "/tcp") // n is 1..65535: always valid
	return p
}

// invalidSpec marks the daemon's refusal of a spec's values (a CPU limit
// beyond the host's, say) as ErrInvalidSpec: the config's fault, not the
// daemon's.
func invalidSpec(err error) error {
	if cerrdefs.IsInvalidArgument(err) {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return err
}

// publishes reports whether a container in network mode m gets its port
// published on the host, which only the bridge network needs.
func publishes(m container.NetworkMode) bool {
	return m == "" || m.IsDefault() || m.IsBridge()
}

// Start starts a created or stopped container.
func (c *Client) Start(ctx context.Context, id string) error {
	if _, err := c.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", ids.Short(id), notFound(err))
	}
	return nil
}

// Inspect reports a container by id or name. A missing container is an
// error matching ErrNotFound.
func (c *Client) Inspect(ctx context.Context, id string) (Container, error) {
	r, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", ids.Short(id), notFound(err))
	}
	return fromInspect(r.Container), nil
}

// List returns the containers, running or not, whose labels include all of
// labels (nil or empty lists every container), newest first.
func (c *Client) List(ctx context.Context, labels map[string]string) ([]Container, error) {
	f := client.Filters{}
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers labelled %v: %w", labels, err)
	}
	sums := res.Items
	// The list summary lacks start time, exit code and networks, so each is
	// inspected: switchyard manages a handful of containers, not thousands.
	out := make([]Container, 0, len(sums))
	for _, s := range sums {
		ct, err := c.Inspect(ctx, s.ID)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the list
		}
		if err != nil {
			return nil, fmt.Errorf("list containers labelled %v: %w", labels, err)
		}
		out = append(out, ct)
	}
	return out, nil
}

// Stop sends the container's stop signal (Spec.StopSignal) and SIGKILL after
// timeout, rounded up to whole seconds; timeout 0 uses the container's
// Spec.StopTimeout (default 10 s), a negative one waits forever. It returns
// when the container has stopped, so ctx must outlast timeout. A container
// already stopped or gone is not an error.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	var opts client.ContainerStopOptions
	if timeout != 0 {
		secs := -1
		if timeout > 0 {
			secs = int((timeout + time.Second - 1) / time.Second)
		}
		opts.Timeout = &secs
	}
	// A container that is not running answers 304, which the client does
	// not treat as an error.
	if _, err := c.api.ContainerStop(ctx, id, opts); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", ids.Short(id), err)
	}
	return nil
}

// Remove removes the container, killing it if it runs, with the anonymous
// volumes created with it. A container already gone (or being removed) is not
// an error.
func (c *Client) Remove(ctx context.Context, id string) error {
	_, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress") {
		return nil
	}
	return fmt.Errorf("remove container %s: %w", ids.Short(id), err)
}

// notFound turns the daemon's not-found error into ErrNotFound.
func notFound(err error) error {
	if cerrdefs.IsNotFound(err) {
		return ErrNotFound
	}
	return err
}

func fromInspect(r container.InspectResponse) Container {
	ct := Container{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Created: parseTime(r.Created)}
	if r.Config != nil {
		ct.Image = r.Config.Image
		ct.Labels = r.Config.Labels
	}
	if st := r.State; st != nil {
		ct.State = string(st.Status)
		ct.Running = st.Running
		ct.ExitCode = st.ExitCode
		ct.OOMKilled = st.OOMKilled
		ct.StartedAt = parseTime(st.StartedAt)
		ct.FinishedAt = parseTime(st.FinishedAt)
	}
	ct.Addr = addrOf(r, ct)
	return ct
}

// addrOf works out the address the proxy dials; see Container.Addr.
func addrOf(r container.InspectResponse, ct Container) string {
	if !ct.Running {
		return ""
	}
	port, _ := strconv.Atoi(ct.Labels[LabelPort])
	var mode container.NetworkMode
	if r.HostConfig != nil {
		mode = r.HostConfig.NetworkMode
	}
	switch {
	case mode.IsHost():
		if port > 0 {
			return net.JoinHostPort(publishIP, strconv.Itoa(port))
		}
		return ""
	case mode != "" && mode.IsUserDefined(): // "" counts as user-defined there
		if port > 0 {
			return net.JoinHostPort(ct.Name, strconv.Itoa(port))
		}
		return ""
	}
	if r.NetworkSettings == nil {
		return ""
	}
	return publishedAddr(r.NetworkSettings.Ports, port)
}

// publishedAddr is the host address of the container's published port:
// the labelled one, or else the only one (a container switchyard did not
// create may still publish exactly one).
func publishedAddr(ports network.PortMap, port int) string {
	var bindings []network.PortBinding
	if port > 0 {
		bindings = ports[tcpPort(port)]
	} else {
		for _, b := range ports {
			if len(b) > 0 {
				if bindings != nil {
					return "" // ambiguous
				}
				bindings = b
			}
		}
	}
	for _, b := range bindings {
		if b.HostPort == "" {
			continue
		}
		host := publishIP
		switch {
		case b.HostIP.IsValid() && b.HostIP.Is6() && b.HostIP.IsUnspecified():
			host = "::1"
		case b.HostIP.IsValid() && !b.HostIP.IsUnspecified():
			host = b.HostIP.String()
		}
		return net.JoinHostPort(host, b.HostPort)
	}
	return ""
}

// parseTime reads the daemon's RFC 3339 times; its "0001-01-01T00:00:00Z"
// for never becomes the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
