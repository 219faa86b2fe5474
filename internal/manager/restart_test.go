package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start replaces the manager with one made with opts and starts what runs
// beside the operations (Docker's events, the expiry of launched
// containers), as Start does, without Start's cold start: a new install's
// cold start retries, taking the operation slot from the test's own
// operations now and then.
func (e *env) start(opts ...func(*Options)) {
	e.t.Helper()
	e.m.Close()
	e.m = e.newManager(opts...)
	e.m.spawn(e.ctx, e.m.watchEvents)
	e.m.spawn(e.ctx, e.m.expireLaunched)
}

func (e *env) actions() []string {
	var out []string
	for _, h := range e.m.History() {
		out = append(out, string(h.Action)+" "+h.Result)
	}
	return out
}

// A dead active container comes back by itself: its requests wait in the
// queue meanwhile and are served by it once it is healthy again, on the
// address its restart got.
func TestDeadActiveComesBack(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.RestartBackoff = 20 * time.Millisecond })
	res := e.deploy("v1")
	addr := res.Active.Addr
	gate := make(chan struct{}) // the container comes back only once the request waits
	e.docker.mu.Lock()
	e.docker.startGate = gate
	e.docker.mu.Unlock()
	e.docker.kill(res.Active.ID, 137)
	waitFor(t, "the restart to begin", func() bool { r := e.m.Status().Restart; return r != nil && r.State == RestartRunning })

	got := make(chan string, 1)
	go func() { code, body := e.get("/"); got <- fmt.Sprint(body, " ", code) }()
	waitFor(t, "the request to queue", func() bool { return e.proxy.Queued() == 1 })
	close(gate)
	if r := <-got; r != "v1 200" {
		t.Fatalf("request during the restart: %q, want v1's 200", r)
	}
	st := e.m.Status()
	if st.Active.ID != res.Active.ID || !st.Healthy || st.Active.Addr == addr || st.Restart != nil {
		t.Fatalf("after the restart: %+v (restart %+v), want the same container healthy on a new address", st.Active, st.Restart)
	}
	if a := e.actions(); a[0] != "restart ok" || a[1] != "died error" {
		t.Fatalf("history %v, want died then restart", a)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the restart: %d %q", code, body)
	}
}

// A crash loop stops after the configured tries: /status says it gave up,
// the history has every try, and requests get a 502 at once. A deploy
// brings the app back.
func TestCrashLoopGivesUp(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.RestartBackoff = 20 * time.Millisecond })
	res := e.deploy("v1")
	c, _ := e.docker.get(res.Active.ID)
	e.docker.mu.Lock()
	c.crashOnStart = true
	e.docker.mu.Unlock()
	e.docker.kill(res.Active.ID, 1)
	waitFor(t, "the manager to give up", func() bool { r := e.m.Status().Restart; return r != nil && r.State == RestartGaveUp })
	st := e.m.Status()
	if st.Healthy || st.Restart.Attempts != DefaultRestartAttempts || st.Restart.MaxAttempts != DefaultRestartAttempts ||
		!strings.Contains(st.Restart.LastError, "exited") {
		t.Fatalf("status after giving up: %+v", st.Restart)
	}
	tries := 0
	for _, h := range e.m.History() {
		if h.Action == ActionRestart && h.Result == resultError {
			tries++
		}
	}
	if h := e.m.History()[0]; tries != DefaultRestartAttempts+1 || !strings.Contains(h.Error, "gave up") || !strings.Contains(h.Error, "502") {
		t.Fatalf("history: %d failed restarts (want %d and the giving up), newest %+v", tries, DefaultRestartAttempts+1, h)
	}
	start := time.Now()
	if code, _ := e.get("/"); code != 502 || time.Since(start) > 2*time.Second {
		t.Fatalf("request after giving up: %d after %v, want a 502 at once", code, time.Since(start))
	}
	if n := e.m.DeployStats().Counts[[2]string{"restart", "error"}]; n != uint64(tries) {
		t.Fatalf("metrics count %d failed restarts, want %d", n, tries)
	}
	e.deploy("v2")
	if st := e.m.Status(); !st.Healthy || st.Restart != nil {
		t.Fatalf("after a deploy: healthy %v, restart %+v", st.Healthy, st.Restart)
	}
}

// An active container removed behind switchyard's back is replaced by a
// new container of its config; rollback still goes to the version before.
func TestRemovedActiveIsRelaunched(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.RestartBackoff = 20 * time.Millisecond })
	e.deploy("v1")
	r2 := e.deploy("v2")
	e.docker.rmForce(r2.Active.ID)
	waitFor(t, "a new active container", func() bool {
		st := e.m.Status()
		return st.Active != nil && st.Active.ID != r2.Active.ID && st.Healthy
	})
	st := e.m.Status()
	if st.Active.ConfigID != e.configs["v2"] || st.Previous != e.configs["v1"] {
		t.Fatalf("after the relaunch: config %s, previous %s; want v2's, and v1 to roll back to", st.Active.ConfigID, st.Previous)
	}
	if code, body := e.get("/"); code != 200 || body != "v2" {
		t.Fatalf("serving %d %q, want v2", code, body)
	}
	if got := e.docker.running(); len(got) != 1 || got[0] != st.Active.ID {
		t.Fatalf("running %v, want only the relaunched container", got)
	}
}

