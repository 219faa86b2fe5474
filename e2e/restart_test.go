package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
)

// A SIGKILL and a start under load: while switchyard is down, connections
// are refused (nobody listens); once it listens again, it answers from the
// adopted container at once: not one 503 "no app is running yet" while the
// app container ran the whole time, whose id and start time are unchanged.
func TestKillAndStartUnderLoad(t *testing.T) {
	st := newStack(t)
	v1 := st.config(appConfig(st.image("v1"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	before := st.waitHealthy(90 * time.Second).Active
	load := startOpenLoad(st.proxy+"/", 300)
	time.Sleep(time.Second)
	st.kill()
	st.start()
	time.Sleep(2 * time.Second)
	s := load.stop()
	logLoad(t, "SIGKILL and start (managed)", s)
	// Refused while nothing listened, and reset: the requests in flight
	// on the killed process, and those in its accept queue.
	if s.unavailable+s.otherStatus != 0 {
		t.Fatalf("%s: want no answer of 503 while the app container ran", s)
	}
	after := st.waitHealthy(10 * time.Second).Active
	if after.ID != before.ID || !after.Started.Equal(before.Started) {
		t.Fatalf("active %s started %v after the restart, want %s started %v unchanged", after.ID, after.Started, before.ID, before.Started)
	}
}

// SIGKILL while the old container drains (a slow request holds it): the
// switch is in the history; the CLI that ran deploy says the switch
// happened; the start-up stops and removes the old container, which the
// state file named as retiring, and adopts the new one.
func TestCrashInTheDrain(t *testing.T) {
	st := newStack(t)
	v1 := st.config(appConfig(st.image("v1"), ""))
	v2 := st.config(appConfig(st.image("v2"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	old := st.waitHealthy(90 * time.Second).Active.ID
	go st.get("/slow?ms=60000") // holds the drain
	deploy := exec.Command(st.bin, "deploy", v2)
	deploy.Env = append(os.Environ(), "SWITCHYARD_API="+st.apiAddr, "SWITCHYARD_API_TOKEN="+st.token)
	out, err := deploy.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	deploy.Stderr = &stderr
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	s := st.waitFor("the switch to v2", 90*time.Second, func(s api.StatusResponse) bool {
		return s.Active != nil && s.Active.ConfigID == v2
	})
	time.Sleep(300 * time.Millisecond) // in the drain now
	st.kill()
	st.start()
	deploy.Wait()
	if code := deploy.ProcessState.ExitCode(); code != 0 || !strings.Contains(stderr.String(), "switched to "+s.Active.ID[:12]+"; the API went away while the old container drained") {
		t.Fatalf("deploy exit %d:\n%s", code, stderr.String())
	}
	after := st.waitHealthy(30 * time.Second)
	if after.Active.ID != s.Active.ID {
		t.Fatalf("active after the restart %s, want %s", after.Active.ID, s.Active.ID)
	}
	var ids []string
	for _, c := range st.containers() {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{s.Active.ID}) {
		t.Fatalf("containers %v, want only the new one (the old %s was retiring)", ids, old[:12])
	}
	h := st.history()
	if !slices.Contains(h, "switch ok") || !slices.Contains(h, "retire ok") {
		t.Fatalf("history %v: want the switch and the old container's retirement", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, _ := st.client.History(ctx, 3)
	if len(ev) == 0 || ev[0].Action != "adopt" {
		t.Fatalf("history %+v", ev)
	}
}
