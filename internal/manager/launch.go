package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// Launch fetches config id, pulls its image, starts its container and waits
// until it is healthy. The container is then launched: running beside the
// active one, ready for Switch, until it is switched to, discarded or
// expires (Options.LaunchedTTL). A failed launch removes its container and
// leaves the active one untouched; so does a cancelled one, and a launch is
// cancelled when ctx ends (its caller went away: nobody would switch to
// it), by Cancel, and by a rollback.
func (m *Manager) Launch(ctx context.Context, id, who string) (info ContainerInfo, err error) {
	err = m.operateAttached(ctx, LaunchOperation(id), Event{Action: ActionLaunch, Who: who, ConfigID: id},
		func(ctx context.Context, e *Event) error {
			var err error
			info, err = m.launch(ctx, id)
			e.ConfigID, e.Container = cmp.Or(info.ConfigID, id), info.ID
			return err
		})
	return info, err
}

// LaunchOperation is the name of the launch of config id (as given) while
// it runs: what /status shows and what Cancel takes.
func LaunchOperation(id string) string { return "launch " + ids.Short(id) }

// launch does Launch's work; the caller holds the operation slot.
func (m *Manager) launch(ctx context.Context, id string) (ContainerInfo, error) {
	cfg, spec, err := m.prepare(ctx, id)
	if err != nil {
		return ContainerInfo{}, err
	}
	log := m.log.With().Str("config", ids.Short(cfg.ID)).Str("image", cfg.Image).Logger()
	log.Info().Msg("launch: pulling image unless present")
	if err := m.o.Docker.EnsureImage(ctx, cfg.Image, func(line string) {
		log.Debug().Str("progress", line).Msg("pull")
	}); err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), dockerErr(err))
	}
	if err := hostPortFree(cfg, spec); err != nil {
		return ContainerInfo{}, err
	}
	// Another switchyard for this app and host may have started since ours
	// did, before either ran a container.
	if cs, err := m.listOurs(ctx); err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), err)
	} else if err := m.checkOwner(cs); err != nil {
		return ContainerInfo{}, err
	}
	d, err := m.create(ctx, cfg, spec)
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), err)
	}
	log = log.With().Str("container", ids.Short(d.info.ID)).Logger()
	log.Info().Str("name", spec.Name).Msg("launch: container started, waiting for health checks")
	if err := m.awaitHealthy(ctx, d); err != nil {
		log.Error().Err(err).Msg("launch failed: container removed")
		return ContainerInfo{}, fmt.Errorf("config %s, image %s, container %s: %w", ids.Short(cfg.ID), cfg.Image, ids.Short(d.info.ID), err)
	}
	log.Info().Str("addr", d.info.Addr).Msg("launch: container healthy")
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoLocked(d), nil
}

// prepare fetches config id and turns it into the container's spec: the
// policy check, the network, the environment, the labels of record.
func (m *Manager) prepare(ctx context.Context, id string) (*deployconfig.Config, dockerctl.Spec, error) {
	// The source's and the policy's errors name the config already.
	cfg, err := m.o.Source.Fetch(ctx, id)
	if err != nil {
		return nil, dockerctl.Spec{}, err
	}
	if err := m.o.Policy.Check(cfg); err != nil {
		return nil, dockerctl.Spec{}, err
	}
	networkMode := cfg.NetworkMode
	if m.o.Network != "" {
		// The operator's network decides how the proxy reaches the app.
		if networkMode != "" && networkMode != "bridge" {
			return nil, dockerctl.Spec{}, fmt.Errorf("config %s: %w: network_mode %q cannot be used with switchyard's --docker-network %s",
				ids.Short(cfg.ID), deployconfig.ErrInvalid, networkMode, m.o.Network)
		}
		networkMode = ""
	}
	env, err := cfg.ResolveEnv(m.o.StaticEnv)
	if err != nil {
		return nil, dockerctl.Spec{}, err
	}
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	m.hostLabels(labels)
	labels[LabelConfig] = cfg.ID
	return cfg, dockerctl.Spec{
		Name:  fmt.Sprintf("%s-%s-%s-%s", m.o.App, m.o.HostID, ids.Short(cfg.ID), strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36), 36)),
		Image: cfg.Image, Cmd: cfg.Cmd, Env: env, Labels: labels, Port: cfg.Port,
		Network: m.o.Network, MemoryBytes: m.o.Policy.MemoryBytes(cfg), NanoCPUs: cfg.Resources.NanoCPUs(),
		PidsLimit:  m.o.Policy.PidsLimit,
		StopSignal: cfg.Stop.Signal, StopTimeout: cfg.Stop.Timeout.Duration,
		Privileged: cfg.Privileged, NetworkMode: networkMode, Binds: cfg.Binds, CapAdd: cfg.CapAdd,
	}, nil
}

