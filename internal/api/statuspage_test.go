package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/testservers"
)

// browserAccept is what Chromium sends when navigating.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestStatusPageServed(t *testing.T) {
	h := New(Options{Manager: newFake()})
	for _, path := range []string{"/", "/status"} {
		rec := do(h, "GET", path, "", map[string]string{"Accept": browserAccept})
		if rec.Code != 200 {
			t.Fatalf("GET %s: status %d, want 200; body %s", path, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", path, ct)
		}
		body := rec.Body.String()
		for _, want := range []string{`<script src="ui/app.js"`, `id="active-id"`, `data-field="requests"`, `id="chart-rps"`} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: page lacks %s", path, want)
			}
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if v := rec.Header().Get("Vary"); v != "Accept" {
			t.Errorf("GET %s: Vary %q, want Accept", path, v)
		}
	}
	for path, wantType := range map[string]string{"/ui/app.js": "text/javascript", "/ui/style.css": "text/css"} {
		rec := do(h, "GET", path, "", nil)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), wantType) || rec.Body.Len() < 100 {
			t.Errorf("GET %s: status %d, Content-Type %q, %d bytes", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
	}
	rec := do(h, "GET", "/ui/nope.js", "", nil)
	if rec.Code != 404 || decodeError(t, rec).Kind != KindUnknownRoute {
		t.Errorf("GET /ui/nope.js: status %d, body %s", rec.Code, rec.Body)
	}
	rec = do(h, "POST", "/ui/app.js", "", nil)
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET" {
		t.Errorf("POST /ui/app.js: status %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestStatusNegotiation(t *testing.T) {
	tests := []struct {
		path, accept string
		wantHTML     bool
		wantCode     int
	}{
		{"/status", browserAccept, true, 200},
		{"/status", "application/json", false, 200},
		{"/status", "", false, 200},
		{"/status", "*/*", false, 200},
		{"/status", "text/html;q=0.5, application/json", false, 200},
		{"/status", "application/json;q=0.5, text/html", true, 200},
		{"/status", "text/*, application/json;q=0.9", true, 200},
		{"/status", "text/html;q=0", false, 200},
		{"/", browserAccept, true, 200},
		{"/", "application/json", false, 404},
		{"/", "", false, 404}, // programs get JSON everywhere
		{"/", "*/*", false, 404},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			rec := do(New(Options{Manager: newFake()}), "GET", tt.path, "", map[string]string{"Accept": tt.accept})
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			ct := rec.Header().Get("Content-Type")
			if isHTML := strings.HasPrefix(ct, "text/html"); isHTML != tt.wantHTML {
				t.Fatalf("Content-Type %q, want HTML %v", ct, tt.wantHTML)
			}
			if !tt.wantHTML && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			if tt.wantCode == 404 && decodeError(t, rec).Kind != KindUnknownRoute {
				t.Errorf("body %s, want kind %s", rec.Body, KindUnknownRoute)
			}
		})
	}
}

func TestStatusPageAuth(t *testing.T) {
	const token = "s3cret-token-value"
	tests := []struct {
		name, path, accept, auth string
		wantCode                 int
		wantChallenge            string // prefix of WWW-Authenticate on a 401
	}{
		{"page no auth", "/", browserAccept, "", 401, "Basic"},
		{"page wrong password", "/", browserAccept, basicAuth("me", "wrong"), 401, "Basic"},
		{"page empty password", "/", browserAccept, basicAuth(token, ""), 401, "Basic"},
		{"page basic any user", "/", browserAccept, basicAuth("anyone", token), 200, ""},
		{"page basic empty user", "/", browserAccept, basicAuth("", token), 200, ""},
		{"page bearer", "/", browserAccept, "Bearer " + token, 200, ""},
		{"status html no auth", "/status", browserAccept, "", 401, "Basic"},
		{"status html basic", "/status", browserAccept, basicAuth("u", token), 200, ""},
		{"status json no auth", "/status", "application/json", "", 401, "Bearer"},
		{"status json basic", "/status", "application/json", basicAuth("u", token), 200, ""},
		{"status no accept wrong", "/status", "", basicAuth("u", "nope"), 401, "Bearer"},
		{"curl wildcard keeps bearer", "/status", "*/*", "", 401, "Bearer"},
		{"script needs auth", "/ui/app.js", "*/*", "", 401, "Bearer"},
		{"script basic", "/ui/app.js", "*/*", basicAuth("u", token), 200, ""},
		{"deployments basic", "/deployments", "application/json", basicAuth("u", token), 200, ""},
		{"launch basic", "/launch", "application/json", basicAuth("u", token), 405, ""}, // GET: authorized, then 405
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Accept": tt.accept}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			rec := do(New(Options{Manager: newFake(), Token: token}), "GET", tt.path, "", hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 401 {
				return
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tt.wantChallenge+" ") {
				t.Errorf("WWW-Authenticate %q, want %s", got, tt.wantChallenge)
			}
			// Both schemes always: a browser's fetch() answers the Basic one.
			if got := strings.Join(rec.Header().Values("WWW-Authenticate"), " | "); !strings.Contains(got, "Basic ") || !strings.Contains(got, "Bearer ") {
				t.Errorf("WWW-Authenticate %q, want both Basic and Bearer", got)
			}
			if e := decodeError(t, rec); e.Kind != KindUnauthorized {
				t.Errorf("kind %q, want %q", e.Kind, KindUnauthorized)
			}
		})
	}
}

