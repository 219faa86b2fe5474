package manager

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// Launch fetches config id, pulls its image, starts its container and waits
// until it is healthy. The container is then "launched": running beside the
// active one, ready for Switch. A failed launch removes its container and
// leaves the active one untouched.
func (m *Manager) Launch(ctx context.Context, id, who string) (ContainerInfo, error) {
	end, err := m.begin("launch " + ids.Short(id))
	if err != nil {
		return ContainerInfo{}, err
	}
	defer end()
	// A CI client that hangs up must not leave a half-made container behind.
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	info, err := m.launch(ctx, id)
	m.record(Event{Action: "launch", Who: who, ConfigID: configID(info, id), Container: info.ID,
		Result: result(err), Error: errText(err), Duration: time.Since(start)})
	return info, err
}

// launch does Launch's work; the caller holds the operation slot.
func (m *Manager) launch(ctx context.Context, id string) (ContainerInfo, error) {
	cfg, err := m.o.Source.Fetch(ctx, id)
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("fetch config %s from %s: %w", id, m.o.Source, err)
	}
	log := m.log.With().Str("config", ids.Short(cfg.ID)).Str("image", cfg.Image).Logger()
	if err := m.o.Policy.Check(cfg); err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), err)
	}
	networkMode := cfg.NetworkMode
	if m.o.Network != "" {
		// The operator's network decides how the proxy reaches the app.
		if networkMode != "" && networkMode != "bridge" {
			return ContainerInfo{}, fmt.Errorf("config %s: %w: network_mode %q cannot be used with switchyard's --docker-network %s",
				ids.Short(cfg.ID), deployconfig.ErrInvalid, networkMode, m.o.Network)
		}
		networkMode = ""
	}
	env, err := cfg.ResolveEnv(m.o.StaticEnv)
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), err)
	}
	log.Info().Msg("launch: pulling image unless present")
	if err := m.o.Docker.EnsureImage(ctx, cfg.Image, func(line string) {
		log.Debug().Str("progress", line).Msg("pull")
	}); err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), dockerErr(err))
	}

	labels := map[string]string{}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	labels[LabelApp] = m.o.App
	labels[LabelConfig] = cfg.ID
	name := fmt.Sprintf("%s-%s-%s", m.o.App, ids.Short(cfg.ID), strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36), 36))
	cid, err := m.o.Docker.Create(ctx, dockerctl.Spec{
		Name: name, Image: cfg.Image, Cmd: cfg.Cmd, Env: env, Labels: labels, Port: cfg.Port,
		Network: m.o.Network, MemoryBytes: cfg.Resources.MemoryBytes(), NanoCPUs: cfg.Resources.NanoCPUs(),
		StopSignal: cfg.Stop.Signal, StopTimeout: cfg.Stop.Timeout.Duration,
		Privileged: cfg.Privileged, NetworkMode: networkMode, Binds: cfg.Binds, CapAdd: cfg.CapAdd,
	})
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), dockerErr(err))
	}
	log = log.With().Str("container", ids.Short(cid)).Logger()
	if err := m.o.Docker.Start(ctx, cid); err != nil {
		m.discard(ctx, cid)
		return ContainerInfo{}, fmt.Errorf("config %s: %w", ids.Short(cfg.ID), dockerErr(err))
	}
	log.Info().Str("name", name).Msg("launch: container started, waiting for health checks")
	ct, err := m.waitHealthy(ctx, cid, cfg)
	if err != nil {
		logs, _ := m.o.Docker.Logs(ctx, cid, 20)
		m.discard(ctx, cid)
		if logs = strings.TrimSpace(logs); logs != "" {
			err = fmt.Errorf("%w\ncontainer's last log lines:\n%s", err, logs)
		}
		log.Error().Err(err).Msg("launch failed: container removed")
		return ContainerInfo{}, fmt.Errorf("config %s, image %s, container %s: %w", ids.Short(cfg.ID), cfg.Image, ids.Short(cid), err)
	}
	d := &deployment{cfg: cfg, info: ContainerInfo{
		ID: cid, Name: name, Image: cfg.Image, ConfigID: cfg.ID, Addr: ct.Addr,
		Workers: cfg.Workers, Started: ct.StartedAt, Health: HealthHealthy,
	}}
	m.mu.Lock()
	m.launched[cid] = d
	m.mu.Unlock()
	m.watchHealth(d)
	log.Info().Str("addr", ct.Addr).Msg("launch: container healthy")
	return d.info, nil
}

// discard removes a container that failed to launch.
func (m *Manager) discard(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.o.Docker.Remove(ctx, id); err != nil {
		m.log.Error().Err(err).Str("container", ids.Short(id)).Msg("could not remove failed container")
	}
}

// dockerErr marks errors of the daemon itself as ErrDocker, leaving image
// pull errors (the registry's or the image's fault) as they are.
func dockerErr(err error) error {
	if errors.Is(err, dockerctl.ErrImagePull) || errors.Is(err, ErrDocker) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDocker, err)
}

func configID(info ContainerInfo, id string) string {
	if info.ConfigID != "" {
		return info.ConfigID
	}
	return id
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
