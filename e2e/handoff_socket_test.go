package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
)

// A second switchyard started beside the running one (as a new container
// with the same state volume and the host's network would be) with
// --handoff-socket in the state directory: it receives the listening
// sockets over the unix socket, serves, and the old one stops. Under 300
// rps of open-loop load no request fails and no connection is refused; a
// 3 s request in flight on the old one is answered; the app container is
// not restarted.
func TestHandoffSocket(t *testing.T) {
	st := newStack(t)
	st.args = []string{"--handoff-socket", filepath.Join(st.stateDir, "handoff.sock"), "--shutdown-timeout", "8s"}
	v1 := st.config(appConfig(st.image("v1"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	first := st.cmd
	firstExited := reap(first)
	before := st.waitHealthy(90 * time.Second).Active

	load := startOpenLoad(st.proxy+"/", 300)
	slow := make(chan string, 1)
	go func() { code, body := st.get("/slow?ms=3000"); slow <- strconv.Itoa(code) + " " + body }()
	time.Sleep(time.Second)
	st.start() // the successor: same flags, same state directory
	waitExit(t, firstExited, 20*time.Second, "the old process did not stop")
	if got := <-slow; got != "200 v1" {
		t.Fatalf("the 3 s request in flight on the old process: %q", got)
	}
	load.stopNoneFailed(t, "hand-off over the unix socket, managed mode")
	after := st.waitFor("the take-over", 30*time.Second, func(s api.StatusResponse) bool { return s.TookOverFrom != nil })
	if after.Active.ID != before.ID || !after.Active.Started.Equal(before.Started) ||
		after.TookOverFrom.PID != first.Process.Pid || after.PID != st.cmd.Process.Pid {
		t.Fatalf("after the hand-off: %+v took over from %+v (old pid %d, new %d)", after.Active, after.TookOverFrom, first.Process.Pid, st.cmd.Process.Pid)
	}
	if h := st.history(); h[0] != "adopt ok" || h[1] != "upgrade ok" {
		t.Fatalf("history %v", h)
	}
}