// pageManager is a Manager whose status moves on at every call, as a busy
// proxy's does: poll n (from 1) reports counters grown by a fixed amount
// per poll over an uptime grown by 2 s, so the page's rates are exact.
type pageManager struct{ polls atomic.Int64 }

const (
	pageActiveID   = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	pageLaunchedID = "beef0000beef0000beef0000beef0000beef0000beef0000beef0000beef0000"
	pageConfigID   = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed"
	pageNextConfig = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de"
)

// The figures of poll n. Rates: 250 requests/s, 5 shed/s.
func pageRequests(n int64) uint64 { return uint64(1000 + 500*n) }
func pageShed(n int64) uint64     { return uint64(10 * n) }
func pageQueued(n int64) int      { return int(3 + n) }
func pageP99(n int64) float64     { return 120 + float64(n) }

// pageQueue is overloaded from the second poll on, for 2 s more at each.
func pageQueue(n int64) proxy.QueueState {
	q := proxy.QueueState{Discipline: proxy.DisciplineAdaptive, State: proxy.StateNormal, TimeoutMs: 3000, EffectiveTimeoutMs: 3000}
	if n >= 2 {
		q.State, q.EffectiveTimeoutMs, q.OverloadedSeconds, q.Overloads = proxy.StateOverloaded, 30, float64(2*(n-1)), 1
	}
	return q
}

func pageStatus(n int64) manager.Status {
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	active := manager.ContainerInfo{ID: pageActiveID, Name: "shop-5e1ec7ed", Image: "registry.local/shop:1.4.2",
		ConfigID: pageConfigID, Addr: "172.17.0.5:8080", Workers: 8, Started: started, Health: manager.HealthHealthy,
		InFlight: 7, Stats: &proxy.Snapshot{Requests: pageRequests(n) - 200}}
	next := manager.ContainerInfo{ID: pageLaunchedID, Name: "shop-0badc0de", Image: "registry.local/shop:1.5.0",
		ConfigID: pageNextConfig, Addr: "172.17.0.6:8080", Workers: 8, Started: started.Add(time.Hour), Health: manager.HealthStarting}
	return manager.Status{
		App: "shop", Healthy: true, Active: &active, Launched: []manager.ContainerInfo{next, active},
		Operation: "launch " + pageNextConfig[:12], Source: "dir:/srv/configs", Previous: pageNextConfig,
		Started: started, Uptime: time.Duration(n) * 2 * time.Second,
		Proxy: manager.ProxyStatus{
			Snapshot: proxy.Snapshot{Requests: pageRequests(n), Shed: pageShed(n), Failed: uint64(2 * n),
				ShedReasons: proxy.ShedReasons{QueueTimeout: uint64(4 * n), Overload: uint64(6 * n), NoApp: 3},
				BytesIn:     uint64(4096 * n), BytesOut: uint64(1 << 20 * n),
				Codes: map[int]uint64{200: uint64(900 + 450*n), 301: uint64(50 + 20*n), 404: uint64(40 + 20*n), 502: uint64(10 + 10*n)}},
			InFlight: 7, Queued: pageQueued(n), Queue: pageQueue(n),
			Latency: map[string]manager.Percentiles{
				"total": {P50: 10 + float64(n), P90: 40 + float64(n), P99: pageP99(n), Max: 900, N: pageRequests(n)},
			},
		},
	}
}

func (m *pageManager) Status() manager.Status { return pageStatus(m.polls.Add(1)) }

