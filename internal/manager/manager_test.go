package manager

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/proxy"
)

type env struct {
	t       *testing.T
	dir     string // configs
	state   string
	docker  *fakeDocker
	proxy   *proxy.Proxy
	url     string
	m       *Manager
	ctx     context.Context
	configs map[string]string // version → config id
}

func cfgJSON(image, version string, extra string) string {
	return `{"image":"` + image + `","port":8080,"env":{"VERSION":"` + version + `"` + extra + `},` +
		`"workers":2,"health":{"interval":"100ms","timeout":"1s","start_timeout":"1s"},"stop":{"timeout":"1s","drain_timeout":"2s"}}`
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), state: t.TempDir(), docker: newFakeDocker("app:v1", "app:v2"), configs: map[string]string{}}
	t.Cleanup(e.docker.closeAll)
	e.configs["v1"] = e.put(cfgJSON("app:v1", "v1", ""))
	e.configs["v2"] = e.put(cfgJSON("app:v2", "v2", ""))
	p, err := proxy.New(proxy.Config{QueueTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = p
	ln, err := proxy.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, proxy.ServerConfig{ShutdownTimeout: 2 * time.Second}) }()
	t.Cleanup(func() { cancel(); <-done })
	e.url = "http://" + ln.Addr().String()
	e.m = e.newManager()
	return e
}

