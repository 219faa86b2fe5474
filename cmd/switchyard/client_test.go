package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/proxy"
)

const (
	cfgID    = "3fa4c2e1b5d6a7980123456789abcdef0123456789abcdef0123456789abcdef"
	newCtrID = "1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b"
	oldCtrID = "9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e"
	token    = "test-token"
)

// fakeManager answers the API with canned results and records calls; the
// CLI's tests need the real API handler, not Docker.
type fakeManager struct {
	mu        sync.Mutex
	calls     []string
	launchErr error
	switchErr error
	cancelErr error
	delay     time.Duration
	status    manager.Status
	history   []manager.Event
}

func (f *fakeManager) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeManager) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var (
	newInfo = manager.ContainerInfo{ID: newCtrID, Name: "app-3fa4c2e1", Image: "registry.local/app:42", ConfigID: cfgID,
		Addr: "172.17.0.3:8080", Workers: 4, Health: manager.HealthHealthy}
	oldInfo = manager.ContainerInfo{ID: oldCtrID, Image: "registry.local/app:41", ConfigID: strings.Repeat("e", 64),
		Health: manager.HealthHealthy}
)

func (f *fakeManager) Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error) {
	f.record("launch " + id + " " + who)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return manager.ContainerInfo{}, ctx.Err()
		}
	}
	return newInfo, f.launchErr
}

func (f *fakeManager) Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error) {
	f.record("switch " + ref + " " + who)
	return manager.SwitchResult{Active: newInfo, Previous: &oldInfo, Drained: true, DrainFor: 1200 * time.Millisecond}, f.switchErr
}

func (f *fakeManager) Rollback(ctx context.Context, who string) (manager.SwitchResult, error) {
	f.record("rollback " + who)
	return manager.SwitchResult{Active: oldInfo, Previous: &newInfo, Drained: false, DrainFor: 30 * time.Second}, nil
}

func (f *fakeManager) Discard(ctx context.Context, ref, who string) (manager.ContainerInfo, error) {
	f.record("discard " + ref + " " + who)
	return newInfo, nil
}

func (f *fakeManager) Cancel(ctx context.Context, op, who string) (string, error) {
	f.record("cancel " + op + " " + who)
	if f.cancelErr != nil {
		return "", f.cancelErr
	}
	return manager.LaunchOperation(cfgID), nil
}

func (f *fakeManager) Status() manager.Status   { return f.status }
func (f *fakeManager) History() []manager.Event { return f.history }
func (f *fakeManager) Series() []manager.Point  { return nil }

// testAPI serves the real API handler over a fake manager and remembers the
// last request's headers.
type testAPI struct {
	*httptest.Server
	m    *fakeManager
	mu   sync.Mutex
	last *http.Request
}

func (a *testAPI) lastRequest() *http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	// The client reads these; the developer's own must not leak in.
	for _, k := range []string{"SWITCHYARD_API", "SWITCHYARD_API_TOKEN", "SWITCHYARD_CLIENT_TIMEOUT", "SWITCHYARD_USER"} {
		t.Setenv(k, "")
	}
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	active := newInfo
	active.Started = started.Add(time.Hour)
	active.InFlight = 3
	f := &fakeManager{
		status: manager.Status{
			App: "shop", Healthy: true, Active: &active, Launched: []manager.ContainerInfo{active},
			Source: "s3://configs/shop", Started: started, Uptime: 5*time.Hour + 2*time.Minute,
			Previous: strings.Repeat("e", 64),
			Proxy: manager.ProxyStatus{
				Snapshot: proxy.Snapshot{Requests: 12345, Shed: 12, Failed: 3, Codes: map[int]uint64{200: 12000, 404: 330, 503: 12}},
				InFlight: 4, Queued: 2,
				Latency: map[string]manager.Percentiles{"total": {P50: 3.1, P90: 8, P99: 20.5, Max: 90, N: 12333}},
			},
		},
		history: []manager.Event{
			{Time: started.Add(2 * time.Hour), Action: "switch", Who: "alice", Container: newCtrID, ConfigID: cfgID, Result: "ok", Duration: 1200 * time.Millisecond},
			{Time: started.Add(time.Hour), Action: "launch", Who: "ci", ConfigID: strings.Repeat("b", 64), Result: "error", Error: "container did not become healthy\nlog line", Duration: time.Minute},
		},
	}
	a := &testAPI{m: f}
	h := api.New(api.Options{Manager: f, Token: token, Version: "v1.0.0"})
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.last = r.Clone(context.Background())
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

