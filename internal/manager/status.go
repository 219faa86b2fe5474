package manager

import (
	"sort"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// Status reports the app, its containers and the proxy's figures.
func (m *Manager) Status() Status {
	m.mu.Lock()
	st := Status{
		App:       m.o.App,
		Host:      m.o.HostID,
		Operation: m.op,
		Previous:  m.previous,
		Source:    m.o.Source.String(),
		Started:   m.started,
		Uptime:    time.Since(m.started),
		Launched:  []ContainerInfo{},
	}
	for _, d := range m.deployments {
		switch d.role {
		case Active:
			info := m.infoLocked(d)
			st.Active = &info
			st.Healthy = info.Health == HealthHealthy
		case Launched:
			st.Launched = append(st.Launched, m.infoLocked(d))
		}
	}
	if d := m.replaced; d != nil {
		info := m.infoLocked(d)
		st.Replaced = &info
	}
	st.Restart = m.restartStatusLocked(st.Active)
	st.PID, st.TookOverFrom, st.Upgrade = m.o.Holder.PID, m.predecessor, m.upgradeLocked()
	m.mu.Unlock()
	sort.Slice(st.Launched, func(i, j int) bool { return st.Launched[i].Started.After(st.Launched[j].Started) })
	st.History = m.History()
	if len(st.History) > statusHistory {
		st.History = st.History[:statusHistory]
	}

	st.Proxy = ProxyStatusOf(m.o.Proxy)
	return st
}

// ProxyStatusOf is the proxy-wide part of a Status: also what a switchyard
// without a manager (a static upstream) reports.
func ProxyStatusOf(p Proxy) ProxyStatus {
	ps := p.Stats()
	rep := p.Report()
	st := ProxyStatus{Snapshot: ps.Snapshot(), Queued: p.Queued(), Latency: map[string]Percentiles{
		"queue": percentiles(&ps.Queue), "app": percentiles(&ps.App), "total": percentiles(&ps.Total),
	}, Windows: rep.Windows, Connections: rep.Connections, Queue: rep.Queue, Fallbacks: p.Fallbacks()}
	if t := p.Active(); t != nil {
		st.InFlight = t.InFlight()
	}
	return st
}

// Point is one sample interval of the proxy's figures (proxy.Point).
type Point = proxy.Point

// Series is the proxy-wide figures per sample interval over the last 15
// minutes, oldest first, for the status page's charts.
func (m *Manager) Series() []Point { return m.o.Proxy.Series() }

// infoLocked is d's info with the proxy's figures for it, and a launched
// container's expiry. Caller holds m.mu.
func (m *Manager) infoLocked(d *deployment) ContainerInfo {
	info := d.info
	if at, ok := m.expiryLocked(d); ok {
		info.ExpiresAt = &at
	}
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

// DeployStats are the deployment operations since start, for metrics.
type DeployStats struct {
	// Counts by action and result ("ok", "error").
	Counts map[[2]string]uint64
	// Durations of the timed actions (launch, switch, rollback, start), by
	// action.
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