func (e *env) newManager(opts ...func(*Options)) *Manager {
	o := Options{App: "shop", Source: deployconfig.NewDir(e.dir, deployconfig.LayoutNative), Docker: e.docker,
		Proxy: e.proxy, StateDir: e.state, Logger: zerolog.Nop(), RetryColdStart: 50 * time.Millisecond,
		RestartBackoff: 20 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	m, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(m.Close)
	return m
}

func (e *env) put(body string) string {
	id := deployconfig.ID([]byte(body))
	if err := os.WriteFile(filepath.Join(e.dir, id+".json"), []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) get(path string) (int, string) {
	resp, err := http.Get(e.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// deploy launches and switches to version v.
func (e *env) deploy(v string) SwitchResult {
	e.t.Helper()
	info, err := e.m.Launch(context.Background(), e.configs[v], "test")
	if err != nil {
		e.t.Fatalf("launch %s: %v", v, err)
	}
	res, err := e.m.Switch(context.Background(), info.ID, "test")
	if err != nil {
		e.t.Fatalf("switch to %s: %v", v, err)
	}
	return res
}

func TestLaunchSwitchRollback(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.get("/"); code != 503 {
		t.Fatalf("before any deploy: %d, want 503", code)
	}
	info, err := e.m.Launch(context.Background(), e.configs["v1"][:12], "ci")
	if err != nil {
		t.Fatal(err)
	}
	if info.Health != HealthHealthy || info.ConfigID != e.configs["v1"] || info.Addr == "" {
		t.Fatalf("launched: %+v", info)
	}
	c, _ := e.docker.get(info.ID)
	if c.spec.Labels[LabelApp] != "shop" || c.spec.Labels[LabelConfig] != e.configs["v1"] || c.spec.StopSignal != "SIGTERM" {
		t.Fatalf("container spec: %+v", c.spec)
	}
	if st := e.m.Status(); st.Active != nil || len(st.Launched) != 1 || st.Healthy {
		t.Fatalf("status after launch: %+v", st)
	}
	if _, err := e.m.Switch(context.Background(), info.ID[:10], "ci"); err != nil {
		t.Fatal(err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after switch to v1: %d %q", code, body)
	}

	res := e.deploy("v2")
	if code, body := e.get("/"); code != 200 || body != "v2" {
		t.Fatalf("after switch to v2: %d %q", code, body)
	}
	if res.Previous == nil || res.Previous.ID != info.ID || !res.Drained {
		t.Fatalf("switch result: %+v", res)
	}
	if got := e.docker.running(); len(got) != 1 || got[0] != res.Active.ID {
		t.Fatalf("running containers %v, want only v2", got)
	}
	st := e.m.Status()
	if !st.Healthy || st.Active.ConfigID != e.configs["v2"] || st.Previous != e.configs["v1"] {
		t.Fatalf("status: %+v", st)
	}
	// Old and new versions can be compared right after the switch.
	if st.Replaced == nil || st.Replaced.ID != info.ID || st.Replaced.Windows == nil || st.Replaced.Windows.All.Requests != 1 {
		t.Fatalf("replaced container in the status: %+v", st.Replaced)
	}
	if st.Active.Windows == nil || st.Active.Windows.All.Requests != 1 || st.Active.Windows.All.Codes[200] != 1 {
		t.Fatalf("active container windows: %+v", st.Active.Windows)
	}
	if st.Proxy.Windows.All.Requests != 3 || st.Proxy.Windows.All.Codes[503] != 1 {
		t.Fatalf("proxy windows: %+v", st.Proxy.Windows.All)
	}

	rb, err := e.m.Rollback(context.Background(), "ops")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" || rb.Active.ConfigID != e.configs["v1"] {
		t.Fatalf("after rollback: %d %q %+v", code, body, rb)
	}
	if got := e.docker.running(); len(got) != 1 {
		t.Fatalf("running after rollback: %v", got)
	}
	h := e.m.History()
	// A switch is recorded when traffic moves, the retirement of the
	// container it replaced when that is gone.
	var actions []Action
	for _, ev := range h {
		actions = append(actions, ev.Action)
	}
	if want := []Action{"retire", "rollback", "retire", "switch", "launch", "switch", "launch"}; !slices.Equal(actions, want) || h[1].Who != "ops" {
		t.Fatalf("history: %v, want %v: %+v", actions, want, h)
	}
	// The state file names the active container and the rollback target.
	var s state
	b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	if err := json.Unmarshal(b, &s); err != nil || s.Active != rb.Active.ID || s.Previous != e.configs["v2"] || s.Config == nil {
		t.Fatalf("state file: %s (%v)", b, err)
	}
}

// Every bad input fails with its own error and leaves v1 serving, untouched.
func TestFailedLaunchLeavesActiveUntouched(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	active := e.m.Status().Active.ID

	tampered := e.put(cfgJSON("app:v2", "v2", `,"X":"1"`))
	os.WriteFile(filepath.Join(e.dir, tampered+".json"), []byte(cfgJSON("app:v2", "evil", "")), 0o644)
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"missing object", strings.Repeat("ab", 32), deployconfig.ErrNotFound},
		{"tampered config", tampered, deployconfig.ErrHashMismatch},
		{"unknown field", e.put(`{"image":"app:v2","port":8080,"colour":"blue"}`), deployconfig.ErrInvalid},
		{"missing port", e.put(`{"image":"app:v2"}`), deployconfig.ErrInvalid},
		{"privileged", e.put(`{"image":"app:v2","port":8080,"privileged":true}`), deployconfig.ErrPolicy},
		{"host network", e.put(`{"image":"app:v2","port":8080,"network_mode":"host"}`), deployconfig.ErrPolicy},
		{"image does not exist", e.put(cfgJSON("app:nope", "v3", "")), dockerctl.ErrImagePull},
		{"never healthy", e.put(cfgJSON("app:v2", "v3", `,"NEVER_HEALTHY":"1"`)), ErrUnhealthy},
		{"env_file key missing", e.put(`{"image":"app:v2","port":8080,"env_file":["SECRET"]}`), deployconfig.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.docker.created)
			_, err := e.m.Launch(context.Background(), tt.id, "ci")
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if code, body := e.get("/"); code != 200 || body != "v1" {
				t.Fatalf("v1 not serving after the failure: %d %q", code, body)
			}
			if st := e.m.Status(); st.Active.ID != active || !st.Healthy || len(st.Launched) != 0 {
				t.Fatalf("state changed: %+v", st)
			}
			if got := e.docker.running(); len(got) != 1 || got[0] != active {
				t.Fatalf("a failed container was left running: %v", got)
			}
			if short := ids.Short(tt.id); strings.Contains(err.Error(), "config "+short+": config "+short) {
				t.Fatalf("the config is named twice in a row: %v", err)
			}
			if tt.want == ErrUnhealthy {
				if len(e.docker.created) != before+1 || !strings.Contains(err.Error(), "last log lines") || !strings.Contains(err.Error(), "HTTP 500") {
					t.Fatalf("unhealthy error lacks the health answer or the logs: %v", err)
				}
			}
		})
	}
	h := e.m.History()
	if h[0].Result != "error" || h[0].Error == "" {
		t.Fatalf("failed launch not in the history: %+v", h[0])
	}
}

