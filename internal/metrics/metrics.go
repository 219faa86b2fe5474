// Package metrics exposes switchyard's figures in the Prometheus text format
// with the official Go client. It reads the proxy's lock-free counters and
// histograms when scraped, so it costs the request path nothing.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

// Source is what the metrics read: the proxy and, when switchyard manages
// containers, the manager (nil otherwise).
type Source struct {
	Proxy   *proxy.Proxy
	Manager interface {
		Status() manager.Status
		DeployStats() manager.DeployStats
	}
}

// promBounds are the upper bounds (seconds) of the duration histograms. The
// proxy's own histogram is finer; it is summed into these at scrape time.
var promBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Handler serves /metrics: switchyard's metrics plus the Go runtime's and
// the process's.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

type collector struct {
	src                                                   Source
	requests, shed, failed, bytesIn, bytesOut, duration   *prometheus.Desc
	inFlight, queued, ctrRequests, ctrInFlight, ctrHealth *prometheus.Desc
	activeInfo, healthy, deploys, deployDuration, uptime  *prometheus.Desc
	refused, overloaded, overloadedSecs, effTimeout       *prometheus.Desc
	backlog                                               *prometheus.Desc
	restartState, restartAttempts                         *prometheus.Desc
	fallbacks                                             *prometheus.Desc
}

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("switchyard_"+name, help, labels, nil)
	}
	return &collector{
		src:             src,
		requests:        d("requests_total", "Requests answered by the proxy, by status code class (shed requests count as 503s here).", "code_class"),
		shed:            d("shed_total", "Requests answered 503 for want of capacity (every reason of switchyard_refused_total but no_app)."),
		refused:         d("refused_total", "Requests the proxy answered with its own 503, by reason: queue_timeout, overload (shed at once by the adaptive queue), queue_full, limits (the proxy's buffers or HTTP/2 streams), no_app (no app running; not shed).", "reason"),
		overloaded:      d("queue_overloaded", "1 while the adaptive queue is overloaded: FIFO would be shedding, so the oldest waiters are shed at once and the newest served."),
		overloadedSecs:  d("queue_overloaded_seconds_total", "Time the adaptive queue spent overloaded."),
		effTimeout:      d("queue_effective_timeout_seconds", "About the longest a request waits for a worker now: the queue timeout, or about one service time of the app while overloaded."),
		backlog:         d("queue_backlog_seconds", "How long a request arriving now would wait in a FIFO queue (the adaptive queue's overload signal; 0 for fifo and lifo)."),
		failed:          d("upstream_failures_total", "Requests the proxy answered 502 or 504 because the app did not."),
		bytesIn:         d("received_bytes_total", "Bytes received from clients."),
		bytesOut:        d("sent_bytes_total", "Response body bytes sent to clients."),
		duration:        d("request_duration_seconds", "Request time by phase: queue (waiting for a worker), app (until the app's response headers), total.", "phase"),
		inFlight:        d("in_flight_requests", "Requests inside the active container now."),
		queued:          d("queued_requests", "Requests waiting for a worker slot now."),
		ctrRequests:     d("container_requests_total", "Requests answered while a container was active, by container and status code class: its own answers and the proxy's 502/504 for it, not the requests shed (switchyard_shed_total).", "container", "config", "code_class"),
		ctrInFlight:     d("container_in_flight_requests", "Requests inside a container now (active or draining).", "container"),
		ctrHealth:       d("container_healthy", "1 when a managed container passes its health checks.", "container", "config", "role"),
		activeInfo:      d("active_container_info", "The active container (value 1).", "container", "image", "config"),
		healthy:         d("healthy", "1 when there is an active, healthy container (what /status answers 200 for)."),
		deploys:         d("deployments_total", "Deployment operations by action and result.", "action", "result"),
		deployDuration:  d("deployment_duration_seconds", "Time deployment operations took, by action.", "action"),
		uptime:          d("uptime_seconds", "Seconds since switchyard's manager started."),
		restartState:    d("active_restart_state", "1 for the state of bringing the dead active container back: restarting, or gave_up (a crash loop: only a deploy or rollback helps).", "state"),
		restartAttempts: d("active_restart_attempts", "Tries in a row to bring the dead active container back (0 when it runs)."),
		fallbacks:       d("fallback_requests_total", "Requests the app could not take sent to a peer (sent), of them those the peer did not answer or answered 502/503/504 (failed), and requests peers sent here (received).", "direction"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.shed, c.failed, c.bytesIn, c.bytesOut, c.duration, c.inFlight,
		c.queued, c.ctrRequests, c.ctrInFlight, c.ctrHealth, c.activeInfo, c.healthy, c.deploys, c.deployDuration, c.uptime,
		c.refused, c.overloaded, c.overloadedSecs, c.effTimeout, c.backlog, c.restartState, c.restartAttempts, c.fallbacks} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Proxy
	st := p.Stats()
	snap := st.Snapshot()
	for class, n := range codeClasses(snap.Codes) {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(n), class)
	}
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(snap.Shed))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(snap.Failed))
	ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(snap.BytesIn))
	ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(snap.BytesOut))
	for phase, h := range map[string]*histogram.Histogram{"queue": &st.Queue, "app": &st.App, "total": &st.Total} {
		count, sum, buckets := promBuckets(h.Snapshot())
		ch <- prometheus.MustNewConstHistogram(c.duration, count, sum, buckets, phase)
	}
	var inFlight int64
	if t := p.Active(); t != nil {
		inFlight = t.InFlight()
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(inFlight))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(p.Queued()))
	c.collectQueue(ch, snap.ShedReasons, p.QueueState())
	fb := p.Fallbacks()
	for dir, n := range map[string]uint64{"sent": fb.Sent, "failed": fb.Failed, "received": fb.Received} {
		ch <- prometheus.MustNewConstMetric(c.fallbacks, prometheus.CounterValue, float64(n), dir)
	}
	if c.src.Manager != nil {
		c.collectManager(ch)
	}
}