// runCLI runs switchyard with args and returns exit code, stdout, stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// auth are the flags every test client passes.
func (a *testAPI) auth() []string {
	return []string{"--api", a.URL, "--api-token", token, "--user", "alice"}
}

func (a *testAPI) cli(cmd string, args ...string) (int, string, string) {
	return runCLI(append(append([]string{cmd}, a.auth()...), args...)...)
}

func TestClientCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantCalls  []string
		wantOut    []string // substrings of stdout
		wantErrOut []string // substrings of stderr
	}{
		{"launch", []string{"launch", cfgID}, 0, []string{"launch " + cfgID + " alice"},
			[]string{"launched 1a2b3c4d5e6f  image registry.local/app:42  config 3fa4c2e1  healthy  at 172.17.0.3:8080"},
			[]string{"launching 3fa4c2e1… (config), this pulls the image and waits for health checks", "switchyard switch 1a2b3c4d5e6f"}},
		{"launch prefix", []string{"launch", "3fa4c2e1"}, 0, []string{"launch 3fa4c2e1 alice"}, nil, []string{"launching 3fa4c2e1 (config)"}},
		{"switch", []string{"switch", "1a2b3c4d5e6f"}, 0, []string{"switch 1a2b3c4d5e6f alice"},
			[]string{"active   1a2b3c4d5e6f  image registry.local/app:42", "previous 9f8e7d6c5b4a stopped after its requests finished (drained in 1.2s)"},
			[]string{"switching to 1a2b3c4d5e6f, then draining"}},
		{"deploy", []string{"deploy", cfgID}, 0, []string{"launch " + cfgID + " alice", "switch " + newCtrID + " alice"},
			[]string{"launched 1a2b3c4d5e6f", "active   1a2b3c4d5e6f", "previous 9f8e7d6c5b4a stopped"},
			[]string{"deploy step 1/2: launching 3fa4c2e1…", "deploy step 2/2: switching to 1a2b3c4d5e6f…"}},
		{"rollback", []string{"rollback"}, 0, []string{"rollback alice"},
			[]string{"active   9f8e7d6c5b4a  image registry.local/app:41  config eeeeeeee", "previous 1a2b3c4d5e6f stopped when the drain timeout passed (30s)"},
			[]string{"rolling back"}},
		{"status", []string{"status"}, 0, nil,
			[]string{"app       shop (switchyard v1.0.0, up 5h02m)", "health    healthy",
				"active    1a2b3c4d5e6f  image registry.local/app:42  config 3fa4c2e1  healthy  up 4h02m  in flight 3",
				"requests  12345  in flight 4  queued 2  shed 12  failed 3", "codes     200: 12000  404: 330  503: 12",
				"total ms  p50 3.1  p90 8.0  p99 20.5  max 90.0  (12333)", "previous  config eeeeeeee", "configs   s3://configs/shop",
				"launched containers (1):", "* 1a2b3c4d5e6f  registry.local/app:42  3fa4c2e1  healthy  4h02m  3\n"}, nil},
		{"history", []string{"history"}, 0, nil,
			[]string{"TIME", "ACTION", "switch  ok      3fa4c2e1  1a2b3c4d5e6f  alice  1.2s",
				"launch  error   bbbbbbbb  -             ci     1m0s  container did not become healthy\n"}, nil},
		{"flags after the argument", []string{"launch", "3fa4c2e1", "--user", "bob"}, 0, []string{"launch 3fa4c2e1 bob"}, nil, nil},
		{"discard", []string{"discard", "1a2b3c4d5e6f"}, 0, []string{"discard 1a2b3c4d5e6f alice"},
			[]string{"removed  1a2b3c4d5e6f  image registry.local/app:42"}, nil},
		{"cancel", []string{"cancel"}, 0, []string{"cancel  alice"}, []string{"cancelled launch 3fa4c2e1b5d6"}, nil},
		{"cancel one operation", []string{"cancel", "launch", "3fa4c2e1b5d6"}, 0, []string{"cancel launch 3fa4c2e1b5d6 alice"}, []string{"cancelled launch 3fa4c2e1b5d6"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			code, out, errOut := a.cli(tt.args[0], tt.args[1:]...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			if got := strings.Join(a.m.Calls(), "; "); got != strings.Join(tt.wantCalls, "; ") {
				t.Errorf("manager calls %q, want %q", got, tt.wantCalls)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantErrOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			r := a.lastRequest()
			if got := r.Header.Get("Authorization"); got != "Bearer "+token {
				t.Errorf("Authorization %q, want the token", got)
			}
			if got := r.Header.Get(api.UserHeader); got != "alice" && got != "bob" {
				t.Errorf("%s %q", api.UserHeader, got)
			}
		})
	}
}

func TestClientJSON(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantKey  string // a top-level key of the printed JSON
	}{
		{[]string{"launch", "--json", cfgID}, 0, "config_id"},
		{[]string{"switch", "1a2b3c4d5e6f", "--json"}, 0, "drained"},
		{[]string{"deploy", "--json=true", cfgID}, 0, "previous"},
		{[]string{"rollback", "-json"}, 0, "active"},
		{[]string{"status", "--json"}, 0, "proxy"},
		{[]string{"history", "--json"}, 0, "deployments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := newTestAPI(t)
			code, out, errOut := a.cli(tt.args[0], tt.args[1:]...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
			}
			if _, ok := m[tt.wantKey]; !ok {
				t.Errorf("JSON lacks %q:\n%s", tt.wantKey, out)
			}
		})
	}
}

