package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/histogram"
)

type fakeManager struct{}

func (fakeManager) Status() manager.Status {
	return manager.Status{Healthy: true, Uptime: 90 * time.Second,
		Active: &manager.ContainerInfo{ID: "0123456789abcdef", Image: "shop:v2", ConfigID: "feedfacecafe0000", Health: manager.HealthHealthy,
			InFlight: 2, Stats: &proxy.Snapshot{Codes: map[int]uint64{200: 5, 503: 1}}}}
}

func (fakeManager) DeployStats() manager.DeployStats {
	var h histogram.Histogram
	h.Observe(3 * time.Second)
	return manager.DeployStats{Counts: map[[2]string]uint64{{"launch", "ok"}: 2, {"launch", "error"}: 1},
		Durations: map[string]*histogram.Snapshot{"launch": h.Snapshot()}}
}

func get(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The counters match traffic whose mix is known: 5 × 503 before any app
// runs (refused, not shed), 70 × 200, 20 × 503 shed by queue timeout, 10 ×
// 502 from a target that refuses connections.
func TestMetricsKnownMix(t *testing.T) {
	hold := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-hold
		}
		io.WriteString(w, "ok")
	}))
	defer app.Close()
	p, err := proxy.New(proxy.Config{QueueTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()

	for i := 0; i < 5; i++ {
		if c := get(t, front.URL+"/"); c != 503 {
			t.Fatalf("status %d without an app, want 503", c)
		}
	}
	p.SetTarget("app", app.Listener.Addr().String(), 1)
	for i := 0; i < 70; i++ {
		if c := get(t, front.URL+"/"); c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); get(t, front.URL+"/hold") }() // the 71st 200, after the sheds
	for p.Active().InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if c := get(t, front.URL+"/"); c != 503 {
			t.Fatalf("status %d, want 503", c)
		}
	}
	close(hold)
	wg.Wait()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	p.SetTarget("dead", dead, 1)
	for i := 0; i < 10; i++ {
		if c := get(t, front.URL+"/"); c != 502 {
			t.Fatalf("status %d, want 502", c)
		}
	}

	fams := scrape(t, Handler(Source{Proxy: p, Manager: fakeManager{}}))
	want := map[string]float64{
		`switchyard_requests_total{code_class="2xx"}`:      71,
		`switchyard_requests_total{code_class="5xx"}`:      35,
		`switchyard_shed_total`:                            20,
		`switchyard_refused_total{reason="queue_timeout"}`: 20,
		`switchyard_refused_total{reason="no_app"}`:        5,
		`switchyard_refused_total{reason="overload"}`:      0,
		`switchyard_queue_overloaded`:                      0,
		`switchyard_queue_effective_timeout_seconds`:       0.02,
		`switchyard_upstream_failures_total`:               10,
		`switchyard_queued_requests`:                       0,
		`switchyard_healthy`:                               1,
		`switchyard_active_container_info{config="feedfacecafe",container="0123456789ab",image="shop:v2"}`:     1,
		`switchyard_container_requests_total{code_class="5xx",config="feedfacecafe",container="0123456789ab"}`: 1,
		`switchyard_deployments_total{action="launch",result="error"}`:                                         1,
		`switchyard_uptime_seconds`: 90,
	}
	for series, v := range want {
		if got, ok := value(fams, series); !ok || got != v {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, v)
		}
	}
	h := promHistogram(t, fams, "switchyard_request_duration_seconds", "total")
	if h.GetSampleCount() != 106 {
		t.Errorf("total duration count %d, want 106", h.GetSampleCount())
	}
	// The shed requests waited ≥ 20 ms in the queue: none under 10 ms.
	q := promHistogram(t, fams, "switchyard_request_duration_seconds", "queue")
	for _, b := range q.GetBucket() {
		if b.GetUpperBound() == 0.025 && b.GetCumulativeCount() < 90 {
			t.Errorf("queue ≤ 25 ms: %d, want the 71 admitted at once and most of the 20 shed", b.GetCumulativeCount())
		}
	}
	if d := promHistogram(t, fams, "switchyard_deployment_duration_seconds", "launch"); d.GetSampleCount() != 1 || d.GetSampleSum() < 2.9 {
		t.Errorf("deployment duration: %v", d)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil).WithContext(context.Background()))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v\n%s", err, rec.Body.String())
	}
	return fams
}

