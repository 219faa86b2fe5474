package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/proxy"
)

// fleetSettings are serve's settings for running one app on several hosts
// (docs/fleet.md): following current.json, heartbeats, peer fallback.
type fleetSettings struct {
	follow         bool
	pollInterval   time.Duration
	heartbeatEvery time.Duration
	advertise      string
	peers          []string
	peerFallback   bool

	// set by serve: the live peers for the proxy's fallback.
	peerSet *peerSet
}

func addFleetSettings(s *settings, f *fleetSettings) {
	s.boolean(&f.follow, "follow", []string{"SWITCHYARD_FOLLOW"}, "false",
		"follow current.json in --configs (an S3 bucket the hosts share): launch and switch to what it names, write a heartbeat under hosts/; /switch and /rollback then answer 409 (use switchyard release)")
	s.duration(&f.pollInterval, "poll-interval", []string{"SWITCHYARD_POLL_INTERVAL"}, durationText(fleet.DefaultPollInterval),
		"with --follow: how often current.json is read (a conditional GET, ±20% jitter)")
	s.duration(&f.heartbeatEvery, "heartbeat-interval", []string{"SWITCHYARD_HEARTBEAT_INTERVAL"}, durationText(fleet.DefaultHeartbeatInterval),
		"with --follow: how often this host writes its heartbeat and reads its peers'; a host silent for 3 intervals is gone")
	s.str(&f.advertise, "advertise", []string{"SWITCHYARD_ADVERTISE"}, "",
		"host:port where peers reach this host's proxy over plain HTTP, in its heartbeat (default: --listen when it names an address, else this host's first non-loopback IP and --listen's port)")
	s.add("peers", []string{"SWITCHYARD_PEERS"}, "", "comma-separated host:port of other hosts' proxies to send requests the app cannot take to (added to the live hosts of --follow)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(p); err != nil {
				return fmt.Errorf("%q: want host:port", p)
			}
			f.peers = append(f.peers, p)
		}
		return nil
	})
	s.boolean(&f.peerFallback, "peer-fallback", []string{"SWITCHYARD_PEER_FALLBACK"}, "true",
		"send a request the app cannot take (no app, app down or being restarted, connection refused) once to a live peer, marked X-Switchyard-Fallback")
}

// validate checks the fleet settings against the others.
func (f *fleetSettings) validate(c *serveConfig) error {
	if f.follow && c.upstream != "" {
		return fmt.Errorf("follow: a static upstream has no deployments to follow")
	}
	if f.follow && !strings.HasPrefix(c.configs, "s3://") {
		return fmt.Errorf("follow: --configs %q: the hosts of a fleet share an S3 bucket: use s3://bucket/prefix", c.configs)
	}
	if f.pollInterval <= 0 || f.heartbeatEvery <= 0 {
		return fmt.Errorf("poll-interval and heartbeat-interval must be positive")
	}
	if f.advertise != "" {
		if _, _, err := net.SplitHostPort(f.advertise); err != nil {
			return fmt.Errorf("advertise %q: want host:port", f.advertise)
		}
	}
	f.peerSet = &peerSet{static: f.peers}
	return nil
}

// proxyFallback is the proxy's fallback hook, nil when there can be no peers.
func (f *fleetSettings) proxyFallback(c *serveConfig) *proxy.Fallback {
	if !f.peerFallback || f.peerSet == nil || (!f.follow && len(f.peers) == 0) {
		return nil
	}
	return &proxy.Fallback{Origin: cmpOr(c.hostID, manager.DefaultHostID()), Peers: f.peerSet.addrs}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// peerSet is where the proxy finds peers: the static --peers and the live
// hosts the heartbeats read.
type peerSet struct {
	static []string
	hb     atomic.Pointer[fleet.Heartbeats]
}

func (p *peerSet) addrs() []string {
	h := p.hb.Load()
	if h == nil {
		return p.static
	}
	return append(h.PeerAddrs(), p.static...)
}

// advertiseAddr is the address peers reach the proxy at.
func (f *fleetSettings) advertiseAddr(listen string) string {
	if f.advertise != "" {
		return f.advertise
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	switch ip, perr := netip.ParseAddr(host); {
	case perr == nil && !ip.IsUnspecified():
		return listen
	case perr != nil && host != "":
		return listen // a name
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return net.JoinHostPort(n.IP.String(), port)
		}
	}
	return ""
}

// startFleet starts following current.json and the heartbeats (with
// --follow). stop cancels them and waits for them: call it before the
// manager closes.
func (c *serveConfig) startFleet(ctx context.Context, m *manager.Manager, p *proxy.Proxy, log zerolog.Logger) (stop func(), err error) {
	if !c.fleet.follow {
		return func() {}, nil
	}
	b, err := deployconfig.OpenBucket(ctx, c.configs, c.openOptions())
	if err != nil {
		return nil, fmt.Errorf("--configs: %w", err)
	}
	log = log.With().Str("host", m.HostID()).Logger()
	f := fleet.NewFollower(b, m, log)
	f.Interval = c.fleet.pollInterval
	fb := func() fleet.Fallbacks {
		n := p.Fallbacks()
		return fleet.Fallbacks{Sent: n.Sent, Received: n.Received, Failed: n.Failed}
	}
	hb := fleet.NewHeartbeats(b, fleet.HostOptions{Host: m.HostID(), App: c.app, Version: version,
		Addr: c.fleet.advertiseAddr(c.listen), Interval: c.fleet.heartbeatEvery,
		Status: m.Status, Follow: f.State, Fallbacks: fb}, log)
	c.fleet.peerSet.hb.Store(hb)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.Run(ctx) }()
	go func() { defer wg.Done(); hb.Run(ctx) }()
	log.Info().Str("configs", b.String()).Str("advertise", c.fleet.advertiseAddr(c.listen)).Msg("fleet: following current.json")
	return func() { cancel(); wg.Wait() }, nil
}

// following is the manager as the API sees it in follow mode: what the
// host serves changes with a release, so /switch and /rollback are
// refused; /launch (pre-warming) still works.
type following struct {
	*manager.Manager
	where string
}

func (f following) Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error) {
	return manager.SwitchResult{}, f.refuse()
}

func (f following) Rollback(ctx context.Context, who string) (manager.SwitchResult, error) {
	return manager.SwitchResult{}, f.refuse()
}

func (f following) refuse() error {
	return fmt.Errorf("%w (%s): change what every host serves with switchyard release ID (or release --previous)", api.ErrFollowMode, f.where)
}

// apiManager is the manager the API drives.
func (c *serveConfig) apiManager(m *manager.Manager) api.Manager {
	if c.fleet.follow {
		return following{m, c.configs + "/current.json"}
	}
	return m
}
