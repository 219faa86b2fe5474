package fleet

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/manager"
)

// HostOptions say who a host is in its heartbeat.
type HostOptions struct {
	Host, App, Version string
	// Addr is where peers reach this host's proxy; "" takes no fallbacks.
	Addr string
	// Interval is the heartbeat interval; default DefaultHeartbeatInterval.
	Interval time.Duration
	// Status is the manager's status; Follow the follower's state (nil
	// when the host does not follow); Fallbacks the proxy's counts.
	Status    func() manager.Status
	Follow    func() FollowState
	Fallbacks func() Fallbacks
}

// Heartbeats writes this host's heartbeat every interval and reads the
// others', keeping the list of live peers.
type Heartbeats struct {
	st  Store
	o   HostOptions
	log zerolog.Logger

	mu     sync.Mutex
	peers  []Heartbeat // live, without this host
	errMsg string      // the last failure, logged once
}

// NewHeartbeats makes the heartbeat writer and peer reader of a host.
func NewHeartbeats(st Store, o HostOptions, log zerolog.Logger) *Heartbeats {
	if o.Interval <= 0 {
		o.Interval = DefaultHeartbeatInterval
	}
	return &Heartbeats{st: st, o: o, log: log}
}

// Run beats until ctx ends; then it writes a last heartbeat saying the
// host stopped, so that peers stop sending it requests at once.
func (h *Heartbeats) Run(ctx context.Context) {
	t := time.NewTicker(h.o.Interval)
	defer t.Stop()
	for {
		h.Beat(ctx)
		select {
		case <-ctx.Done():
			h.stopped()
			return
		case <-t.C:
		}
	}
}

// stopBeatTimeout bounds the last heartbeat: S3 may be down.
const stopBeatTimeout = 3 * time.Second

func (h *Heartbeats) stopped() {
	ctx, cancel := context.WithTimeout(context.Background(), stopBeatTimeout)
	defer cancel()
	hb := h.heartbeat()
	hb.Stopped, hb.Healthy = true, false
	if err := h.put(ctx, hb); err != nil {
		h.log.Warn().Err(err).Msg("fleet: could not write the last heartbeat; peers see this host gone after 3 intervals")
	}
}

func (h *Heartbeats) put(ctx context.Context, hb Heartbeat) error {
	data, _ := json.MarshalIndent(hb, "", "  ")
	_, err := h.st.Put(ctx, heartbeatName(h.o.Host), append(data, '\n'), deployconfig.PutCondition{})
	return err
}

// Beat writes the heartbeat once and reads the peers'.
func (h *Heartbeats) Beat(ctx context.Context) {
	err := h.put(ctx, h.heartbeat())
	if err == nil {
		err = h.readPeers(ctx)
	}
	h.mu.Lock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	changed := msg != h.errMsg
	h.errMsg = msg
	h.mu.Unlock()
	switch {
	case changed && err != nil:
		h.log.Warn().Err(err).Msg("fleet: heartbeat failed; keeping the last list of peers")
	case changed:
		h.log.Info().Msg("fleet: heartbeats written again")
	}
}

// heartbeat is this host's, now.
func (h *Heartbeats) heartbeat() Heartbeat {
	st := h.o.Status()
	w := st.Proxy.Windows.Last1m
	hb := Heartbeat{Host: h.o.Host, App: h.o.App, Addr: h.o.Addr, Version: h.o.Version,
		Healthy: st.Healthy, Operation: st.Operation, RPS: w.RPS, Shed: w.Shed,
		Time: time.Now().UTC(), IntervalSeconds: h.o.Interval.Seconds()}
	for code, n := range w.Codes {
		if code >= 500 && code <= 599 {
			hb.Errors5xx += n
		}
	}
	if st.Active != nil {
		hb.Active = st.Active.ConfigID
	}
	if h.o.Follow != nil {
		f := h.o.Follow()
		hb.Want, hb.Release, hb.LaunchError, hb.SourceError = f.Want, f.Release, f.LaunchError, f.SourceError
	}
	if h.o.Fallbacks != nil {
		hb.Fallbacks = h.o.Fallbacks()
	}
	return hb
}

// readPeers refreshes the live peers.
func (h *Heartbeats) readPeers(ctx context.Context) error {
	all, err := ReadHosts(ctx, h.st)
	if err != nil {
		return err
	}
	now := time.Now()
	var live []Heartbeat
	for _, p := range all {
		if p.Host != h.o.Host && p.App == h.o.App && p.Live(now) {
			live = append(live, p)
		}
	}
	h.mu.Lock()
	h.peers = live
	h.mu.Unlock()
	return nil
}

// PeerAddrs are the proxy addresses of the live peers that take fallbacks.
// While S3 cannot be read the last list read is kept: the peers are likely
// still there.
func (h *Heartbeats) PeerAddrs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.peers))
	for _, p := range h.peers {
		if p.Addr != "" && p.Healthy {
			out = append(out, p.Addr)
		}
	}
	return out
}
