package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/handoff"
	"github.com/switchyard/switchyard/internal/testservers"
)

// privateBinary copies the switchyard binary where a test may replace it:
// an upgrade starts the binary on disk, at the path it was started from.
func privateBinary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(switchyardBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "switchyard")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceBinary puts body (a script) or the real binary (body "") at path,
// by rename: the running process's file stays as it was.
func replaceBinary(t *testing.T, path, body string) {
	t.Helper()
	var b []byte
	if body == "" {
		var err error
		if b, err = os.ReadFile(switchyardBinary(t)); err != nil {
			t.Fatal(err)
		}
	} else {
		b = []byte(body)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// alive says whether pid runs (and is no zombie of ours).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// servingPID is the pid the pid file names.
func servingPID(t *testing.T, pidFile string) int {
	t.Helper()
	pid, err := handoff.ReadPIDFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// stopServing stops whatever process the pid file names at the end of the
// test (an upgrade's successor is no child of the test).
func stopServing(t *testing.T, pidFile string) {
	t.Cleanup(func() {
		pid, err := handoff.ReadPIDFile(pidFile)
		if err != nil {
			return
		}
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(20 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// reap waits for a started process to exit, without exec.Cmd.Wait (which
// would also wait for the successor, which shares its output pipe).
// waitExit fails the test with msg unless done closes within d.
func waitExit(t *testing.T, done <-chan struct{}, d time.Duration, msg string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

func reap(cmd *exec.Cmd) <-chan struct{} {
	done := make(chan struct{})
	go func() { cmd.Process.Wait(); close(done) }()
	return done
}

// upgradeUpstream is a static upstream: "/" answers ok, /slow?ms=N after N
// ms, /ws greets with "hello" and echoes each message prefixed "echo:".
func upgradeUpstream(t *testing.T) string {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			fmt.Fprint(w, "slow done")
		case "/ws":
			wsEcho(w, r)
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(app.Close)
	return app.Listener.Addr().String()
}

func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	ctx := r.Context()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, append([]byte("echo:"), msg...)); err != nil {
			return
		}
	}
}

// Upgrade with a static upstream under 300 rps of open-loop load: no
// request fails, no connection is refused; a 3 s request in flight on the
// old process is answered; a WebSocket opened before keeps echoing until
// the old process's shutdown timeout; the old process exits and the pid
// file names the new one.
func TestUpgradeStatic(t *testing.T) {
	bin := privateBinary(t)
	upstream := upgradeUpstream(t)
	addr, dir := testservers.FreeAddr(t), t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	out := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--pid-file", pidFile, "--shutdown-timeout", "4s",
		"--log-address", "off", "--upstream", upstream, "--workers", "64")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopServing(t, pidFile)
	defer func() {
		if t.Failed() {
			t.Logf("switchyard output:\n%s", tail(out.String(), 8000))
		}
	}()
	oldExited := reap(cmd)
	waitAnswer(t, "http://"+addr+"/")
	old := servingPID(t, pidFile)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("websocket greeting: %q %v", msg, err)
	}
	load := startOpenLoad("http://"+addr+"/", 300)
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow?ms=3000")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- strconv.Itoa(resp.StatusCode) + " " + string(b)
	}()
	time.Sleep(time.Second)
	upgraded := time.Now()
	up := exec.Command(bin, "upgrade", "--pid-file", pidFile)
	if b, err := up.CombinedOutput(); err != nil {
		t.Fatalf("switchyard upgrade: %v\n%s", err, b)
	}
	echoes, lastEcho := 0, time.Duration(0)
	for i := 0; ; i++ {
		if err := conn.Write(ctx, websocket.MessageText, []byte("m"+strconv.Itoa(i))); err != nil {
			break
		}
		if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "echo:m"+strconv.Itoa(i) {
			break
		}
		echoes, lastEcho = echoes+1, time.Since(upgraded)
		time.Sleep(100 * time.Millisecond)
	}
	if got := <-slow; got != "200 slow done" {
		t.Fatalf("the 3 s request in flight on the old process: %q", got)
	}
	waitExit(t, oldExited, 10*time.Second, "the old process did not exit")
	t.Logf("websocket: %d echoes, the last %v after the upgrade began (old process's shutdown timeout 4s)", echoes, lastEcho.Round(time.Millisecond))
	load.stopNoneFailed(t, "upgrade, static upstream")
	if lastEcho < 3*time.Second || lastEcho > 6*time.Second {
		t.Fatalf("the websocket echoed until %v after the upgrade, want until the old process's shutdown timeout (4s)", lastEcho)
	}
	if now := servingPID(t, pidFile); now == old || !alive(now) {
		t.Fatalf("pid file names %d (old %d)", now, old)
	}
}

// waitAnswer waits until url answers.
func waitAnswer(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Upgrade in managed mode under 300 rps: no request fails and no
// connection is refused; a 3 s request in flight on the old process is
// answered; the app container is not restarted; /status says whom the new
// process took over from; the history continues. Then a new binary that
// exits at once and one that never gets ready: the old process serves on,
// `switchyard upgrade` fails saying why, the history records it. Then two
// upgrades back to back, the second during a deploy, which finishes.
func TestUpgradeManaged(t *testing.T) {
	st := newStack(t)
	st.serveBin = privateBinary(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	st.args = []string{"--pid-file", pidFile, "--shutdown-timeout", "8s", "--upgrade-timeout", "5s"}
	v1 := st.config(appConfig(st.image("v1"), ""))
	v2 := st.config(appConfig(st.image("v2"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	stopServing(t, pidFile)
	oldExited := reap(st.cmd)
	before := st.waitHealthy(90 * time.Second).Active
	old := servingPID(t, pidFile)

	load := startOpenLoad(st.proxy+"/", 300)
	slow := make(chan string, 1)
	go func() { code, body := st.get("/slow?ms=3000"); slow <- strconv.Itoa(code) + " " + body }()
	time.Sleep(time.Second)
	if code, out, errOut := st.cli("upgrade"); code != 0 || !strings.Contains(out, "took over from pid "+strconv.Itoa(old)) {
		t.Fatalf("switchyard upgrade: exit %d\n%s%s", code, out, errOut)
	}
	if got := <-slow; got != "200 v1" {
		t.Fatalf("the 3 s request in flight on the old process: %q", got)
	}
	waitExit(t, oldExited, 15*time.Second, "the old process did not exit")
	load.stopNoneFailed(t, "upgrade, managed mode")
	after := st.waitFor("the new process to take over", 30*time.Second, func(s api.StatusResponse) bool { return s.TookOverFrom != nil })
	now := servingPID(t, pidFile)
	if after.Active.ID != before.ID || !after.Active.Started.Equal(before.Started) || after.TookOverFrom.PID != old || after.PID != now || now == old {
		t.Fatalf("after the upgrade: active %s started %v (before %s %v), took over from %+v, pid %d (pid file %d, old %d)",
			after.Active.ID, after.Active.Started, before.ID, before.Started, after.TookOverFrom, after.PID, now, old)
	}
	if h := st.history(); h[0] != "adopt ok" || h[1] != "upgrade ok" {
		t.Fatalf("history %v: want the upgrade, then the new process's adoption", h)
	}

	upgradeFails(t, st, pidFile, "#!/bin/sh\nexit 3\n", "exited")
	upgradeFails(t, st, pidFile, "#!/bin/sh\nexec sleep 600\n", "timed out")
	replaceBinary(t, st.serveBin, "")

	// Back to back, the second during a deploy: the launch running when
	// it begins finishes first, the deploy's switch is answered by the new
	// process once it took over.
	if code, out, errOut := st.cli("upgrade"); code != 0 {
		t.Fatalf("first of two upgrades: exit %d\n%s%s", code, out, errOut)
	}
	deploy := make(chan string, 1)
	go func() {
		code, out, errOut := st.cli("deploy", v2)
		deploy <- fmt.Sprintf("exit %d\n%s%s", code, out, errOut)
	}()
	st.waitFor("the deploy's launch", 30*time.Second, func(s api.StatusResponse) bool { return s.Operation != "" })
	if code, out, errOut := st.cli("upgrade"); code != 0 {
		t.Fatalf("second upgrade, during a deploy: exit %d\n%s%s", code, out, errOut)
	}
	if got := <-deploy; !strings.HasPrefix(got, "exit 0") {
		t.Fatalf("deploy during the upgrade: %s", got)
	}
	final := st.waitFor("v2 active", 30*time.Second, func(s api.StatusResponse) bool {
		return s.Active != nil && s.Active.ConfigID == v2 && s.TookOverFrom != nil && s.Upgrade == ""
	})
	if cs := st.containers(); len(cs) != 1 || cs[0].ID != final.Active.ID {
		t.Fatalf("containers after the deploy across the upgrade: %+v", cs)
	}
}

// upgradeFails replaces the binary with script and checks that an upgrade
// to it fails saying why (want), that the old process serves on without
// a failed request, and that the history records the failure.
func upgradeFails(t *testing.T, st *stack, pidFile, script, want string) {
	t.Helper()
	replaceBinary(t, st.serveBin, script)
	serving := servingPID(t, pidFile)
	load := startOpenLoad(st.proxy+"/", 300)
	code, out, errOut := st.cli("upgrade")
	time.Sleep(500 * time.Millisecond)
	s := load.stop()
	logLoad(t, "failed upgrade ("+want+")", s)
	if code == 0 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "serves on") {
		t.Fatalf("upgrade to a binary that %s: exit %d\n%s%s", want, code, out, errOut)
	}
	if s.failed() != 0 || servingPID(t, pidFile) != serving || !alive(serving) {
		t.Fatalf("%s; pid file %d, want %d serving on", s, servingPID(t, pidFile), serving)
	}
	if h := st.history(); h[0] != "upgrade error" {
		t.Fatalf("history %v: want the failed upgrade first", h)
	}
	if code, body := st.get("/"); code != 200 || body == "" {
		t.Fatalf("after the failed upgrade: %d %q", code, body)
	}
}
