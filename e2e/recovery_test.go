package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/manager"
)

// dockerCLI runs the docker command, as an operator would behind
// switchyard's back.
func dockerCLI(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func (st *stack) waitFor(what string, timeout time.Duration, cond func(api.StatusResponse) bool) api.StatusResponse {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := st.status()
		if err == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("%s: not within %v (last status %+v, err %v)", what, timeout, s.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// history is the deployment history, newest first, as "action result".
func (st *stack) history() []string {
	st.t.Helper()
	h, err := st.client.History(context.Background(), 0)
	if err != nil {
		st.t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, string(e.Action)+" "+e.Result)
	}
	return out
}

// A dead active container comes back by itself: `docker kill` → Docker's
// event → requests wait in the queue while switchyard starts the same
// container again (on a new published port) and points the proxy at it.
// One removed with `docker rm -f` is replaced by a new container of its
// config.
func TestActiveContainerComesBack(t *testing.T) {
	st := newStack(t)
	v1 := st.config(appConfig(st.image("v1"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	first := st.waitHealthy(90 * time.Second).Active

	dockerCLI(t, "kill", first.ID)
	st.waitFor("the restart to begin", 30*time.Second, func(s api.StatusResponse) bool {
		return s.Restart != nil && s.Restart.State == manager.RestartRunning
	})
	// The container is down: this request waits in the queue for it.
	if code, body := st.get("/"); code != 200 || body != "v1" {
		t.Fatalf("a request while the container was brought back: %d %q, want v1's 200", code, body)
	}
	s := st.waitHealthy(30 * time.Second)
	if s.Active.ID != first.ID || s.Active.Addr == first.Addr || s.Restart != nil {
		t.Fatalf("after the restart: %+v, want %s again on a new address (was %s)", s.Active, first.ID[:12], first.Addr)
	}
	if h := st.history(); h[0] != "restart ok" || h[1] != "died error" {
		t.Fatalf("history %v, want died then restart ok", h)
	}

	dockerCLI(t, "rm", "-f", first.ID)
	s = st.waitFor("a relaunched container", 60*time.Second, func(s api.StatusResponse) bool {
		return s.Healthy && s.Active != nil && s.Active.ID != first.ID
	})
	if s.Active.ConfigID != v1 {
		t.Fatalf("relaunched config %s, want v1's %s", s.Active.ConfigID, v1)
	}
	if code, body := st.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the relaunch: %d %q", code, body)
	}
	if cs := st.containers(); len(cs) != 1 || cs[0].ID != s.Active.ID {
		t.Fatalf("containers %+v, want the relaunched one alone", cs)
	}
}

// A container that crashes every time it is started again: switchyard gives
// up after the configured tries, says so in /status, the history and
// /metrics, and the proxy answers 502 at once. A deploy brings the app back.
func TestCrashLoopGivesUp(t *testing.T) {
	st := newStack(t)
	img := st.image("v1")
	crashy := st.config(appConfig(img, `"env":{"CRASH_ON_RESTART":"1"},`))
	good := st.config(appConfig(img, `"env":{"X":"1"},`))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(crashy))
	st.args = []string{"--restart-attempts", "2"}
	st.start()
	active := st.waitHealthy(90 * time.Second).Active.ID

	dockerCLI(t, "kill", active)
	s := st.waitFor("switchyard to give up", 60*time.Second, func(s api.StatusResponse) bool {
		return s.Restart != nil && s.Restart.State == manager.RestartGaveUp
	})
	if s.Healthy || s.Restart.Attempts != 2 || !strings.Contains(s.Restart.LastError, "exit") {
		t.Fatalf("status after giving up: healthy %v, restart %+v", s.Healthy, s.Restart)
	}
	if code, body := st.get("/"); code != 502 {
		t.Fatalf("request after giving up: %d %q, want 502", code, body)
	}
	if h := st.history(); h[0] != "restart error" {
		t.Fatalf("history %v, want the giving up first", h)
	}
	code, metrics := st.call("GET", "/metrics", "")
	if code != 200 || !strings.Contains(metrics, `switchyard_active_restart_state{state="gave_up"} 1`) ||
		!strings.Contains(metrics, `switchyard_deployments_total{action="restart",result="error"} 3`) {
		t.Fatalf("/metrics (%d) lacks the crash loop:\n%s", code, metrics)
	}
	if c, out, errOut := st.cli("deploy", good); c != 0 {
		t.Fatalf("deploy after the crash loop: exit %d\n%s%s", c, out, errOut)
	}
	if s := st.waitHealthy(30 * time.Second); s.Restart != nil || s.Active.ConfigID != good {
		t.Fatalf("after the deploy: %+v, restart %+v", s.Active, s.Restart)
	}
}

// No stray containers: a launched container is discarded, leaves /status
// when removed behind switchyard's back, and expires; Ctrl-C in deploy and
// `switchyard cancel` end a launch and remove its container.
func TestNoStrayContainers(t *testing.T) {
	st := newStack(t)
	img := st.image("v1")
	v1 := st.config(appConfig(img, ""))
	v2 := st.config(appConfig(img, `"env":{"X":"2"},`))
	never := st.config(strings.Replace(appConfig(img, `"env":{"NEVER_HEALTHY":"1"},`), `"start_timeout":"30s"`, `"start_timeout":"5m"`, 1))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	active := st.waitHealthy(90 * time.Second).Active.ID
	ctx := context.Background()
	onlyActive := func(when string) {
		t.Helper()
		if cs := st.containers(); len(cs) != 1 || cs[0].ID != active {
			t.Fatalf("%s: containers %+v, want the active one alone", when, cs)
		}
	}

	info, err := st.client.Launch(ctx, v2)
	if err != nil || info.ExpiresAt == nil {
		t.Fatalf("launch: %+v %v", info, err)
	}
	if c, out, errOut := st.cli("discard", info.ID[:12]); c != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("discard: exit %d\n%s%s", c, out, errOut)
	}
	onlyActive("after the discard")

	info, err = st.client.Launch(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	dockerCLI(t, "rm", "-f", info.ID)
	st.waitFor("the removed container to leave /status", 10*time.Second, func(s api.StatusResponse) bool { return len(s.Launched) == 0 })

	// Ctrl-C during deploy's launch.
	cmd := exec.Command(st.bin, "deploy", never)
	cmd.Env = append(cmd.Environ(), "SWITCHYARD_API="+st.apiAddr, "SWITCHYARD_API_TOKEN="+st.token)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); len(st.containers()) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the launch did not start a container")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(errOut.String(), "was cancelled and its container removed") {
		t.Fatalf("deploy interrupted: %v\n%s", err, errOut.String())
	}
	onlyActive("after Ctrl-C in deploy")

	// switchyard cancel.
	launched := make(chan error, 1)
	go func() { _, err := st.client.Launch(ctx, never); launched <- err }()
	for deadline := time.Now().Add(60 * time.Second); len(st.containers()) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the launch did not start a container")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c, out, e := st.cli("cancel"); c != 0 || !strings.Contains(out, "cancelled launch") {
		t.Fatalf("cancel: exit %d\n%s%s", c, out, e)
	}
	if err := <-launched; err == nil || !strings.Contains(err.Error(), "cancelled by e2e-ci") {
		t.Fatalf("the cancelled launch answered %v", err)
	}
	onlyActive("after cancel")

	// Expiry: restart switchyard with a short TTL.
	st.cmd.Process.Signal(syscall.SIGINT)
	st.cmd.Wait()
	st.args = []string{"--launched-ttl", "2s"}
	st.start()
	if _, err := st.client.Launch(ctx, v2); err != nil {
		t.Fatal(err)
	}
	st.waitFor("the launched container to expire", 30*time.Second, func(s api.StatusResponse) bool { return len(s.Launched) == 0 })
	onlyActive("after the expiry")
	if h := st.history(); h[0] != "expire ok" {
		t.Fatalf("history %v, want the expiry first", h)
	}
}

