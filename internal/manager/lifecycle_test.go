package manager

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Closing the manager during a launch cancels it: the container is removed,
// the launch is recorded as failed because switchyard stopped, and Close
// returns only when nothing of the manager's touches Docker any more.
func TestCloseDuringLaunch(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	never := e.put(strings.Replace(cfgJSON("app:v2", "v2", `,"NEVER_HEALTHY":"1"`), `"start_timeout":"1s"`, `"start_timeout":"1m"`, 1))
	done := make(chan error, 1)
	go func() { _, err := e.m.Launch(context.Background(), never, "ci"); done <- err }()
	for e.m.Status().Operation == "" || len(e.docker.running()) < 2 {
		time.Sleep(5 * time.Millisecond) // the new container is up and being probed
	}
	e.m.Close()
	e.docker.mu.Lock()
	e.docker.closed = true
	e.docker.mu.Unlock()

	// The launch was over (recorded, its slot given back) when Close
	// returned; its caller gets the answer right after.
	if h := e.m.History(); h[0].Action != ActionLaunch || h[0].Result != resultError || !strings.Contains(h[0].Error, "shutting down") {
		t.Fatalf("Close returned before the launch was over; history: %+v", h[0])
	}
	select {
	case err := <-done:
		if !errors.Is(err, errClosing) {
			t.Fatalf("launch error %v, want one saying switchyard is shutting down", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the launch did not return after Close")
	}
	if got := e.docker.running(); len(got) != 1 {
		t.Fatalf("running after Close: %v, want only the active container (adopted at the next start)", got)
	}
	// Nothing of the manager's runs on: no health probes, no Docker calls.
	probes := e.probes()
	time.Sleep(300 * time.Millisecond) // 3 probe intervals
	if e.probes() != probes {
		t.Fatal("health checks still run after Close")
	}
	e.docker.mu.Lock()
	defer e.docker.mu.Unlock()
	if len(e.docker.lateCalls) > 0 {
		t.Fatalf("Docker called after Close: %v", e.docker.lateCalls)
	}
}

// Closing during a switch's drain cuts the drain short but still stops and
// removes the old container before Close returns; the new one serves.
func TestCloseDuringDrain(t *testing.T) {
	e := newEnv(t)
	r1 := e.deploy("v1")
	hold := e.docker.holdSlow(r1.Active.ID)
	defer close(hold)
	go e.get("/slow")
	for e.proxy.Active().InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	switched := make(chan SwitchResult, 1)
	go func() { r, _ := e.m.Switch(context.Background(), info.ID, "ci"); switched <- r }()
	for e.m.Status().Active == nil || e.m.Status().Active.ID != info.ID {
		time.Sleep(time.Millisecond)
	}
	e.m.Close()
	select {
	case r := <-switched:
		if r.Drained || r.Active.ID != info.ID {
			t.Fatalf("switch result %+v, want an undrained switch to v2", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the switch did not return after Close")
	}
	if got := e.docker.running(); len(got) != 1 || got[0] != info.ID {
		t.Fatalf("running %v, want only v2", got)
	}
	if code, body := e.get("/"); code != http.StatusOK || body != "v2" {
		t.Fatalf("after Close: %d %q, want v2 serving", code, body)
	}
}

// probes counts the health checks every container has answered.
func (e *env) probes() int {
	e.docker.mu.Lock()
	defer e.docker.mu.Unlock()
	n := 0
	for _, c := range e.docker.ctrs {
		n += c.probes
	}
	return n
}