// Cancel stops a launch (its container removed), says what it cancelled,
// and refuses to cancel what is not running.
func TestCancelLaunch(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	never := e.put(strings.Replace(cfgJSON("app:v2", "v2", `,"NEVER_HEALTHY":"1"`), `"start_timeout":"1s"`, `"start_timeout":"10m"`, 1))
	if _, err := e.m.Cancel(context.Background(), "", "alice"); !errors.Is(err, ErrNoOperation) {
		t.Fatalf("cancel with nothing running: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := e.m.Launch(context.Background(), never, "ci"); done <- err }()
	waitFor(t, "the launch to run", func() bool { return e.m.Status().Operation != "" && len(e.docker.running()) == 2 })
	if _, err := e.m.Cancel(context.Background(), "switch to abc", "alice"); !errors.Is(err, ErrNoOperation) {
		t.Fatalf("cancel of another operation: %v", err)
	}
	op, err := e.m.Cancel(context.Background(), LaunchOperation(never), "alice")
	if err != nil || op != LaunchOperation(never) {
		t.Fatalf("cancel: %q %v", op, err)
	}
	err = <-done
	if !errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "cancelled by alice") {
		t.Fatalf("launch error %v, want it cancelled by alice", err)
	}
	if got := e.docker.running(); len(got) != 1 || e.m.Status().Operation != "" {
		t.Fatalf("after the cancel: running %v, operation %q", got, e.m.Status().Operation)
	}
	if h := e.m.History()[0]; h.Action != ActionLaunch || !strings.Contains(h.Error, "cancelled by alice") {
		t.Fatalf("history %+v", h)
	}
}

// A launch whose client goes away is cancelled: nobody would switch to it.
func TestLaunchCancelledWhenClientLeaves(t *testing.T) {
	e := newEnv(t)
	never := e.put(strings.Replace(cfgJSON("app:v2", "v2", `,"NEVER_HEALTHY":"1"`), `"start_timeout":"1s"`, `"start_timeout":"10m"`, 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := e.m.Launch(ctx, never, "ci"); done <- err }()
	waitFor(t, "the container to start", func() bool { return len(e.docker.running()) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "went away") {
		t.Fatalf("launch error %v, want it cancelled because its client went away", err)
	}
	if got := e.docker.running(); len(got) != 0 {
		t.Fatalf("running after the cancelled launch: %v", got)
	}
}

// A rollback preempts a launch that holds the operation slot.
func TestRollbackPreemptsLaunch(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	e.deploy("v2")
	never := e.put(strings.Replace(cfgJSON("app:v2", "v3", `,"NEVER_HEALTHY":"1"`), `"start_timeout":"1s"`, `"start_timeout":"10m"`, 1))
	done := make(chan error, 1)
	go func() { _, err := e.m.Launch(context.Background(), never, "ci"); done <- err }()
	waitFor(t, "the launch to run", func() bool { return len(e.docker.running()) == 2 })
	res, err := e.m.Rollback(context.Background(), "oncall")
	if err != nil || res.Active.ConfigID != e.configs["v1"] {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if err := <-done; !errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "preempted by rollback (oncall)") {
		t.Fatalf("launch error %v, want it preempted", err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the rollback: %d %q", code, body)
	}
}

// Cancelling a restart that cannot succeed stops the tries: the manager
// gives up at once and says who cancelled it.
func TestCancelRestart(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.RestartBackoff = 20 * time.Millisecond })
	slow := e.put(strings.Replace(cfgJSON("app:v1", "v1", ""), `"start_timeout":"1s"`, `"start_timeout":"10m"`, 1))
	info, err := e.m.Launch(context.Background(), slow, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Switch(context.Background(), info.ID, "ci"); err != nil {
		t.Fatal(err)
	}
	c, _ := e.docker.get(info.ID)
	e.docker.mu.Lock()
	c.healthy = false // it starts again, but never passes its health checks
	e.docker.mu.Unlock()
	e.docker.kill(info.ID, 137)
	waitFor(t, "the restart to run", func() bool { return strings.HasPrefix(e.m.Status().Operation, "restart ") })
	if _, err := e.m.Cancel(context.Background(), "", "ops"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the manager to give up", func() bool { r := e.m.Status().Restart; return r != nil && r.State == RestartGaveUp })
	if h := e.m.History()[0]; h.Action != ActionRestart || !strings.Contains(h.Error, "cancelled by ops") || strings.Count(h.Error, "cancelled by ops") != 1 {
		t.Fatalf("history %+v", h)
	}
	if code, _ := e.get("/"); code != 502 {
		t.Fatalf("after the cancelled restart: %d, want 502", code)
	}
}