// A dead active container shows no uptime, and the restarts are named.
func TestClientStatusRestart(t *testing.T) {
	a := newTestAPI(t)
	a.m.status.Healthy = false
	a.m.status.Active.Health = manager.HealthDead
	a.m.status.Restart = &manager.RestartStatus{Container: newCtrID, State: manager.RestartGaveUp, Attempts: 3, MaxAttempts: 3, LastError: "exited with code 3"}
	code, out, _ := a.cli("status")
	if code != 1 || !strings.Contains(out, "dead  up -") || !strings.Contains(out, "restart   GAVE UP after 3 tries (a crash loop): deploy or roll back; last: exited with code 3") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestClientStatusUnhealthy(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", asJSON), func(t *testing.T) {
			a := newTestAPI(t)
			a.m.status.Healthy = false
			a.m.status.Active.Health = manager.HealthUnhealthy
			args := []string{}
			if asJSON {
				args = append(args, "--json")
			}
			code, out, errOut := a.cli("status", args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1 when unhealthy", code)
			}
			want := "NOT HEALTHY: active container is unhealthy"
			if asJSON {
				want = `"healthy": false`
			}
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
			if errOut != "switchyard: status: not healthy (HTTP 503)\n" {
				t.Errorf("stderr %q", errOut)
			}
		})
	}
}

func TestClientAPIErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		launchErr  error
		switchErr  error
		token      string
		wantErrOut string // exact stderr, or its last lines
		wantCalls  int
	}{
		{"unhealthy with log lines", []string{"launch", cfgID},
			fmt.Errorf("container 1a2b3c4d5e6f: %w after 2m0s\nlast log lines:\nboom", manager.ErrUnhealthy), nil, token,
			"launching 3fa4c2e1… (config), this pulls the image and waits for health checks\n" +
				"switchyard: launch 3fa4c2e1: container 1a2b3c4d5e6f: container did not become healthy after 2m0s (HTTP 422 unhealthy)\n" +
				"  last log lines:\n  boom\n", 1},
		{"busy", []string{"switch", "1a2b3c4d5e6f"}, nil, fmt.Errorf("%w: launch 3fa4c2e1 is running", manager.ErrBusy), token,
			"switchyard: switch 1a2b3c4d5e6f: another operation is running: launch 3fa4c2e1 is running (HTTP 409 busy)\n", 1},
		{"deploy launch fails", []string{"deploy", cfgID}, fmt.Errorf("%w: no", manager.ErrDocker), nil, token,
			"switchyard: launch 3fa4c2e1: docker: no (HTTP 503 docker_unavailable)\nnothing was switched: the active container keeps serving\n", 1},
		{"deploy switch fails", []string{"deploy", cfgID}, nil, fmt.Errorf("%w: gone", manager.ErrUnknownContainer), token,
			"switchyard: switch 1a2b3c4d5e6f: no such launched container: gone (HTTP 404 unknown_container)\n" +
				"container 1a2b3c4d5e6f was launched but is not active; see switchyard status, retry with: switchyard switch 1a2b3c4d5e6f, or remove it with switchyard discard 1a2b3c4d5e6f\n", 2},
		{"wrong token", []string{"rollback"}, nil, nil, "wrong",
			"switchyard: rollback: wrong token: send \"Authorization: Bearer <token>\" with the API token (switchyard --api-token or SWITCHYARD_API_TOKEN); a browser logs in with any user name and the token as the password (HTTP 401 unauthorized)\n", 0},
		{"no token", []string{"history"}, nil, nil, "",
			"switchyard: history: no token: send \"Authorization: Bearer <token>\" with the API token (switchyard --api-token or SWITCHYARD_API_TOKEN); a browser logs in with any user name and the token as the password (HTTP 401 unauthorized)\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			a.m.launchErr, a.m.switchErr = tt.launchErr, tt.switchErr
			args := append([]string{tt.args[0], "--api", a.URL, "--api-token", tt.token}, tt.args[1:]...)
			code, out, errOut := runCLI(args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.HasSuffix(errOut, tt.wantErrOut) {
				t.Errorf("stderr:\n%s\nwant it to end with:\n%s", errOut, tt.wantErrOut)
			}
			if strings.Contains(out, "active") {
				t.Errorf("stdout shows a switch that failed:\n%s", out)
			}
			if n := len(a.m.Calls()); n != tt.wantCalls {
				t.Errorf("%d manager calls, want %d: %q", n, tt.wantCalls, a.m.Calls())
			}
		})
	}
}

func TestClientUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"launch without id", []string{"launch"}, "launch: want 1 argument(s) ID"},
		{"launch two ids", []string{"launch", "a", "b"}, "want 1 argument(s)"},
		{"rollback with an argument", []string{"rollback", "x"}, "rollback: want 0 argument(s)"},
		{"unknown flag", []string{"status", "--nope", "1"}, "unknown flag --nope"},
		{"bad timeout", []string{"status", "--timeout", "soon"}, `"soon" is not a duration`},
		{"bad api scheme", []string{"status", "--api", "ftp://host:21"}, `--api "ftp://host:21": want http://host:port`},
		{"user too long", []string{"rollback", "--user", strings.Repeat("u", 101)}, "--user"},
		{"history limit", []string{"history", "--limit", "0"}, "must be at least 1"},
		{"limit only on history", []string{"status", "--limit", "3"}, "unknown flag --limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newTestAPI(t) // clears the environment
			code, out, errOut := runCLI(tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut)
			}
			if !strings.HasPrefix(errOut, "switchyard: ") || !strings.Contains(errOut, tt.wantErr) || out != "" {
				t.Errorf("stderr %q, want it to contain %q (stdout %q)", errOut, tt.wantErr, out)
			}
		})
	}
}