// hostPortFree refuses to start a host-network container on a port that
// something already answers on (the active container of the same config,
// most often): the new container could not bind it, and its health checks
// would be answered by the other process, so it would look healthy while
// it exits.
func hostPortFree(cfg *deployconfig.Config, spec dockerctl.Spec) error {
	if spec.NetworkMode != "host" {
		return nil
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil // nothing answers: the port is free
	}
	conn.Close()
	return fmt.Errorf("config %s: %w: port %d on the host network is taken (%s answers): its container could not bind it, "+
		"and the health checks would reach the other process; a host-network app cannot run two versions side by side "+
		"on one port: stop what holds the port first, or run the app on the bridge network",
		ids.Short(cfg.ID), ErrUnhealthy, cfg.Port, addr)
}

// create creates and starts the container: a deployment, launching.
func (m *Manager) create(ctx context.Context, cfg *deployconfig.Config, spec dockerctl.Spec) (*deployment, error) {
	cid, err := m.o.Docker.Create(ctx, spec)
	if err != nil {
		return nil, dockerErr(err)
	}
	d := &deployment{cfg: cfg, info: ContainerInfo{
		ID: cid, Name: spec.Name, Image: cfg.Image, ConfigID: cfg.ID, Workers: cfg.Workers, Health: HealthStarting,
	}}
	m.mu.Lock()
	m.deployments[cid] = d
	m.noteStateLocked() // before it runs: a crash now leaves it for start-up to remove
	m.mu.Unlock()
	if err := m.o.Docker.Start(ctx, cid); err != nil {
		m.fail(ctx, d)
		return nil, dockerErr(err)
	}
	return d, nil
}

// awaitHealthy waits for a launching deployment's health checks: it is then
// launched, and its health checks keep running; or failed, with the
// container's last log lines in the error and the container removed.
func (m *Manager) awaitHealthy(ctx context.Context, d *deployment) error {
	ct, err := m.waitHealthy(ctx, d.info.ID, d.cfg)
	if err != nil {
		err = m.withLogs(ctx, d.info.ID, err)
		m.fail(ctx, d)
		return err
	}
	m.mu.Lock()
	d.info.Addr, d.info.Started, d.info.Health = ct.Addr, ct.StartedAt, HealthHealthy
	d.launchedAt = time.Now()
	m.moveLocked(d, Launched)
	m.noteStateLocked()
	m.mu.Unlock()
	m.watchHealth(d)
	return nil
}

// fail removes the container of a launch that failed: the deployment is
// failed.
func (m *Manager) fail(ctx context.Context, d *deployment) {
	m.discard(ctx, d.info.ID)
	m.mu.Lock()
	m.moveLocked(d, Failed)
	m.noteStateLocked()
	m.mu.Unlock()
}

// discard removes a container that failed or that nobody runs, even when
// ctx was cancelled (the manager closing): it must not be left behind.
func (m *Manager) discard(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := m.o.Docker.Remove(ctx, id); err != nil {
		m.log.Error().Err(err).Str("container", ids.Short(id)).Msg("could not remove failed container")
	}
}

// dockerErr marks errors of the daemon itself as ErrDocker, leaving image
// pull errors (the registry's or the image's fault) and refused settings
// (the config's) as they are.
func dockerErr(err error) error {
	if errors.Is(err, dockerctl.ErrImagePull) || errors.Is(err, dockerctl.ErrInvalidSpec) || errors.Is(err, ErrDocker) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDocker, err)
}
