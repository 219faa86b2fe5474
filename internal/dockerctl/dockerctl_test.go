package dockerctl_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/testservers"
)

// These tests run against the real Docker daemon, a real registry and the
// real test app image (see internal/testservers).

const appPort = 8080

// newClient connects to the daemon of the environment, or reports it missing.
func newClient(t *testing.T) *dockerctl.Client {
	t.Helper()
	c, err := dockerctl.New(context.Background())
	if err != nil {
		testservers.Missing(t, "docker daemon", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// uniqueName names test containers, images and networks so that runs in
// parallel or leftovers of a crashed run never collide.
func uniqueName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "switchyard-test-" + hex.EncodeToString(b)
}

// testCtx bounds each test's Docker calls.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create creates a container from s and removes it when the test ends,
// whatever happened.
func create(t *testing.T, c *dockerctl.Client, s dockerctl.Spec) string {
	t.Helper()
	id, err := c.Create(testCtx(t), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Remove(ctx, id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return id
}

// localImage builds the test app into a local image (no registry) for tests
// that are not about pulling.
func localImage(t *testing.T, version string) string {
	tag := uniqueName(t) + ":" + version
	testservers.BuildTestApp(t, tag, version)
	return tag
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func TestLifecycle(t *testing.T) {
	c := newClient(t)
	reg := testservers.StartRegistry(t)
	name := uniqueName(t)
	ref := reg.Ref(name + ":v1")
	testservers.BuildTestApp(t, ref, "v1")
	testservers.PushImage(t, ref)
	testservers.RemoveLocalImage(t, ref)
	// The deadline starts after the set-up: building the image on a cold
	// machine must not eat the time the pull has.
	ctx := testCtx(t)

	var mu sync.Mutex
	var progress []string
	record := func(line string) { mu.Lock(); progress = append(progress, line); mu.Unlock() }
	if err := c.EnsureImage(ctx, ref, record); err != nil {
		t.Fatalf("EnsureImage (pull): %v", err)
	}
	if len(progress) == 0 || !strings.Contains(strings.Join(progress, "\n"), "Status:") {
		t.Errorf("EnsureImage progress = %q, want status lines ending with a Status: line", progress)
	}
	t.Logf("pull progress: %q", progress)
	progress = nil
	if err := c.EnsureImage(ctx, ref, record); err != nil || len(progress) != 0 {
		t.Errorf("EnsureImage of a present image = %v with progress %q, want nil and no pull", err, progress)
	}

	labels := map[string]string{"switchyard.app": name, "switchyard.config": "abc123"}
	id := create(t, c, dockerctl.Spec{
		Name:        name,
		Image:       ref,
		Env:         []string{"GREETING=hello there"},
		Labels:      labels,
		Port:        appPort,
		MemoryBytes: 64 << 20,
		NanoCPUs:    500_000_000,
		PidsLimit:   64,
		StopSignal:  "SIGTERM",
		StopTimeout: 1500 * time.Millisecond,
	})
	checkDaemonConfig(t, id)

	if ct, err := c.Inspect(ctx, id); err != nil || ct.State != "created" || ct.Running || ct.Addr != "" {
		t.Fatalf("Inspect before start = %+v, %v; want created, not running, no Addr", ct, err)
	}
	if err := c.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ct, err := c.Inspect(ctx, id)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if ct.ID != id || ct.Name != name || ct.Image != ref || !ct.Running || ct.State != "running" {
		t.Errorf("Inspect = %+v, want id %s name %s image %s running", ct, id, name, ref)
	}
	for k, v := range labels {
		if ct.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, ct.Labels[k], v)
		}
	}
	if ct.Labels[dockerctl.LabelPort] != "8080" {
		t.Errorf("label %s = %q, want 8080", dockerctl.LabelPort, ct.Labels[dockerctl.LabelPort])
	}
	if !strings.HasPrefix(ct.Addr, "127.0.0.1:") || ct.StartedAt.IsZero() || ct.Created.IsZero() {
		t.Fatalf("Inspect Addr %q StartedAt %v Created %v, want 127.0.0.1:<port> and times", ct.Addr, ct.StartedAt, ct.Created)
	}
	if err := testservers.WaitHTTP(ctx, "http://"+ct.Addr+"/healthcheck", 200, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := get(t, "http://"+ct.Addr+"/"); got != "v1\n" {
		t.Errorf("GET / = %q, want v1", got)
	}
	if got := get(t, "http://"+ct.Addr+"/env?k=GREETING"); got != "hello there" {
		t.Errorf("GET /env?k=GREETING = %q, want the Spec's env", got)
	}

	list, err := c.List(ctx, map[string]string{"switchyard.app": name})
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Addr != ct.Addr {
		t.Errorf("List by label = %+v, %v; want just %s", list, err, id)
	}
	if list, err := c.List(ctx, map[string]string{"switchyard.app": name, "switchyard.config": "other"}); err != nil || len(list) != 0 {
		t.Errorf("List with a label that does not match = %+v, %v; want none", list, err)
	}

	logs, err := c.Logs(ctx, id, 10)
	if err != nil || !strings.Contains(logs, "testapp v1 listening on :8080") {
		t.Errorf("Logs = %q, %v; want the start line", logs, err)
	}

	ectx, stopEvents := context.WithCancel(ctx)
	events, errs := c.Events(ectx, map[string]string{"switchyard.app": name})
	start := time.Now()
	if err := c.Stop(ctx, id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop of an app that exits on SIGTERM took %v", d)
	}
	die := waitEvent(t, events, errs, "die")
	if die.ContainerID != id || die.ExitCode != 0 || die.Labels["switchyard.app"] != name || die.Name != name || die.Time.IsZero() {
		t.Errorf("die event = %+v, want container %s, exit code 0, its labels", die, id)
	}
	stopEvents()
	for range events { // closed once ctx ends
	}
	if err, ok := <-errs; ok {
		t.Errorf("Events error after ctx ended = %v, want none", err)
	}

	ct, err = c.Inspect(ctx, id)
	if err != nil || ct.Running || ct.State != "exited" || ct.ExitCode != 0 || ct.Addr != "" || ct.FinishedAt.IsZero() {
		t.Errorf("Inspect after Stop = %+v, %v; want exited with 0, no Addr", ct, err)
	}
	if logs, _ := c.Logs(ctx, id, 0); !strings.Contains(logs, "stopped after serving") {
		t.Errorf("Logs after stop = %q, want the graceful shutdown line", logs)
	}
	if err := c.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("Stop of a stopped container: %v", err)
	}

	if err := c.Remove(ctx, id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := c.Remove(ctx, id); err != nil {
		t.Errorf("Remove again: %v", err)
	}
	if _, err := c.Inspect(ctx, id); !errors.Is(err, dockerctl.ErrNotFound) {
		t.Errorf("Inspect after Remove = %v, want ErrNotFound", err)
	}
}

// checkDaemonConfig reads the container back with the raw client to check
// that the Spec's limits and stop settings reached the daemon.
func checkDaemonConfig(t *testing.T, id string) {
	t.Helper()
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	res, err := api.ContainerInspect(testCtx(t), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Container
	if r.HostConfig.Memory != 64<<20 || r.HostConfig.NanoCPUs != 500_000_000 || r.HostConfig.PidsLimit == nil || *r.HostConfig.PidsLimit != 64 {
		t.Errorf("memory %d, cpus %d, pids %v; want 64 MiB, 0.5 CPU and 64 processes", r.HostConfig.Memory, r.HostConfig.NanoCPUs, r.HostConfig.PidsLimit)
	}
	if r.Config.StopSignal != "SIGTERM" || r.Config.StopTimeout == nil || *r.Config.StopTimeout != 2 {
		t.Errorf("stop signal %q timeout %v; want SIGTERM and 2 s (1.5 s rounded up)", r.Config.StopSignal, r.Config.StopTimeout)
	}
	b := r.HostConfig.PortBindings[network.MustParsePort("8080/tcp")]
	if len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" {
		t.Errorf("port bindings %+v; want 8080/tcp on 127.0.0.1 only", r.HostConfig.PortBindings)
	}
	if r.HostConfig.Privileged || r.HostConfig.RestartPolicy.Name != "" && r.HostConfig.RestartPolicy.Name != "no" {
		t.Errorf("privileged %v restart %q; want neither", r.HostConfig.Privileged, r.HostConfig.RestartPolicy.Name)
	}
}

func waitEvent(t *testing.T, events <-chan dockerctl.Event, errs <-chan error, action string) dockerctl.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	var seen []string
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("events closed before %q (seen %q): %v", action, seen, <-errs)
			}
			seen = append(seen, e.Action)
			if e.Action == action {
				return e
			}
		case <-timeout:
			t.Fatalf("no %q event within 15 s (seen %q)", action, seen)
		}
	}
}

