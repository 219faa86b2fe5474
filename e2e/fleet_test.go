package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/manager"
)

// fleetEnv is three switchyards on 127.0.0.2-4 (hosts h1-h3) following one
// bucket of one versitygw, with one registry and the machine's Docker
// daemon: a fleet on one machine.
type fleetEnv struct {
	t     *testing.T
	base  *stack // the shared S3, registry and Docker; its cleanup removes the app's containers
	hosts []*stack
	dir   string // config files for publish
}

func newFleet(t *testing.T) *fleetEnv {
	base := newStack(t)
	f := &fleetEnv{t: t, base: base, dir: t.TempDir()}
	for _, kv := range base.s3.Env() { // the test reads the bucket as CI does
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for i := 1; i <= 3; i++ {
		f.hosts = append(f.hosts, f.newHost(i, t.TempDir()))
	}
	return f
}

// newHost is host h<n> on 127.0.0.<n+1>, not started.
func (f *fleetEnv) newHost(n int, stateDir string) *stack {
	b := f.base
	ip := fmt.Sprintf("127.0.0.%d", n+1)
	h := &stack{t: f.t, app: b.app, bin: b.bin, s3: b.s3, reg: b.reg, docker: b.docker, bucket: b.bucket,
		prefix: b.prefix, stateDir: stateDir, token: b.token,
		listen: freeOn(f.t, ip), apiAddr: freeOn(f.t, ip)}
	h.proxy, h.api = "http://"+h.listen, "http://"+h.apiAddr
	var err error
	if h.client, err = api.NewClient(h.api, api.ClientOptions{Token: h.token, User: "e2e", Timeout: 2 * time.Minute}); err != nil {
		f.t.Fatal(err)
	}
	h.args = []string{"--host-id", fmt.Sprintf("h%d", n), "--follow", "--poll-interval", "300ms",
		"--heartbeat-interval", "500ms", "--trusted-proxies", "127.0.0.0/8"}
	return h
}

// slowS3 is a proxy in front of S3 at endpoint that holds every PUT of
// current.json for delay, so that racing releases both read before either
// writes. It keeps the Host header: requests stay signed for it.
func slowS3(t *testing.T, endpoint string, delay time.Duration) string {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+deployconfig.CurrentName) {
			time.Sleep(delay)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// freeOn is a free port on loopback address ip.
func freeOn(t *testing.T, ip string) string {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("reserve a port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ci runs a fleet CI command (publish, release, fleet) as CI would: the
// bucket from the environment, credentials from the standard chain.
func (f *fleetEnv) ci(args ...string) (int, string, string) {
	return f.ciEnv(nil, args...)
}

// ciEnv is ci with more environment variables (later ones win).
func (f *fleetEnv) ciEnv(env []string, args ...string) (int, string, string) {
	cmd := exec.Command(f.base.bin, args...)
	cmd.Env = append(os.Environ(), f.base.s3.Env()...)
	cmd.Env = append(cmd.Env, "SWITCHYARD_CONFIGS=s3://"+f.base.bucket+"/"+f.base.prefix, "SWITCHYARD_USER=ci-job")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		f.t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// publish writes body to a file and publishes it; it returns the id.
func (f *fleetEnv) publish(body string) string {
	f.t.Helper()
	path := filepath.Join(f.dir, deployconfig.ID([]byte(body))[:12]+".json")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
	code, out, errOut := f.ci("publish", path)
	if code != 0 || strings.TrimSpace(out) != deployconfig.ID([]byte(body)) {
		f.t.Fatalf("publish: exit %d, %q, %s", code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// bucket is the fleet's bucket, for reading heartbeats as the CLI does.
func (f *fleetEnv) bucket() *deployconfig.Bucket {
	b, err := deployconfig.OpenBucket(context.Background(), "s3://"+f.base.bucket+"/"+f.base.prefix,
		deployconfig.OpenOptions{Endpoint: f.base.s3.Endpoint, PathStyle: true})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// waitServes waits until host h's active config is id, healthy.
func waitServes(t *testing.T, h *stack, id string, timeout time.Duration) api.StatusResponse {
	t.Helper()
	var last api.StatusResponse
	eventually(t, "host "+h.listen+" to serve "+id[:12], timeout, func() error {
		s, err := h.status()
		if err != nil {
			return err
		}
		last = s
		if s.Active == nil || s.Active.ConfigID != id || !s.Healthy {
			return fmt.Errorf("active %+v healthy %v", s.Active, s.Healthy)
		}
		return nil
	})
	return last
}

// fleetLoad sends requests at a fixed rate whatever the answers take (open
// loop), spread over the hosts in turn.
type fleetLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	fails      []string
	versions   map[string]int
	stop       chan struct{}
	wg         sync.WaitGroup
}

var fleetClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

func startFleetLoad(hosts []*stack, rps int) *fleetLoad {
	l := &fleetLoad{stop: make(chan struct{}), versions: map[string]int{}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			h := hosts[i%len(hosts)]
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one(h)
			}()
		}
	}()
	return l
}

func (l *fleetLoad) one(h *stack) {
	resp, err := fleetClient.Get(h.proxy + "/")
	if err != nil {
		l.fail(h.listen + ": " + err.Error())
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		l.fail(fmt.Sprintf("%s: %d %s", h.listen, resp.StatusCode, strings.TrimSpace(string(b))))
		return
	}
	l.ok.Add(1)
	l.mu.Lock()
	l.versions[strings.TrimSpace(string(b))]++
	l.mu.Unlock()
}

func (l *fleetLoad) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	l.fails = append(l.fails, s)
	l.mu.Unlock()
}

// finish stops the load and fails the test on any failed request.
func (l *fleetLoad) finish(t *testing.T, what string) map[string]int {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%s: %d of %d requests failed: %q", what, n, n+l.ok.Load(), l.fails[:min(len(l.fails), 10)])
	}
	if l.ok.Load() == 0 {
		t.Errorf("%s: no request succeeded", what)
	}
	t.Logf("%s: %d requests answered 200, %d failed; by version %v", what, l.ok.Load(), l.failed.Load(), l.versions)
	return l.versions
}

// The fleet end to end: a late host converges, releases converge under
// load with no failed request, a release that never gets healthy is kept
// out everywhere and named, a dead app's requests go to peers, S3 may go
// away and come back, releases race safely, and two hosts on one daemon
// adopt only their own containers.
func TestFleet(t *testing.T) {
	f := newFleet(t)
	v1img, v2img := f.base.image("v1"), f.base.image("v2")
	v1 := f.publish(appConfig(v1img, ""))
	h1, h2, h3 := f.hosts[0], f.hosts[1], f.hosts[2]
	h1.start()
	h2.start()

	t.Run("release v1 to two hosts", func(t *testing.T) {
		code, out, errOut := f.ci("release", v1[:12], "--wait", "--timeout", "2m")
		if code != 0 || strings.TrimSpace(out) != v1 || !strings.Contains(errOut, "h1: serves "+v1[:12]+", healthy") ||
			!strings.Contains(errOut, "h2: serves") || !strings.Contains(errOut, "every live host serves") {
			t.Fatalf("release --wait: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
		}
	})
	t.Run("a host started after the release converges", func(t *testing.T) {
		h3.start()
		waitServes(t, h3, v1, time.Minute)
	})
	t.Run("publish and release v2 under load: 0 failed", func(t *testing.T) {
		l := startFleetLoad(f.hosts, 60)
		time.Sleep(time.Second)
		v2 := f.publish(appConfig(v2img, ""))
		if again := f.publish(appConfig(v2img, "")); again != v2 {
			t.Fatalf("publishing the same file again gave %s", again)
		}
		code, out, errOut := f.ci("release", v2, "--wait", "--timeout", "2m")
		time.Sleep(time.Second)
		versions := l.finish(t, "release of v2")
		if code != 0 || strings.TrimSpace(out) != v2 {
			t.Fatalf("release --wait: exit %d, %q\n%s", code, out, errOut)
		}
		for _, h := range []string{"h1", "h2", "h3"} {
			if !strings.Contains(errOut, h+": serves "+v2[:12]+", healthy") {
				t.Errorf("no progress line for %s:\n%s", h, errOut)
			}
		}
		if versions["v1"] == 0 || versions["v2"] == 0 {
			t.Errorf("answers by version %v: want both", versions)
		}
		code, out, _ = f.ci("fleet")
		if code != 0 || strings.Count(out, v2[:12]+"  healthy") != 3 {
			t.Errorf("fleet: exit %d\n%s", code, out)
		}
		code, out, _ = f.ci("fleet", "--json")
		var hosts []fleet.Heartbeat
		if err := json.Unmarshal([]byte(out), &hosts); code != 0 || err != nil || len(hosts) != 3 {
			t.Fatalf("fleet --json: exit %d, %v\n%s", code, err, out)
		}
		for _, h := range hosts {
			if h.Active != v2 || !h.Healthy || h.Version == "" || !strings.HasPrefix(h.Addr, "127.0.0.") || h.RPS == 0 {
				t.Errorf("heartbeat %+v", h)
			}
		}
	})
	v2 := f.publish(appConfig(v2img, ""))

	t.Run("a release that never gets healthy: every host keeps v2", func(t *testing.T) {
		bad := f.publish(strings.Replace(appConfig(v1img, `"env":{"NEVER_HEALTHY":"1"},`), `"start_timeout":"30s"`, `"start_timeout":"3s"`, 1))
		l := startFleetLoad(f.hosts, 60)
		code, out, errOut := f.ci("release", bad, "--wait", "--timeout", "2m")
		l.finish(t, "a bad release")
		if code != 1 || !strings.Contains(errOut, "the release failed on 3 of 3 hosts") || !strings.Contains(errOut, "did not become healthy") {
			t.Fatalf("release --wait of a bad config: exit %d, %q\n%s", code, out, errOut)
		}
		for _, h := range f.hosts {
			waitServes(t, h, v2, time.Second)
		}
		// The /switch and /rollback of one host are refused: the fleet
		// changes with a release.
		if code, body := h1.call("POST", "/rollback", `{}`); code != 409 || !strings.Contains(body, "follow_mode") || !strings.Contains(body, "switchyard release") {
			t.Errorf("rollback in follow mode: %d %s", code, body)
		}
		// The next good release goes through (back to v2's predecessor).
		code, _, errOut = f.ci("release", v1, "--wait", "--timeout", "2m")
		if code != 0 {
			t.Fatalf("the next good release: exit %d\n%s", code, errOut)
		}
		code, _, errOut = f.ci("release", "--previous", "--wait", "--timeout", "2m")
		if code != 1 || !strings.Contains(errOut, "did not become healthy") {
			t.Fatalf("release --previous (the bad one): exit %d\n%s", code, errOut)
		}
		code, _, errOut = f.ci("release", v2, "--wait", "--timeout", "2m")
		if code != 0 {
			t.Fatalf("release v2 again: exit %d\n%s", code, errOut)
		}
	})

	t.Run("one host's app killed: its requests answered by peers", func(t *testing.T) {
		l := startFleetLoad(f.hosts, 60)
		time.Sleep(500 * time.Millisecond)
		s, _ := h1.status()
		if err := exec.Command("docker", "kill", s.Active.ID).Run(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "h1 to bring its app back", time.Minute, func() error {
			s2, err := h1.status()
			if err != nil || !s2.Healthy || s2.Restart != nil && s2.Restart.State != "" {
				return fmt.Errorf("%v %+v", err, s2.Restart)
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond)
		l.finish(t, "one app killed")
		s1, _ := h1.status()
		t.Logf("h1's fallbacks while its app was down: %+v", s1.Proxy.Fallbacks)
		if s1.Proxy.Fallbacks.Sent == 0 {
			t.Errorf("h1 sent no fallbacks: %+v", s1.Proxy.Fallbacks)
		}
		var received uint64
		for _, h := range f.hosts[1:] {
			s, _ := h.status()
			received += s.Proxy.Fallbacks.Received
		}
		if received < s1.Proxy.Fallbacks.Sent-s1.Proxy.Fallbacks.Failed {
			t.Errorf("peers received %d of %+v", received, s1.Proxy.Fallbacks)
		}
		code, body := h1.call("GET", "/metrics", "")
		if code != 200 || !strings.Contains(body, `switchyard_fallback_requests_total{direction="sent"}`) {
			t.Errorf("metrics: %d", code)
		}
	})

	t.Run("S3 down for a while, then back", func(t *testing.T) {
		l := startFleetLoad(f.hosts, 30)
		f.base.s3.Stop()
		time.Sleep(3 * time.Second)
		for _, h := range f.hosts {
			waitServes(t, h, v2, time.Second) // nothing that serves changed
		}
		stopped := time.Now()
		f.base.s3.Restart(f.t) // the server outlives this subtest
		l.finish(t, "S3 down")
		eventually(t, "heartbeats after S3 came back", 30*time.Second, func() error {
			hosts, err := fleet.ReadHosts(context.Background(), f.bucket())
			if err != nil {
				return err
			}
			for _, h := range hosts {
				if h.Time.Before(stopped) || h.SourceError != "" {
					return fmt.Errorf("%s: %v %q", h.Host, h.Time, h.SourceError)
				}
			}
			return nil
		})
		// Polling resumed: a release goes through.
		if code, _, errOut := f.ci("release", v1, "--wait", "--timeout", "2m"); code != 0 {
			t.Fatalf("release after S3 came back: exit %d\n%s", code, errOut)
		}
	})

	t.Run("two releases racing: one wins, the other fails clearly", func(t *testing.T) {
		// A release whose read was overtaken loses: the conditional PUT.
		b := f.bucket()
		_, etag, err := b.Get(context.Background(), deployconfig.CurrentName, "")
		if err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := f.ci("release", v2); code != 0 {
			t.Fatalf("release: %s", errOut)
		}
		if _, err := b.Put(context.Background(), deployconfig.CurrentName, []byte(`{"id":"`+v1+`"}`), deployconfig.PutCondition{IfMatch: etag}); !errors.Is(err, deployconfig.ErrPrecondition) {
			t.Fatalf("a write on a stale ETag: %v", err)
		}
		// Two CLI releases whose reads both come before either write: S3
		// in front of them holds every PUT of current.json for a while.
		slow := slowS3(t, f.base.s3.Endpoint, 1500*time.Millisecond)
		var wg sync.WaitGroup
		type res struct {
			code     int
			out, err string
		}
		results := make([]res, 2)
		for i, id := range []string{v1, v2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, o, e := f.ciEnv([]string{"AWS_ENDPOINT_URL=" + slow}, "release", id)
				results[i] = res{c, o, e}
			}()
			time.Sleep(200 * time.Millisecond)
		}
		wg.Wait()
		wins, winner := 0, ""
		for _, r := range results {
			switch {
			case r.code == 0:
				wins, winner = wins+1, strings.TrimSpace(r.out)
			case r.code != 1 || !strings.Contains(r.err, "current.json changed while releasing") || !strings.Contains(r.err, "released by ci-job"):
				t.Errorf("the losing release: exit %d\n%s", r.code, r.err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d of 2 racing releases won, want 1: %+v", wins, results)
		}
		data, _, err := b.Get(context.Background(), deployconfig.CurrentName, "")
		if rel, perr := b.ParseRelease(data); err != nil || perr != nil || rel.ID != winner {
			t.Fatalf("current.json names %s (%v %v), the winner released %s", rel.ID, err, perr, winner)
		}
		f.ci("release", v2, "--wait")
	})

	t.Run("hosts on one daemon adopt only their own; a second instance is refused", func(t *testing.T) {
		// Each host's container of v2, once it serves it: `release --wait`
		// may return while a host's switch still ends (seen once: h1's
		// active changed across the restart below, from a container read
		// before its switch was done).
		before := map[string]string{}
		for _, h := range f.hosts {
			before[h.listen] = waitServes(t, h, v2, 30*time.Second).Active.ID
		}
		h1.cmd.Process.Signal(os.Interrupt)
		h1.cmd.Wait()
		h1.start()
		s := waitServes(t, h1, v2, 30*time.Second)
		if s.Active.ID != before[h1.listen] || s.Host != "h1" || len(s.Launched) != 0 {
			t.Fatalf("h1 after restart: active %s (was %s), host %q, launched %d", s.Active.ID, before[h1.listen], s.Host, len(s.Launched))
		}
		for _, h := range f.hosts[1:] {
			if s, _ := h.status(); s.Active.ID != before[h.listen] {
				t.Errorf("%s: active changed to %s", h.listen, s.Active.ID)
			}
		}
		for _, c := range f.base.containers() {
			if c.Running && c.Labels[manager.LabelHost] == "" {
				t.Errorf("container %s without a host label", c.Name)
			}
		}
		// Another state directory claiming h2 on this daemon is refused.
		dup := f.newHost(2, t.TempDir())
		cmd := exec.Command(dup.bin, "serve", "--app", dup.app, "--listen", dup.listen, "--api", dup.apiAddr,
			"--configs", "s3://"+dup.bucket+"/"+dup.prefix, "--s3-endpoint", dup.s3.Endpoint, "--state-dir", dup.stateDir,
			"--host-id", "h2", "--follow")
		cmd.Env = append(os.Environ(), dup.s3.Env()...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "another switchyard manages this app and host") || !strings.Contains(string(out), h2.stateDir) {
			t.Fatalf("a second h2: %v\n%s", err, tail(string(out), 3000))
		}
	})

	t.Run("every app down: a clear 502, no loop", func(t *testing.T) {
		crashy := f.publish(appConfig(v1img, `"env":{"CRASH_ON_RESTART":"1"},`))
		if code, _, errOut := f.ci("release", crashy, "--wait", "--timeout", "2m"); code != 0 {
			t.Fatalf("release: exit %d\n%s", code, errOut)
		}
		counts := func() (sent, received uint64) {
			for _, h := range f.hosts {
				s, _ := h.status()
				sent += s.Proxy.Fallbacks.Sent
				received += s.Proxy.Fallbacks.Received
			}
			return sent, received
		}
		sent0, received0 := counts()
		for _, h := range f.hosts {
			s, _ := h.status()
			exec.Command("docker", "kill", s.Active.ID).Run()
		}
		for _, h := range f.hosts {
			eventually(t, "every host to give up on its crashing app", time.Minute, func() error {
				s, err := h.status()
				if err != nil || s.Restart == nil || s.Restart.State != manager.RestartGaveUp {
					return fmt.Errorf("%v %+v", err, s.Restart)
				}
				return nil
			})
		}
		time.Sleep(1500 * time.Millisecond) // the heartbeats say so
		for _, h := range f.hosts {
			code, body := h.get("/")
			if code != 502 || !strings.Contains(body, "the app is not running") {
				t.Errorf("%s: %d %q", h.listen, code, body)
			}
		}
		sent, received := counts()
		sent, received = sent-sent0, received-received0
		if received > sent {
			t.Errorf("more fallbacks received (%d) than sent (%d): a request went around", received, sent)
		}
	})
}