func TestDockerDown(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	e.docker.mu.Lock()
	e.docker.down = true
	e.docker.mu.Unlock()
	_, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if !errors.Is(err, ErrDocker) {
		t.Fatalf("launch with docker down: %v", err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("v1 must keep serving: %d %q", code, body)
	}
}

func TestSwitchErrors(t *testing.T) {
	e := newEnv(t)
	res := e.deploy("v1")
	for _, ref := range []string{"", "deadbeef", res.Active.ID} {
		if _, err := e.m.Switch(context.Background(), ref, "ci"); !errors.Is(err, ErrUnknownContainer) {
			t.Errorf("switch to %q: %v, want ErrUnknownContainer", ref, err)
		}
	}
	if _, err := e.m.Rollback(context.Background(), "ci"); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("rollback with no previous: %v", err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("v1 must keep serving: %d %q", code, body)
	}
}

// One operation at a time: a second one gets ErrBusy naming the first.
func TestOneOperationAtATime(t *testing.T) {
	e := newEnv(t)
	e.docker.pullDelay = 300 * time.Millisecond
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.m.Launch(context.Background(), e.configs[[]string{"v1", "v2"}[i]], "ci")
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if errs[0] != nil {
		t.Fatalf("first launch: %v", errs[0])
	}
	if !errors.Is(errs[1], ErrBusy) || !strings.Contains(errs[1].Error(), "launch") {
		t.Fatalf("second launch: %v, want ErrBusy naming the launch", errs[1])
	}
	if _, err := e.m.Switch(context.Background(), "x", "ci"); errors.Is(err, ErrBusy) {
		t.Fatalf("slot not released after the launch: %v", err)
	}
}

// A switch waits for the old container's in-flight request, which completes.
func TestSwitchDrainsOldRequests(t *testing.T) {
	e := newEnv(t)
	r1 := e.deploy("v1")
	hold := e.docker.holdSlow(r1.Active.ID)
	slow := make(chan string, 1)
	go func() { code, body := e.get("/slow"); slow <- http.StatusText(code) + " " + body }()
	for e.proxy.Active().InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	info, _ := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	switched := make(chan SwitchResult, 1)
	go func() { r, _ := e.m.Switch(context.Background(), info.ID, "ci"); switched <- r }()
	for e.m.Status().Active == nil || e.m.Status().Active.ID != info.ID {
		time.Sleep(time.Millisecond)
	}
	if _, body := e.get("/"); body != "v2" {
		t.Fatalf("new requests must go to v2 during the drain, got %q", body)
	}
	select {
	case <-switched:
		t.Fatal("switch returned while the old container had a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(hold)
	if got := <-slow; got != "OK v1" {
		t.Fatalf("the in-flight request on v1: %q", got)
	}
	if r := <-switched; !r.Drained {
		t.Fatalf("switch result: %+v", r)
	}
}

// With restarts off, the active container dying is noticed: 502 at once and
// an unhealthy status.
func TestActiveContainerDies(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.RestartAttempts = -1 })
	res := e.deploy("v1")
	e.docker.kill(res.Active.ID, 137)
	e.waitHealthy(false)
	st := e.m.Status()
	if st.Healthy || st.Active.Health != HealthDead {
		t.Fatalf("status after the death: %+v", st.Active)
	}
	if code, body := e.get("/"); code != 502 || !strings.Contains(body, "not running") {
		t.Fatalf("proxy after the death: %d %q", code, body)
	}
	if h := e.m.History(); h[0].Action != "died" {
		t.Fatalf("history: %+v", h[0])
	}
}

// A restarted manager adopts the running active container without
// restarting it, and rollback still knows the previous config.
func TestRestartAdopts(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	r2 := e.deploy("v2")
	created := len(e.docker.created)
	e.m.Close()

	e.proxy.ClearTarget()
	m2 := e.newManager()
	e.m = m2
	if err := m2.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.docker.created) != created {
		t.Fatal("restart created a container")
	}
	st := m2.Status()
	if st.Active == nil || st.Active.ID != r2.Active.ID || !st.Healthy || st.Previous != e.configs["v1"] {
		t.Fatalf("after restart: %+v", st)
	}
	if code, body := e.get("/"); code != 200 || body != "v2" {
		t.Fatalf("serving after restart: %d %q", code, body)
	}
	if h := m2.History(); h[0].Action != "adopt" || len(h) < 5 {
		t.Fatalf("history after restart (kept on disk): %+v", h)
	}
}