func TestStopSignalAndTimeout(t *testing.T) {
	c := newClient(t)
	img := localImage(t, "v1")
	tests := []struct {
		name        string
		signal      string
		stopTimeout time.Duration // Spec.StopTimeout
		timeout     time.Duration // Stop's argument
		wantCode    int
	}{
		{name: "graceful on SIGTERM", signal: "SIGTERM", wantCode: 0},
		// The app ignores SIGWINCH, so only the SIGKILL after the timeout stops it.
		{name: "killed after the container's timeout", signal: "SIGWINCH", stopTimeout: time.Second, wantCode: 137},
		{name: "killed after Stop's timeout", signal: "SIGWINCH", stopTimeout: time.Minute, timeout: time.Second, wantCode: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			id := create(t, c, dockerctl.Spec{Name: uniqueName(t), Image: img, Port: appPort, StopSignal: tt.signal, StopTimeout: tt.stopTimeout})
			if err := c.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			ct, err := c.Inspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// Stop only once the app has installed its signal handler.
			if err := testservers.WaitHTTP(ctx, "http://"+ct.Addr+"/healthcheck", 200, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := c.Stop(ctx, id, tt.timeout); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("Stop took %v", d)
			}
			if ct, err := c.Inspect(ctx, id); err != nil || ct.Running || ct.ExitCode != tt.wantCode {
				t.Errorf("after Stop: running %v exit code %d (%v); want stopped with %d", ct.Running, ct.ExitCode, err, tt.wantCode)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	img := localImage(t, "v2")
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	netName := uniqueName(t)
	if _, err := api.NetworkCreate(ctx, netName, client.NetworkCreateOptions{}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	// Registered before the container's cleanup, so it runs after it.
	t.Cleanup(func() {
		if _, err := api.NetworkRemove(context.Background(), netName, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("cleanup: remove network %s: %v", netName, err)
		}
	})
	name := uniqueName(t)
	id := create(t, c, dockerctl.Spec{Name: name, Image: img, Port: appPort, Network: netName})
	if err := c.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	ct, err := c.Inspect(ctx, id)
	if err != nil || ct.Addr != name+":8080" {
		t.Fatalf("Inspect on a network: Addr %q, %v; want %s:8080", ct.Addr, err, name)
	}
	res, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Container
	ep := r.NetworkSettings.Networks[netName]
	if ep == nil || len(r.NetworkSettings.Ports[network.MustParsePort("8080/tcp")]) != 0 {
		t.Fatalf("networks %v, published %v; want joined to %s and nothing published", r.NetworkSettings.Networks, r.NetworkSettings.Ports, netName)
	}
	// The host reaches a bridge network's containers by IP, which stands in
	// for a switchyard container resolving the name on the same network.
	if err := testservers.WaitHTTP(ctx, "http://"+ep.IPAddress.String()+":8080/", 200, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := get(t, "http://"+ep.IPAddress.String()+":8080/"); got != "v2\n" {
		t.Errorf("GET / = %q, want v2", got)
	}
}

func TestCreateInvalidSpec(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		name    string
		spec    dockerctl.Spec
		wantErr string
	}{
		{name: "no name", spec: dockerctl.Spec{Image: "x:v1"}, wantErr: "name and image are required"},
		{name: "no image", spec: dockerctl.Spec{Name: "x"}, wantErr: "name and image are required"},
		{name: "network and mode conflict", spec: dockerctl.Spec{Name: "x", Image: "x:v1", Network: "a", NetworkMode: "host"}, wantErr: "conflict"},
		{name: "image not present", spec: dockerctl.Spec{Name: uniqueName(t), Image: uniqueName(t) + ":v1"}, wantErr: "from switchyard-test-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.Create(testCtx(t), tt.spec)
			if err == nil {
				c.Remove(context.Background(), id)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Create(%+v) = %v, want error containing %q", tt.spec, err, tt.wantErr)
			}
		})
	}
}

func TestMissingContainer(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	missing := uniqueName(t)
	tests := []struct {
		name     string
		call     func() error
		notFound bool // want ErrNotFound; else want nil
	}{
		{"Inspect", func() error { _, err := c.Inspect(ctx, missing); return err }, true},
		{"Start", func() error { return c.Start(ctx, missing) }, true},
		{"Logs", func() error { _, err := c.Logs(ctx, missing, 5); return err }, true},
		{"Stop", func() error { return c.Stop(ctx, missing, time.Second) }, false},
		{"Remove", func() error { return c.Remove(ctx, missing) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			switch {
			case tt.notFound && (!errors.Is(err, dockerctl.ErrNotFound) || !strings.Contains(err.Error(), missing)):
				t.Errorf("%s(missing) = %v, want ErrNotFound naming %s", tt.name, err, missing)
			case !tt.notFound && err != nil:
				t.Errorf("%s(missing) = %v, want nil", tt.name, err)
			}
		})
	}
	if list, err := c.List(ctx, map[string]string{"switchyard.app": missing}); err != nil || len(list) != 0 {
		t.Errorf("List(no match) = %v, %v; want empty", list, err)
	}
}

func TestEnsureImageFails(t *testing.T) {
	c := newClient(t)
	reg := testservers.StartRegistry(t)
	tests := []struct {
		name string
		ref  string
	}{
		{"unknown repository", reg.Ref(uniqueName(t) + ":v1")},
		{"unknown tag", reg.Ref("switchyard-test-none:nope")},
		{"registry unreachable", "127.0.0.1:1/" + uniqueName(t) + ":v1"},
		{"invalid reference", "Not_A_Valid:Reference:v1"},
		{"empty reference", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.EnsureImage(testCtx(t), tt.ref, nil)
			if !errors.Is(err, dockerctl.ErrImagePull) || !strings.Contains(err.Error(), tt.ref) {
				t.Errorf("EnsureImage(%q) = %v, want ErrImagePull naming the image", tt.ref, err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestDaemonUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent")
	c, err := dockerctl.New(context.Background())
	if err == nil {
		c.Close()
		t.Fatal("New with DOCKER_HOST=unix:///nonexistent succeeded")
	}
	if !strings.Contains(err.Error(), "docker daemon at unix:///nonexistent unreachable") {
		t.Errorf("New error = %q, want it to name the daemon address", err)
	}
}

// A limit the daemon refuses (more CPUs than the host has) is the spec's
// fault: ErrInvalidSpec, with the daemon's reason.
func TestCreateRefusedLimits(t *testing.T) {
	c := newClient(t)
	img := localImage(t, "v2")
	_, err := c.Create(testCtx(t), dockerctl.Spec{Name: uniqueName(t), Image: img, Port: appPort, NanoCPUs: 100_000 * 1e9})
	if !errors.Is(err, dockerctl.ErrInvalidSpec) || !strings.Contains(err.Error(), "CPU") {
		t.Fatalf("create with 100000 CPUs: %v, want ErrInvalidSpec naming the CPUs", err)
	}
}
