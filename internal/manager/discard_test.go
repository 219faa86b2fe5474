package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
)

// A launched container nobody switches to can be discarded; the active one
// cannot.
func TestDiscard(t *testing.T) {
	e := newEnv(t)
	r1 := e.deploy("v1")
	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Discard(context.Background(), r1.Active.ID, "ops"); !errors.Is(err, ErrUnknownContainer) {
		t.Fatalf("discard of the active container: %v, want ErrUnknownContainer", err)
	}
	got, err := e.m.Discard(context.Background(), info.ID[:12], "ops")
	if err != nil || got.ID != info.ID {
		t.Fatalf("discard: %+v %v", got, err)
	}
	if st := e.m.Status(); len(st.Launched) != 0 || st.Active.ID != r1.Active.ID {
		t.Fatalf("after the discard: %+v", st)
	}
	if run := e.docker.running(); len(run) != 1 || run[0] != r1.Active.ID {
		t.Fatalf("running %v, want the active container alone", run)
	}
	if h := e.m.History()[0]; h.Action != ActionDiscard || h.Who != "ops" || h.Container != info.ID || h.Result != resultOK {
		t.Fatalf("history %+v", h)
	}
}

// A launched container expires after the TTL (its expiry is in the launch's
// answer and /status); one switched to in time does not.
func TestLaunchedExpires(t *testing.T) {
	e := newEnv(t)
	e.start(func(o *Options) { o.LaunchedTTL = 300 * time.Millisecond })
	kept := e.deploy("v1")
	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	if info.ExpiresAt == nil || info.ExpiresAt.Before(time.Now()) || info.ExpiresAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("launch answer's expiry %v", info.ExpiresAt)
	}
	if st := e.m.Status(); len(st.Launched) != 1 || st.Launched[0].ExpiresAt == nil || st.Active.ExpiresAt != nil {
		t.Fatalf("status: launched %+v, active expiry %v", st.Launched, st.Active.ExpiresAt)
	}
	waitFor(t, "the launched container to expire", func() bool { return len(e.m.Status().Launched) == 0 })
	if run := e.docker.running(); len(run) != 1 || run[0] != kept.Active.ID {
		t.Fatalf("running %v, want the active container alone", run)
	}
	if h := e.m.History()[0]; h.Action != ActionExpire || h.Container != info.ID {
		t.Fatalf("history %+v", h)
	}
	time.Sleep(500 * time.Millisecond)
	if st := e.m.Status(); st.Active == nil || st.Active.ID != kept.Active.ID || !st.Healthy {
		t.Fatalf("the active container was touched: %+v", st.Active)
	}
}

// A launched container removed behind switchyard's back leaves /status; so
// does one removed while Docker's events were not heard (reconcile).
func TestRemovedLaunchedLeavesStatus(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.deploy("v1")
	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	e.docker.rmForce(info.ID)
	waitFor(t, "the removed container to leave /status", func() bool { return len(e.m.Status().Launched) == 0 })
	if h := e.m.History()[0]; h.Action != ActionRemoved || h.Container != info.ID {
		t.Fatalf("history %+v", h)
	}

	silent, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	e.docker.mu.Lock()
	delete(e.docker.ctrs, silent.ID) // gone without an event
	e.docker.mu.Unlock()
	e.m.reconcile(context.Background())
	if st := e.m.Status(); len(st.Launched) != 0 {
		t.Fatalf("launched after reconcile: %+v", st.Launched)
	}
}

// A container whose probes pass but that is not running (another process
// answered on its address, as the old version does on a host port) is
// not launched, and one that stopped since its launch is not switched to.
func TestNotRunningIsNeitherLaunchedNorSwitchedTo(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	e.docker.mu.Lock()
	e.docker.exitAfterProbe = true
	e.docker.mu.Unlock()
	_, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "the answers came from another process") {
		t.Fatalf("launch of a container that exited after its probe: %v", err)
	}
	e.docker.mu.Lock()
	e.docker.exitAfterProbe = false
	e.docker.mu.Unlock()

	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.docker.get(info.ID)
	e.docker.mu.Lock()
	c.running = false // exited; its event not (yet) heard
	e.docker.mu.Unlock()
	if _, err := e.m.Switch(context.Background(), info.ID, "ci"); !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "no longer running") {
		t.Fatalf("switch to a container that exited: %v", err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("v1 must keep serving: %d %q", code, body)
	}
}

// With a config cache, rollback works while the config source is down: the
// config it goes back to is read from the cache, checked by its hash.
func TestRollbackFromTheCache(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	src, err := deployconfig.Open(context.Background(), e.dir, deployconfig.OpenOptions{CacheDir: filepath.Join(e.state, "configs")})
	if err != nil {
		t.Fatal(err)
	}
	e.m = e.newManager(func(o *Options) { o.Source = src })
	e.deploy("v1")
	e.deploy("v2")
	if err := os.Chmod(e.dir, 0); err != nil { // the source is unreadable
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(e.dir, 0o755) })
	if os.Geteuid() == 0 {
		os.Rename(e.dir, e.dir+".gone") // root reads anything: take the directory away instead
		t.Cleanup(func() { os.Rename(e.dir+".gone", e.dir) })
	}
	res, err := e.m.Rollback(context.Background(), "oncall")
	if err != nil || res.Active.ConfigID != e.configs["v1"] {
		t.Fatalf("rollback with the source down: %+v %v", res, err)
	}
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the rollback: %d %q", code, body)
	}
}

// A host-network config whose port something already answers on is not
// started: its container could not bind the port, and the other process
// would pass its health checks.
func TestHostNetworkPortTaken(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	e.m = e.newManager(func(o *Options) { o.Policy.AllowHostNetwork = true })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	id := e.put(fmt.Sprintf(`{"image":"app:v1","port":%d,"network_mode":"host","health":{"interval":"100ms","start_timeout":"1s"}}`, port))
	created := len(e.docker.created)
	_, err = e.m.Launch(context.Background(), id, "ci")
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), fmt.Sprintf("port %d on the host network is taken", port)) {
		t.Fatalf("launch on a taken host port: %v", err)
	}
	if len(e.docker.created) != created {
		t.Fatal("a container was created")
	}
}
