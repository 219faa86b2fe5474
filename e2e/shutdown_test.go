package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/manager"
)

// SIGTERM while a launch waits for health checks that never pass: the API's
// graceful stop waits --shutdown-timeout for it, then the manager cancels
// it; the launch removes its container and is recorded, and only then is
// Docker let go. The active container keeps running and the next start
// adopts it.
func TestStopDuringLaunch(t *testing.T) {
	st := newStack(t)
	img := st.image("v1")
	v1 := st.config(appConfig(img, ""))
	never := st.config(strings.Replace(appConfig(img, `"env":{"NEVER_HEALTHY":"1"},`), `"start_timeout":"30s"`, `"start_timeout":"5m"`, 1))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.args = []string{"--shutdown-timeout", "1s"}
	st.start()
	active := activeID(st.waitHealthy(90 * time.Second))

	launched := make(chan error, 1)
	go func() { _, err := st.client.Launch(context.Background(), never); launched <- err }()
	deadline := time.Now().Add(60 * time.Second)
	for len(st.containers()) < 2 { // the new container runs, its health checks fail
		if time.Now().After(deadline) {
			t.Fatal("the launch did not start a container within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- st.cmd.Wait() }()
	select {
	case err := <-exited:
		// The API's requests outlasted --shutdown-timeout: exit 1, as for the proxy's.
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(st.logs.String(), "graceful stop") {
			t.Fatalf("exit %v, want 1 after a graceful stop that timed out", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("switchyard did not exit within 60s of SIGTERM")
	}
	if err := <-launched; err == nil {
		t.Fatal("the launch cut by the stop succeeded")
	}
	if cs := st.containers(); len(cs) != 1 || cs[0].ID != active || !cs[0].Running {
		t.Fatalf("containers after the stop: %+v, want only the active one, running", cs)
	}

	st.start()
	if got := activeID(st.waitHealthy(30 * time.Second)); got != active {
		t.Fatalf("after the restart the active container is %s, want %s adopted", got, active)
	}
	h, err := st.client.History(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h {
		if e.Action == manager.ActionLaunch {
			if e.Result != "error" || e.ConfigID != never || !strings.Contains(e.Error, "shutting down") {
				t.Fatalf("the last launch in the history: %+v, want it failed because switchyard was shutting down", e)
			}
			return
		}
	}
	t.Fatalf("no launch in the history: %+v", h)
}