func (m *pageManager) History() []manager.Event {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []manager.Event{
		{Time: at.Add(3 * time.Minute), Action: "switch", Who: "alice", Container: pageActiveID, Result: "ok", Duration: 1500 * time.Millisecond},
		{Time: at.Add(2 * time.Minute), Action: "launch", Who: "alice", ConfigID: pageConfigID, Container: pageActiveID, Result: "ok", Duration: 12 * time.Second},
		{Time: at.Add(time.Minute), Action: "launch", Who: "bob", ConfigID: pageNextConfig, Result: "error", Error: "container did not become healthy: GET /up: 500"},
	}
}

// pageSeriesPoints is how many 5 s points /series gives the page: the 10
// minutes before it opened, at 42 requests per second.
const pageSeriesPoints = 120

func (m *pageManager) Series() []manager.Point {
	now := time.Now()
	var pts []manager.Point
	for i := range pageSeriesPoints {
		pts = append(pts, manager.Point{At: now.Add(time.Duration(i-pageSeriesPoints) * 5 * time.Second), Seconds: 5,
			Requests: 210, Codes: map[int]uint64{200: 200, 503: 10}, Shed: 10,
			Latency: proxy.Latency{P50: 5, P90: 9, P99: 30, Max: 40, Count: 210}})
	}
	return pts
}

func (m *pageManager) Discard(context.Context, string, string) (manager.ContainerInfo, error) {
	return manager.ContainerInfo{}, errors.New("not in this test")
}

func (m *pageManager) Cancel(context.Context, string, string) (string, error) {
	return "", errors.New("not in this test")
}

func (m *pageManager) Launch(context.Context, string, string) (manager.ContainerInfo, error) {
	return manager.ContainerInfo{}, errors.New("not in this test")
}

func (m *pageManager) Switch(context.Context, string, string) (manager.SwitchResult, error) {
	return manager.SwitchResult{}, errors.New("not in this test")
}

func (m *pageManager) Rollback(context.Context, string) (manager.SwitchResult, error) {
	return manager.SwitchResult{}, errors.New("not in this test")
}

// chromiumTimeout bounds one headless Chromium run; the page itself gets 8 s
// of virtual time.
const chromiumTimeout = 90 * time.Second

// runChromium runs headless Chromium on url with extra flags and returns
// what it printed on stdout.
func runChromium(t *testing.T, bin, url string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	args := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=8000"}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second // helpers that keep the pipes open
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v (timeout %v)\nstderr:\n%s", strings.Join(flags, " "), err, chromiumTimeout, tail(stderr.String(), 3000))
	}
	return stdout.Bytes()
}

// domElement finds the first element whose opening tag contains attr (e.g.
// `id="rps"`) in a serialized DOM and returns its data-value attribute and
// its text (up to the next tag).
func domElement(t *testing.T, dom, attr string) (value, text string) {
	t.Helper()
	m := regexp.MustCompile(`<[a-z]+\b([^>]*\b` + regexp.QuoteMeta(attr) + `[^>]*)>([^<]*)`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element with %s in the page's DOM", attr)
	}
	if v := regexp.MustCompile(`\bdata-value="([^"]*)"`).FindStringSubmatch(m[1]); v != nil {
		value = v[1]
	}
	return value, strings.TrimSpace(m[2])
}

// domNumber is domElement's data-value as a number.
func domNumber(t *testing.T, dom, attr string) float64 {
	t.Helper()
	v, text := domElement(t, dom, attr)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("element %s: data-value %q (text %q) is not a number", attr, v, text)
	}
	return f
}