// With S3 down, and then hung, rollback still works: the configs it goes
// back to come from the cache in the state directory, checked by their
// hash, without waiting for S3.
func TestRollbackWithoutS3(t *testing.T) {
	st := newStack(t)
	v1 := st.config(appConfig(st.image("v1"), ""))
	v2 := st.config(appConfig(st.image("v2"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	st.waitHealthy(90 * time.Second)
	if c, out, errOut := st.cli("deploy", v2); c != 0 {
		t.Fatalf("deploy v2: exit %d\n%s%s", c, out, errOut)
	}
	st.s3.Stop()
	if c, out, errOut := st.cli("rollback"); c != 0 {
		t.Fatalf("rollback with S3 down: exit %d\n%s%s", c, out, errOut)
	}
	if code, body := st.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the rollback: %d %q", code, body)
	}

	// A hung S3: it accepts connections and never answers. A rollback that
	// asked it would wait out its 30 s timeout; the client gives up at 20 s.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() { hung.Close(); <-accepted }()
	st.cmd.Process.Signal(syscall.SIGINT)
	st.cmd.Wait()
	st.args = []string{"--s3-endpoint", "http://" + hung.Addr().String()}
	st.start()
	st.waitHealthy(30 * time.Second)
	if c, out, errOut := st.cli("rollback", "--timeout", "20s"); c != 0 {
		t.Fatalf("rollback with S3 hung: exit %d\n%s%s", c, out, errOut)
	}
	if code, body := st.get("/"); code != 200 || body != "v2" {
		t.Fatalf("after the second rollback: %d %q", code, body)
	}
}

// A second launch of a host-network config whose port the active container
// holds: the new container cannot bind it and exits, while the old one
// answers the probes on that port. The launch fails instead of reporting
// it healthy, and the active container serves on.
func TestHostNetworkSecondLaunch(t *testing.T) {
	st := newStack(t)
	img := st.image("v1")
	port := freePort(t)
	hostCfg := func(x string) string {
		return strings.Replace(appConfig(img, fmt.Sprintf(`"network_mode":"host","env":{"HOST":"127.0.0.1","PORT":"%d","X":"%s"},`, port, x)),
			`"port":8080`, fmt.Sprintf(`"port":%d`, port), 1)
	}
	v1, v2 := st.config(hostCfg("1")), st.config(hostCfg("2"))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.args = []string{"--allow-host-network"}
	st.start()
	active := st.waitHealthy(90 * time.Second).Active.ID

	_, err := st.client.Launch(context.Background(), v2)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Kind != api.KindUnhealthy || !strings.Contains(ae.Message, "host network") {
		t.Fatalf("second host-network launch: %v, want unhealthy naming the host network", err)
	}
	if s := st.waitHealthy(10 * time.Second); s.Active.ID != active || len(s.Launched) != 0 {
		t.Fatalf("after the refused launch: %+v, launched %v", s.Active, s.Launched)
	}
	if cs := st.containers(); len(cs) != 1 {
		t.Fatalf("containers %+v, want the active one alone", cs)
	}
}

// freePort is a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