func TestClientHelp(t *testing.T) {
	for cmd := range clientCommands {
		code, out, _ := runCLI(cmd, "--help")
		if code != 0 || !strings.Contains(out, "Usage: switchyard "+cmd) || !strings.Contains(out, "SWITCHYARD_API_TOKEN") {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
	}
	code, out, _ := runCLI("help")
	for cmd := range clientCommands {
		if code != 0 || !strings.Contains(out, "switchyard "+cmd) {
			t.Errorf("help does not list %s:\n%s", cmd, out)
		}
	}
}

func TestClientEnvironment(t *testing.T) {
	a := newTestAPI(t)
	t.Setenv("SWITCHYARD_API", strings.TrimPrefix(a.URL, "http://")) // host:port, no scheme
	t.Setenv("SWITCHYARD_API_TOKEN", token)
	t.Setenv("SWITCHYARD_USER", "deploy-bot")
	code, _, errOut := runCLI("launch", "3fa4c2e1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := a.m.Calls(); len(got) != 1 || got[0] != "launch 3fa4c2e1 deploy-bot" {
		t.Errorf("calls %q", got)
	}
	// A flag beats the environment.
	code, _, _ = runCLI("rollback", "--user", "carol")
	if got := a.m.Calls(); code != 0 || got[len(got)-1] != "rollback carol" {
		t.Errorf("exit %d, calls %q", code, got)
	}
}

func TestClientDefaultUser(t *testing.T) {
	a := newTestAPI(t)
	t.Setenv("USER", "dave")
	host, _ := os.Hostname()
	code, _, errOut := runCLI("rollback", "--api", a.URL, "--api-token", token)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "dave@" + host
	want = string([]rune(want)[:min(len([]rune(want)), api.MaxUserLen)])
	if got := a.lastRequest().Header.Get(api.UserHeader); got != want {
		t.Errorf("%s %q, want %q", api.UserHeader, got, want)
	}
}

func TestClientHistoryLimit(t *testing.T) {
	a := newTestAPI(t)
	if code, _, errOut := a.cli("history", "--limit", "5"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := a.lastRequest().URL.RawQuery; got != "limit=5" {
		t.Errorf("query %q, want limit=5", got)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	newTestAPI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	code, _, errOut := runCLI("status", "--api", addr)
	if code != exitUnknown {
		t.Fatalf("exit %d, want %d: no answer is not the same as unhealthy", code, exitUnknown)
	}
	want := "switchyard: status: cannot reach the switchyard API at http://" + addr + ": connection refused"
	if !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr %q, want it to start with %q", errOut, want)
	}
}

func TestClientTimeout(t *testing.T) {
	a := newTestAPI(t)
	a.m.delay = 5 * time.Second
	start := time.Now()
	code, _, errOut := a.cli("launch", "--timeout", "200ms", cfgID)
	if code != 1 || !strings.Contains(errOut, "no answer from the API at "+a.URL+" within 200ms") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %s: the timeout did not apply", time.Since(start))
	}
}

func TestClientNotTheAPI(t *testing.T) {
	newTestAPI(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
	}))
	defer srv.Close()
	code, _, errOut := runCLI("history", "--api", srv.URL)
	if code != 1 || !strings.Contains(errOut, `unexpected answer from `+srv.URL+`/deployments?limit=20: "<html>bad gateway</html>" (HTTP 502 Bad Gateway)`) {
		t.Errorf("exit %d, stderr %s", code, errOut)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "-"},
		{850 * time.Millisecond, "850ms"},
		{1234 * time.Millisecond, "1.2s"},
		{42*time.Second + 400*time.Millisecond, "42s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{5*time.Hour + 2*time.Minute + 20*time.Second, "5h02m"},
		{76 * time.Hour, "3d04h"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.in); got != tt.want {
			t.Errorf("humanDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestArgOrder(t *testing.T) {
	s := clientSettings("history", &clientConfig{})
	tests := []struct{ in, want string }{
		{"ID", "-- ID"},
		{"ID --api h:1 --limit=3", "--api h:1 --limit=3 -- ID"},
		{"--user bob ID", "--user bob -- ID"},
		{"ID -- --not-a-flag", "-- ID --not-a-flag"},
		{"--unknown ID", "--unknown -- ID"},
	}
	for _, tt := range tests {
		if got := strings.Join(orderArgs(strings.Fields(tt.in), s), " "); got != tt.want {
			t.Errorf("orderArgs(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// A boolean setting stands alone: it takes no value from the next
	// argument, and needs no pass of its own before parsing.
	parse := func(args ...string) ([]string, bool) {
		c := &clientConfig{}
		s := clientSettings("history", c)
		rest, err := s.parse(orderArgs(args, s), func(string) string { return "" })
		if err != nil {
			t.Fatalf("parse %q: %v", args, err)
		}
		return rest, c.json
	}
	if got := strings.Join(orderArgs(strings.Fields("ID --json --user bob"), s), " "); got != "--json --user bob -- ID" {
		t.Errorf("orderArgs(ID --json --user bob) = %s", got)
	}
	rest, on := parse("a", "--json", "b", "--", "--json")
	if !on || strings.Join(rest, " ") != "a b --json" {
		t.Errorf("--json among positional arguments: %q, %v", rest, on)
	}
	if _, on := parse("--json", "--json=false"); on {
		t.Error("--json=false did not win as the last")
	}
}

// status exits 1 for an unhealthy app and 3 when the API gave no answer
// about it: a script tells them apart.
func TestClientStatusExitCodes(t *testing.T) {
	a := newTestAPI(t)
	if code, _, _ := a.cli("status"); code != 0 {
		t.Fatalf("healthy: exit %d", code)
	}
	a.m.status.Healthy = false
	if code, _, _ := a.cli("status"); code != 1 {
		t.Fatalf("unhealthy: exit %d, want 1", code)
	}
	code, _, errOut := runCLI("status", "--api", a.URL, "--api-token", "wrong")
	if code != exitUnknown || !strings.Contains(errOut, "wrong token") {
		t.Fatalf("refused: exit %d, want %d; stderr %s", code, exitUnknown, errOut)
	}
}

// runInterrupted runs the CLI and interrupts it (as Ctrl-C does) after d.
func runInterrupted(d time.Duration, args ...string) (int, string, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(d, cancel)
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Ctrl-C during a launch cancels it on the server and says that nothing is
// left; during deploy's switch it says the switch goes on.
func TestClientInterrupt(t *testing.T) {
	a := newTestAPI(t)
	a.m.delay = 10 * time.Second
	for _, cmd := range []string{"launch", "deploy"} {
		code, _, errOut := runInterrupted(200*time.Millisecond, append(append([]string{cmd}, a.auth()...), cfgID)...)
		if code != exitInterrupted {
			t.Fatalf("%s: exit %d, want %d; stderr %s", cmd, code, exitInterrupted, errOut)
		}
		if !strings.Contains(errOut, "the launch of 3fa4c2e1 was cancelled and its container removed; nothing was switched") {
			t.Errorf("%s: stderr %s", cmd, errOut)
		}
		if c := a.m.Calls(); c[len(c)-1] != "cancel "+manager.LaunchOperation(cfgID)+" alice" {
			t.Errorf("%s: calls %q, want the launch cancelled by name", cmd, c)
		}
	}
	a.m.cancelErr = fmt.Errorf("%w: launch 3fa4c2e1b5d6 is not running", manager.ErrNoOperation)
	code, _, errOut := runInterrupted(200*time.Millisecond, append(append([]string{"launch"}, a.auth()...), cfgID)...)
	if code != exitInterrupted || !strings.Contains(errOut, "was cancelled and its container removed") {
		t.Errorf("launch already ended: exit %d, stderr %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, _ := runCLI(arg)
		if code != 0 || !strings.HasPrefix(out, "switchyard "+version+" (go") {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}
