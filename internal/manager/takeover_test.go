package manager

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelock"
)

// One manager at a time: a second one on the same state directory refuses
// to start, naming the first; with TakeOver it serves the state file's
// active container at once, refuses operations with ErrUpgrading, and
// takes over (history included) once the first closes.
func TestOneManagerAtATime(t *testing.T) {
	e := newEnv(t)
	e.m = e.newManager(func(o *Options) { o.Holder = statelock.Holder{PID: 101, Version: "old"} })
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	active := e.deploy("v1").Active.ID

	second := e.newManager(func(o *Options) { o.Holder = statelock.Holder{PID: 102} })
	if err := second.Start(e.ctx); !errors.Is(err, statelock.ErrHeld) || !strings.Contains(err.Error(), "pid 101") {
		t.Fatalf("second manager without TakeOver: %v, want ErrHeld naming pid 101", err)
	}

	e.proxy.ClearTarget() // the successor's proxy starts empty
	next := e.newManager(func(o *Options) {
		o.Holder, o.TakeOver = statelock.Holder{PID: 103, Version: "new"}, 50*time.Millisecond
	})
	if err := next.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("the successor before it holds the lock: %d %q, want v1 served", code, body)
	}
	if _, err := next.Launch(context.Background(), e.configs["v2"], "ci"); !errors.Is(err, ErrUpgrading) || !strings.Contains(err.Error(), "pid 101") {
		t.Fatalf("an operation on the successor before it holds the lock: %v", err)
	}
	if st := next.Status(); st.Upgrade == "" || st.Active != nil {
		t.Fatalf("successor status while following: %+v", st)
	}
	time.Sleep(150 * time.Millisecond) // it keeps waiting past TakeOver
	e.deploy("v2")                     // the predecessor still runs deployments
	e.m.Close()
	waitFor(t, "the take-over", func() bool { return next.Status().Active != nil })
	st := next.Status()
	if st.Upgrade != "" || st.TookOverFrom == nil || st.TookOverFrom.PID != 101 || st.TookOverFrom.Version != "old" || st.Active.ID == active {
		t.Fatalf("successor status after the take-over: %+v", st)
	}
	if h := next.History(); h[0].Action != ActionAdopt || h[1].Action != ActionRetire || h[2].Action != ActionSwitch {
		t.Fatalf("history after the take-over does not continue the predecessor's: %v", h)
	}
	if _, err := next.Launch(context.Background(), e.configs["v1"], "ci"); err != nil {
		t.Fatalf("an operation after the take-over: %v", err)
	}
}

// Handover waits for the running operation, refuses new ones meanwhile
// and after, and gives them back on abort.
func TestHandover(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	e.docker.pullDelay = 300 * time.Millisecond
	e.docker.images["app:v3"] = true
	v3 := e.put(cfgJSON("app:v3", "v3", ""))
	launched := make(chan error, 1)
	go func() { _, err := e.m.Launch(context.Background(), v3, "ci"); launched <- err }()
	waitFor(t, "the launch", func() bool { return e.m.Status().Operation != "" })
	abort, err := e.m.Handover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-launched:
		if err != nil {
			t.Fatalf("the launch running when the upgrade began: %v, want it finished", err)
		}
	default:
		t.Fatal("Handover returned before the running launch ended")
	}
	if _, err := e.m.Switch(context.Background(), v3, "ci"); !errors.Is(err, ErrUpgrading) {
		t.Fatalf("switch during the handover: %v", err)
	}
	if _, err := e.m.Handover(context.Background()); !errors.Is(err, ErrUpgrading) {
		t.Fatalf("a second handover: %v", err)
	}
	abort()
	if _, err := e.m.Switch(context.Background(), v3, "ci"); err != nil {
		t.Fatalf("switch after the upgrade failed: %v", err)
	}
}