// collectManager reports the deployments: the containers and the
// operations.
func (c *collector) collectManager(ch chan<- prometheus.Metric) {
	m := c.src.Manager
	s := m.Status()
	ch <- prometheus.MustNewConstMetric(c.uptime, prometheus.GaugeValue, s.Uptime.Seconds())
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, boolf(s.Healthy))
	var attempts int
	if r := s.Restart; r != nil {
		attempts = r.Attempts
	}
	for _, state := range []string{manager.RestartRunning, manager.RestartGaveUp} {
		ch <- prometheus.MustNewConstMetric(c.restartState, prometheus.GaugeValue, boolf(s.Restart != nil && s.Restart.State == state), state)
	}
	ch <- prometheus.MustNewConstMetric(c.restartAttempts, prometheus.GaugeValue, float64(attempts))
	report := func(ci manager.ContainerInfo, role string) {
		id := ids.Short(ci.ID)
		ch <- prometheus.MustNewConstMetric(c.ctrHealth, prometheus.GaugeValue, boolf(ci.Health == manager.HealthHealthy), id, ids.Short(ci.ConfigID), role)
		ch <- prometheus.MustNewConstMetric(c.ctrInFlight, prometheus.GaugeValue, float64(ci.InFlight), id)
		if ci.Stats != nil {
			for class, n := range codeClasses(ci.Stats.Codes) {
				ch <- prometheus.MustNewConstMetric(c.ctrRequests, prometheus.CounterValue, float64(n), id, ids.Short(ci.ConfigID), class)
			}
		}
	}
	if a := s.Active; a != nil {
		ch <- prometheus.MustNewConstMetric(c.activeInfo, prometheus.GaugeValue, 1, ids.Short(a.ID), a.Image, ids.Short(a.ConfigID))
		report(*a, manager.Active.String())
	}
	for _, l := range s.Launched {
		report(l, manager.Launched.String())
	}
	ds := m.DeployStats()
	for k, n := range ds.Counts {
		ch <- prometheus.MustNewConstMetric(c.deploys, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	for action, h := range ds.Durations {
		count, sum, buckets := promBuckets(h)
		ch <- prometheus.MustNewConstHistogram(c.deployDuration, count, sum, buckets, action)
	}
}

// collectQueue reports why requests were refused and the queue's state.
func (c *collector) collectQueue(ch chan<- prometheus.Metric, r proxy.ShedReasons, q proxy.QueueState) {
	for reason, n := range map[string]uint64{"queue_timeout": r.QueueTimeout, "overload": r.Overload,
		"queue_full": r.QueueFull, "limits": r.Limits, "no_app": r.NoApp} {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.overloaded, prometheus.GaugeValue, boolf(q.State == proxy.StateOverloaded))
	ch <- prometheus.MustNewConstMetric(c.overloadedSecs, prometheus.CounterValue, q.OverloadedSeconds)
	ch <- prometheus.MustNewConstMetric(c.effTimeout, prometheus.GaugeValue, q.EffectiveTimeoutMs/1000)
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, q.BacklogMs/1000)
}

// promBuckets turns the proxy's histogram into Prometheus' cumulative
// buckets. An observation counts under a bound when its own bucket's upper
// edge is within the bound, so a count is never attributed to a lower bound
// than its true value's.
func promBuckets(s *histogram.Snapshot) (uint64, float64, map[float64]uint64) {
	out := make(map[float64]uint64, len(promBounds))
	var total uint64
	bi := 0
	cum := uint64(0)
	for i, n := range s.Buckets {
		upper := float64(histogram.BucketUpperMicros(i)) / 1e6
		for bi < len(promBounds) && upper > promBounds[bi] {
			out[promBounds[bi]] = cum
			bi++
		}
		cum += n
		total += n
	}
	for ; bi < len(promBounds); bi++ {
		out[promBounds[bi]] = cum
	}
	return total, float64(s.SumMicros) / 1e6, out
}

func codeClasses(codes map[int]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for code, n := range codes {
		out[strconv.Itoa(code/100)+"xx"] += n
	}
	return out
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
