package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
)

// switchyardImage builds an image of switchyard stamped with version: the
// static binary on an empty base (the Dockerfile's runtime stage), tagged
// tag; it is removed when the test ends.
func switchyardImage(t *testing.T, tag, version string) {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+version, "-o", filepath.Join(dir, "switchyard"), "./cmd/switchyard")
	build.Dir, build.Env = "..", append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	df := "FROM scratch\nCOPY switchyard /switchyard\nENTRYPOINT [\"/switchyard\"]\nCMD [\"serve\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	dockerCLI(t, "build", "-q", "--label", "switchyard.e2e=upgrade", "-t", tag, dir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
}

// runSwitchyardContainer starts switchyard's container: the host's network
// (the hand-off passes listening sockets, which live in a network
// namespace), the Docker socket, the state directory as its volume.
func (st *stack) runSwitchyardContainer(t *testing.T, name, image string) {
	t.Helper()
	args := []string{"run", "-d", "--name", name, "--label", "switchyard.e2e=upgrade", "--network", "host", "--user", "0:0",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", st.stateDir + ":/state"}
	for _, kv := range st.s3.Env() {
		args = append(args, "-e", kv)
	}
	args = append(args, image, "serve", "--app", st.app, "--listen", st.listen, "--api", st.apiAddr, "--api-token", st.token,
		"--configs", "s3://"+st.bucket+"/"+st.prefix, "--s3-endpoint", st.s3.Endpoint, "--state-dir", "/state",
		"--handoff-socket", "/state/handoff.sock", "--shutdown-timeout", "8s", "--log-address", "off")
	dockerCLI(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "60", name).CombinedOutput()
			t.Logf("%s's log:\n%s", name, out)
		}
		exec.Command("docker", "rm", "-f", name).Run()
	})
}

// The container upgrade: switchyard's image A runs with the state
// directory as its volume; a container of image B started with the same
// volume and settings receives the listening sockets over the hand-off
// socket in the volume, takes over, and A's container exits. Under 300
// rps of open-loop load no request fails and no connection is refused;
// the app container is not restarted.
func TestContainerUpgrade(t *testing.T) {
	st := newStack(t)
	imgA, imgB := "switchyard-e2e-upgrade:a-"+st.app, "switchyard-e2e-upgrade:b-"+st.app
	switchyardImage(t, imgA, "e2e-a")
	switchyardImage(t, imgB, "e2e-b")
	v1 := st.config(appConfig(st.image("v1"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	nameA, nameB := "sy-e2e-a-"+st.app, "sy-e2e-b-"+st.app
	st.runSwitchyardContainer(t, nameA, imgA)
	before := st.waitHealthy(90 * time.Second)
	if before.Version != "e2e-a" {
		t.Fatalf("version before: %q", before.Version)
	}

	load := startOpenLoad(st.proxy+"/", 300)
	slow := make(chan string, 1)
	go func() { code, body := st.get("/slow?ms=3000"); slow <- strconv.Itoa(code) + " " + body }()
	time.Sleep(time.Second)
	st.runSwitchyardContainer(t, nameB, imgB)
	exited := make(chan string, 1)
	go func() {
		out, err := exec.Command("docker", "wait", nameA).CombinedOutput()
		exited <- fmt.Sprintf("%s %v", strings.TrimSpace(string(out)), err)
	}()
	select {
	case got := <-exited:
		if !strings.HasPrefix(got, "0 ") {
			t.Fatalf("container A's exit: %s", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("container A did not stop")
	}
	if got := <-slow; got != "200 v1" {
		t.Fatalf("the 3 s request in flight on A: %q", got)
	}
	load.stopNoneFailed(t, "container upgrade A → B (host network, hand-off socket)")
	after := st.waitFor("B to take over", 30*time.Second, func(s api.StatusResponse) bool { return s.TookOverFrom != nil })
	if after.Version != "e2e-b" || after.TookOverFrom.Version != "e2e-a" || after.Active.ID != before.Active.ID ||
		!after.Active.Started.Equal(before.Active.Started) {
		t.Fatalf("after the upgrade: version %q, took over from %+v, active %+v (before %+v)", after.Version, after.TookOverFrom, after.Active, before.Active)
	}
}
