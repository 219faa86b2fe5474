package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/manager"
)

// load sends requests through the proxy from several goroutines until
// stopped, and records every answer.
type load struct {
	mu      sync.Mutex
	answers map[string]int // "200 v1" → count
	bad     []string
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(st *stack, workers int) *load {
	l := &load{answers: map[string]int{}, stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 100000; n++ { // bounded; stopped long before
				select {
				case <-l.stop:
					return
				default:
				}
				code, body := st.get("/")
				l.mu.Lock()
				if code != 200 {
					l.bad = append(l.bad, body)
				}
				l.answers[body]++
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) finish() (map[string]int, []string) {
	close(l.stop)
	l.wg.Wait()
	return l.answers, l.bad
}

// deployUnderLoad launches config id and switches to it while requests
// flow and a slow request is in flight on the old version; every request
// must succeed, the slow one on the old version.
func deployUnderLoad(t *testing.T, st *stack, oldVersion, newVersion string, do func() (int, string)) {
	l := startLoad(st, 4)
	slow := make(chan string, 1)
	go func() { code, body := st.get("/slow?ms=2000"); slow <- http200(code) + body }()
	time.Sleep(300 * time.Millisecond) // the slow request is inside the old container
	code, out := do()
	if code != 0 && code != 200 {
		t.Fatalf("deploy: %d %s", code, out)
	}
	// After the switch answered, new requests get the new version.
	for i := 0; i < 10; i++ {
		if c, body := st.get("/"); c != 200 || body != newVersion {
			t.Fatalf("request after the switch: %d %q, want %s", c, body, newVersion)
		}
	}
	answers, bad := l.finish()
	if got := <-slow; got != "200 "+oldVersion {
		t.Fatalf("the slow request started on %s before the switch: %q", oldVersion, got)
	}
	if len(bad) > 0 {
		t.Fatalf("%d requests failed during the deploy: %q", len(bad), bad[:min(5, len(bad))])
	}
	if answers[oldVersion] == 0 || answers[newVersion] == 0 {
		t.Fatalf("answers during the deploy: %v (want both %s and %s)", answers, oldVersion, newVersion)
	}
	t.Logf("answers during the deploy: %v", answers)
}

func http200(code int) string {
	if code == 200 {
		return "200 "
	}
	return "HTTP " + string(rune('0'+code/100)) + "xx "
}

func TestDeployLifecycle(t *testing.T) {
	st := newStack(t)
	v1img, v2img := st.image("v1"), st.image("v2")
	v1 := st.config(appConfig(v1img, `"env":{"GREETING":"hello"},`))
	v2 := st.config(appConfig(v2img, ""))
	unused := st.config(appConfig(v2img, `"env":{"NEVER_LAUNCHED":"1"},`))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(`{"id":"`+v1+`"}`))

	// Cold start: current.json is launched and switched to.
	st.start()
	m := st.waitHealthy(90 * time.Second)
	v1Container := activeID(m)
	if code, body := st.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after cold start: %d %q", code, body)
	}
	if code, body := st.get("/env?k=GREETING"); code != 200 || body != "hello" {
		t.Fatalf("config env not in the container: %d %q", code, body)
	}

	t.Run("zero-downtime deploy with the CLI", func(t *testing.T) {
		deployUnderLoad(t, st, "v1", "v2", func() (int, string) {
			code, out, errOut := st.cli("deploy", v2)
			if code != 0 {
				return 500, out + errOut
			}
			return 0, out
		})
		if _, err := st.docker.Inspect(context.Background(), v1Container); !errors.Is(err, dockerctl.ErrNotFound) {
			t.Fatalf("v1's container still exists after the switch: %v", err)
		}
		if cs := st.containers(); len(cs) != 1 || cs[0].Labels["switchyard.config"] != v2 {
			t.Fatalf("containers after the deploy: %+v", cs)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		deployUnderLoad(t, st, "v2", "v1", func() (int, string) {
			if _, err := st.client.Rollback(context.Background()); err != nil {
				return 500, err.Error()
			}
			return 0, ""
		})
		if cs := st.containers(); len(cs) != 1 || cs[0].Labels["switchyard.config"] != v1 {
			t.Fatalf("containers after the rollback: %+v", cs)
		}
	})

	// From here v1 is active; every bad input must leave it serving, untouched.
	m, _ = st.status()
	active := activeID(m)
	untouched := func(t *testing.T) {
		t.Helper()
		if code, body := st.get("/"); code != 200 || body != "v1" {
			t.Fatalf("v1 not serving: %d %q", code, body)
		}
		m, err := st.status()
		if err != nil || !m.Healthy || activeID(m) != active {
			t.Fatalf("active changed: %v %+v", err, m.Active)
		}
		if cs := st.containers(); len(cs) != 1 || cs[0].ID != active {
			t.Fatalf("containers changed: %+v", cs)
		}
	}

	tampered := st.config(appConfig(v2img, `"labels":{"x":"1"},`))
	st.s3.Put(t, st.bucket, st.prefix+"/"+tampered+".json", []byte(appConfig(v2img, `"labels":{"x":"2"},`)))
	bad := []struct {
		name string
		path string
		body string
		code int
		want string
	}{
		{"tampered config", "/launch", `{"id":"` + tampered + `"}`, 422, "sha256"},
		{"unknown field", "/launch", st.config(`{"image":"x","port":80,"replicas":3}`), 422, "replicas"},
		{"missing object", "/launch", `{"id":"` + strings.Repeat("0f", 32) + `"}`, 404, "not found"},
		{"image that does not exist", "/launch", st.config(appConfig(st.reg.Ref("nope:v9"), "")), 502, "nope:v9"},
		{"never healthy", "/launch", st.config(strings.Replace(appConfig(v2img, `"env":{"NEVER_HEALTHY":"1"},`), `"start_timeout":"30s"`, `"start_timeout":"2s"`, 1)), 422, "HTTP 500"},
		{"privileged", "/launch", st.config(appConfig(v2img, `"privileged":true,`)), 422, "privileged"},
		{"host mount", "/launch", st.config(appConfig(v2img, `"binds":["/etc:/host-etc:ro"],`)), 422, "binds"},
		{"switch to an unknown id", "/switch", `{"container":"0123456789ab"}`, 404, "0123456789ab"},
		{"empty launch", "/launch", `{}`, 400, "id"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			code, body := st.call("POST", tt.path, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("%s: %d %s, want %d mentioning %q", tt.path, code, body, tt.code, tt.want)
			}
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("error body is not {\"error\": ...}: %s", body)
			}
			untouched(t)
		})
	}

	t.Run("wrong API token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong"} {
			if code, _ := st.callToken("POST", "/launch", `{"id":"`+v2+`"}`, tok); code != 401 {
				t.Fatalf("token %q: %d, want 401", tok, code)
			}
		}
		untouched(t)
	})

	t.Run("concurrent launches", func(t *testing.T) {
		slowBad := st.config(strings.Replace(appConfig(v2img, `"env":{"NEVER_HEALTHY":"1"},`), `"start_timeout":"30s"`, `"start_timeout":"3s"`, 1))
		first := make(chan int, 1)
		go func() { code, _ := st.call("POST", "/launch", slowBad); first <- code }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if m, _ := st.status(); strings.HasPrefix(m.Operation, "launch") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first launch never showed in /status")
			}
			time.Sleep(20 * time.Millisecond)
		}
		code, body := st.call("POST", "/launch", v2)
		if code != 409 || !strings.Contains(body, "launch") {
			t.Fatalf("second launch: %d %s, want 409 naming the running launch", code, body)
		}
		if code := <-first; code != 422 {
			t.Fatalf("first launch: %d", code)
		}
		untouched(t)
	})

	t.Run("history", func(t *testing.T) {
		code, out, _ := st.cli("history")
		if code != 0 || !strings.Contains(out, "rollback") || !strings.Contains(out, "e2e-ci") {
			t.Fatalf("history: %d\n%s", code, out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := st.call("GET", "/metrics", "")
		for _, want := range []string{`switchyard_requests_total{code_class="2xx"}`, "switchyard_shed_total",
			`switchyard_deployments_total{action="rollback",result="ok"} 1`, "switchyard_active_container_info{", "go_goroutines"} {
			if code != 200 || !strings.Contains(body, want) {
				t.Fatalf("/metrics: %d, no %s in\n%s", code, want, tail(body, 3000))
			}
		}
		if code, _ := st.callToken("GET", "/metrics", "", ""); code != 401 {
			t.Fatalf("/metrics without the token: %d", code)
		}
	})

	t.Run("S3 server stopped", func(t *testing.T) {
		st.s3.Stop()
		code, body := st.call("POST", "/launch", `{"id":"`+unused+`"}`)
		if code != 503 || !strings.Contains(body, "config_source_unavailable") {
			t.Fatalf("launch of a config never used, with S3 down: %d %s", code, body)
		}
		untouched(t)
		// A config used before comes from the cache in the state directory.
		info, err := st.client.Launch(context.Background(), v2)
		if err != nil || info.ConfigID != v2 {
			t.Fatalf("launch of a cached config with S3 down: %+v %v", info, err)
		}
		if _, err := st.client.Discard(context.Background(), info.ID); err != nil {
			t.Fatal(err)
		}
		untouched(t)
	})

	t.Run("restart after SIGKILL adopts v1 without restarting it", func(t *testing.T) {
		before, err := st.docker.Inspect(context.Background(), active)
		if err != nil {
			t.Fatal(err)
		}
		st.kill()
		if code, body := st.get("/"); code == 200 {
			t.Fatalf("proxy still answering after SIGKILL: %q", body)
		}
		// S3 is still down: adoption must work from the state file alone.
		st.start()
		st.waitHealthy(30 * time.Second)
		untouched(t)
		after, err := st.docker.Inspect(context.Background(), active)
		if err != nil || !after.StartedAt.Equal(before.StartedAt) || !after.Running {
			t.Fatalf("v1 was restarted: started %v, then %v (%v)", before.StartedAt, after.StartedAt, err)
		}
		code, out, _ := st.cli("status")
		if code != 0 || !strings.Contains(out, active[:12]) {
			t.Fatalf("switchyard status after restart: %d\n%s", code, out)
		}
	})

	t.Run("the active container dying is noticed and brought back", func(t *testing.T) {
		// Stopped behind switchyard's back, as a crash or an operator would.
		if err := st.docker.Stop(context.Background(), active, time.Second); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err := st.status()
			if err == nil && !m.Healthy && m.Active != nil && m.Active.Health == manager.HealthDead {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/status after the death: %v %+v", err, m.Active)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The request waits in the queue while the container is started again.
		if code, body := st.get("/"); code != 200 || body != "v1" {
			t.Fatalf("proxy after the death: %d %q, want v1 once it is back", code, body)
		}
		if m := st.waitHealthy(30 * time.Second); m.Active.ID != active {
			t.Fatalf("active %s after the restart, want %s", m.Active.ID, active)
		}
		if !strings.Contains(st.logs.String(), "the active container died") {
			t.Fatal("the log does not say the active container died")
		}
	})
}