// value finds `name{label="v",...}` (labels sorted by name) in fams.
func value(fams map[string]*dto.MetricFamily, series string) (float64, bool) {
	name, labels, _ := strings.Cut(series, "{")
	labels = strings.TrimSuffix(labels, "}")
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		var parts []string
		for _, l := range m.GetLabel() {
			parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
		}
		if strings.Join(parts, ",") != labels {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func promHistogram(t *testing.T, fams map[string]*dto.MetricFamily, name, label string) *dto.Histogram {
	t.Helper()
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() == label {
				return m.GetHistogram()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return nil
}

// Names and help texts follow Prometheus conventions (promlint).
func TestMetricsLint(t *testing.T) {
	p, _ := proxy.New(proxy.Config{})
	problems, err := testutil.CollectAndLint(newCollector(Source{Proxy: p, Manager: fakeManager{}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("%s: %s", pr.Metric, pr.Text)
	}
}

// statusManager reports a fixed status.
type statusManager struct{ st manager.Status }

func (m statusManager) Status() manager.Status { return m.st }
func (statusManager) DeployStats() manager.DeployStats {
	return manager.DeployStats{Counts: map[[2]string]uint64{}, Durations: map[string]*histogram.Snapshot{}}
}

// Shed requests are not the container's 5xx: 20 sheds and 5 answers of 500
// from the app give the container five 5xx, and the proxy 25.
func TestContainerFiveXXExcludesShed(t *testing.T) {
	hold := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold":
			<-hold
		case "/fail":
			w.WriteHeader(500)
		}
	}))
	defer app.Close()
	p, err := proxy.New(proxy.Config{QueueTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()
	tg, _, _ := p.SetTarget("app", app.Listener.Addr().String(), 1)
	for range 5 {
		get(t, front.URL+"/fail")
	}
	done := make(chan struct{})
	go func() { get(t, front.URL+"/hold"); close(done) }()
	for tg.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 20 {
		if c := get(t, front.URL+"/"); c != 503 {
			t.Fatalf("status %d, want a shed 503", c)
		}
	}
	close(hold)
	<-done
	for p.Stats().Snapshot().Requests < 26 {
		time.Sleep(time.Millisecond)
	}
	snap := tg.Stats().Snapshot()
	m := statusManager{manager.Status{Healthy: true, Active: &manager.ContainerInfo{ID: "0123456789abcdef", ConfigID: "feedfacecafe0000",
		Health: manager.HealthHealthy, Stats: &snap}}}
	fams := scrape(t, Handler(Source{Proxy: p, Manager: m}))
	for series, v := range map[string]float64{
		`switchyard_container_requests_total{code_class="5xx",config="feedfacecafe",container="0123456789ab"}`: 5,
		`switchyard_requests_total{code_class="5xx"}`:                                                          25,
		`switchyard_shed_total`: 20,
	} {
		if got, ok := value(fams, series); !ok || got != v {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, v)
		}
	}
}

// The restart of a dead active container, and a crash loop, are in /metrics.
func TestRestartStateMetrics(t *testing.T) {
	p, _ := proxy.New(proxy.Config{})
	defer p.Close()
	for _, tt := range []struct {
		restart            *manager.RestartStatus
		restarting, gaveUp float64
		attempts           float64
	}{
		{nil, 0, 0, 0},
		{&manager.RestartStatus{State: manager.RestartRunning, Attempts: 2, MaxAttempts: 3}, 1, 0, 2},
		{&manager.RestartStatus{State: manager.RestartGaveUp, Attempts: 3, MaxAttempts: 3}, 0, 1, 3},
	} {
		fams := scrape(t, Handler(Source{Proxy: p, Manager: statusManager{manager.Status{Restart: tt.restart}}}))
		for series, v := range map[string]float64{
			`switchyard_active_restart_state{state="restarting"}`: tt.restarting,
			`switchyard_active_restart_state{state="gave_up"}`:    tt.gaveUp,
			`switchyard_active_restart_attempts`:                  tt.attempts,
		} {
			if got, ok := value(fams, series); !ok || got != v {
				t.Errorf("restart %+v: %s = %v (found %v), want %v", tt.restart, series, got, ok, v)
			}
		}
	}
}