// A cold start with no state launches current.json and switches to it.
func TestColdStart(t *testing.T) {
	e := newEnv(t)
	atomicfile.Write(filepath.Join(e.dir, "current.json"), []byte(`{"id":"`+e.configs["v2"]+`"}`), 0o644)
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitHealthy(true)
	if code, body := e.get("/"); code != 200 || body != "v2" {
		t.Fatalf("after cold start: %d %q", code, body)
	}
}

// A cold start without current.json keeps retrying; a later current.json
// is picked up. A new install waiting for its first current.json is no
// error: the history records none.
func TestColdStartRetries(t *testing.T) {
	e := newEnv(t)
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if e.m.Status().Active != nil {
		t.Fatal("active without current.json")
	}
	// Several retries found no current.json by now: nothing to record.
	if h := e.m.History(); len(h) != 0 {
		t.Fatalf("history of a new install waiting for current.json: %+v, want none", h)
	}
	// A current.json naming a config that is not there is an error, once.
	atomicfile.Write(filepath.Join(e.dir, "current.json"), []byte(strings.Repeat("ab", 32)), 0o644)
	time.Sleep(200 * time.Millisecond)
	starts := 0
	for _, h := range e.m.History() {
		if h.Action == "start" && h.Result == resultError {
			starts++
		}
	}
	if starts != 1 {
		t.Fatalf("%d start failures in the history after repeated retries, want 1", starts)
	}
	atomicfile.Write(filepath.Join(e.dir, "current.json"), []byte(e.configs["v1"]), 0o644)
	e.waitHealthy(true)
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after current.json appeared: %d %q", code, body)
	}
}

func TestCorruptStateRefusesToStart(t *testing.T) {
	e := newEnv(t)
	os.WriteFile(filepath.Join(e.state, "state.json"), []byte("{not json"), 0o600)
	if err := e.m.Start(e.ctx); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("start with a corrupt state file: %v", err)
	}
}

// With --docker-network the operator's network wins: "bridge" is fine,
// "host" is a config error (422), not a Docker outage.
func TestDockerNetworkAndNetworkMode(t *testing.T) {
	e := newEnv(t)
	m, err := New(Options{App: "shop", Source: deployconfig.NewDir(e.dir, deployconfig.LayoutNative), Docker: e.docker,
		Proxy: e.proxy, StateDir: t.TempDir(), Logger: zerolog.Nop(), Network: "appnet",
		Policy: deployconfig.Policy{AllowHostNetwork: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	host := e.put(`{"image":"app:v1","port":8080,"network_mode":"host"}`)
	if _, err := m.Launch(context.Background(), host, "ci"); !errors.Is(err, deployconfig.ErrInvalid) || errors.Is(err, ErrDocker) {
		t.Fatalf("host network under --docker-network: %v, want ErrInvalid", err)
	}
	bridge := e.put(strings.Replace(cfgJSON("app:v1", "v1", ""), `"workers":2`, `"workers":2,"network_mode":"bridge"`, 1))
	info, err := m.Launch(context.Background(), bridge, "ci")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.docker.get(info.ID)
	if c.spec.Network != "appnet" || c.spec.NetworkMode != "" {
		t.Fatalf("spec network %q mode %q", c.spec.Network, c.spec.NetworkMode)
	}
}

// waitHealthy polls the status until its health is want, for up to 5 s; the
// assertions after it say what was expected.
func (e *env) waitHealthy(want bool) {
	deadline := time.Now().Add(5 * time.Second)
	for e.m.Status().Healthy != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