// A real browser loads the page from a real server with a token, polls the
// API for 8 s of virtual time, and the numbers in its DOM are the ones the
// API reported.
func TestStatusPageInBrowser(t *testing.T) {
	bin, err := testservers.FindBinary("chromium")
	if err != nil {
		testservers.Missing(t, "chromium (Debian package chromium)", err)
	}
	const token = "page-test-token"
	m := &pageManager{}
	srv := httptest.NewServer(New(Options{Manager: m, Token: token, Version: "v9.9.9-page"}))
	defer srv.Close()
	url := "http://viewer:" + token + "@" + srv.Listener.Addr().String() + "/"

	dom := string(runChromium(t, bin, url, "--dump-dom"))
	polls := m.polls.Load()
	if !strings.Contains(dom, `id="app" class="app">shop<`) {
		t.Fatalf("the page did not load the status (a 401?); DOM:\n%s", tail(dom, 4000))
	}
	if strings.Contains(dom, "Cannot read the API") {
		t.Errorf("the page shows an API error:\n%s", tail(dom, 4000))
	}

	// The requests total says which poll the page shows last; every other
	// figure must be that poll's.
	requests := domNumber(t, dom, `data-field="requests"`)
	n := int64(requests-1000) / 500
	if float64(pageRequests(n)) != requests || n < 2 || n > polls {
		t.Fatalf("requests %v is not the figure of a poll the page made after its first (%d polls)", requests, polls)
	}
	t.Logf("the page polled /status %d times and shows poll %d", polls, n)
	checks := []struct {
		attr string
		want float64
	}{
		{`id="queued"`, float64(pageQueued(n))},
		{`id="p99"`, pageP99(n)},
		{`id="p50"`, 10 + float64(n)},
		{`id="rps"`, 250},
		{`id="shed"`, 5},
		{`id="inflight"`, 7},
		{`data-field="shed"`, float64(pageShed(n))},
		{`data-field="codes-2xx"`, float64(900 + 450*n)},
		{`data-field="codes-5xx"`, float64(10 + 10*n)},
		{`id="active-requests"`, float64(pageRequests(n) - 200)},
		{`id="queue-timeout"`, 30},
		{`data-field="shed-queue_timeout"`, float64(4 * n)},
		{`data-field="shed-overload"`, float64(6 * n)},
		{`data-field="shed-no_app"`, 3},
		{`data-field="overloaded"`, float64(2 * (n - 1))},
	}
	for _, c := range checks {
		if got := domNumber(t, dom, c.attr); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s shows %v, want %v (poll %d)", c.attr, got, c.want, n)
		}
	}
	if _, text := domElement(t, dom, `id="rps"`); text != "250" {
		t.Errorf("#rps text %q, want 250", text)
	}
	if v, text := domElement(t, dom, `id="active-id"`); text != pageActiveID[:12] || v != pageActiveID {
		t.Errorf("#active-id %q (data-value %q), want %s", text, v, pageActiveID[:12])
	}
	if _, text := domElement(t, dom, `id="queue-state"`); text != "overloaded" {
		t.Errorf("#queue-state %q, want overloaded", text)
	}
	if _, text := domElement(t, dom, `id="active-health"`); text != "healthy" {
		t.Errorf("#active-health %q, want healthy", text)
	}
	if _, text := domElement(t, dom, `id="operation"`); text != "launch "+pageNextConfig[:12] {
		t.Errorf("#operation %q", text)
	}
	for _, want := range []string{
		`<tr data-id="` + pageLaunchedID + `">`, // the launched container, not the active one
		`<tr data-action="launch" data-result="error">`,
		`<tr data-action="switch" data-result="ok">`,
		`>` + pageConfigID[:12] + `</code>`,
		"container did not become healthy: GET /up: 500",
		`class="line s-rps" d="M`,
		`class="line s-p99" d="M`,
		`class="area s-2xx" d="M`,
		`<rect class="band-over" x="`, // the overloaded polls shaded on the latency chart
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %s", want)
		}
	}
	if strings.Contains(dom, `<tr data-id="`+pageActiveID+`">`) {
		t.Errorf("the active container is listed as launched-not-active too")
	}
	// The charts start with the server's last 15 minutes (/series), except
	// the gauges it does not sample.
	for _, chart := range []string{"rps", "latency", "queued", "shed", "codes"} {
		v := regexp.MustCompile(`id="chart-` + chart + `"[^>]*data-points="(\d+)"`).FindStringSubmatch(dom)
		if v == nil || v[1] == "0" {
			t.Errorf("chart %s has no data points (%v)", chart, v)
			continue
		}
		n, _ := strconv.Atoi(v[1])
		if seeded := n >= pageSeriesPoints; seeded != (chart != "queued") {
			t.Errorf("chart %s has %d points; want the %d of /series on every chart but queue depth", chart, n, pageSeriesPoints)
		}
	}

	// A screenshot for people (and CI artifacts).
	dir := filepath.Join(moduleRoot(t), "e2e", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	os.Remove(shot)
	runChromium(t, bin, url, "--screenshot="+shot, "--window-size=1280,900")
	b, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 20_000 {
		t.Fatalf("screenshot %s: %d bytes, err %v", shot, len(b), err)
	}
	t.Logf("screenshot: %s", shot)
}

// moduleRoot is the directory holding go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("…%s", s[len(s)-n:])
}
