package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/dockerctl"
)

// fakeDocker is a unit-test stand-in for the Docker daemon: each "container"
// is a real HTTP server on loopback, so the proxy and the health checks talk
// to something real. The real daemon is covered by dockerctl's tests and e2e.
type fakeDocker struct {
	mu        sync.Mutex
	images    map[string]bool // pullable images
	ctrs      map[string]*fakeCtr
	n         int
	created   []string
	removed   []string
	stopped   []string
	events    chan dockerctl.Event
	pullDelay time.Duration
	down      bool // daemon unreachable
	// exitAfterProbe makes a container stop running once it has answered a
	// health check while its address keeps answering: another process on
	// the same (host) port.
	exitAfterProbe bool
	// closed is set by a test once the manager is closed: a call after it
	// is counted in lateCalls (the manager used Docker after Close).
	closed    bool
	lateCalls []string
	// startGate, when set, holds every Start until it is closed: a test
	// decides when a restart may bring the container back.
	startGate chan struct{}
}

type fakeCtr struct {
	spec    dockerctl.Spec
	id      string
	srv     *httptest.Server
	handler http.Handler
	closed  bool // srv was closed: a start makes a new one (a new port)
	running bool
	started time.Time
	healthy bool
	probes  int           // health checks answered
	hold    chan struct{} // when set, /slow waits on it
	// crashOnStart makes every start of the container die at once, as an
	// app in a crash loop does.
	crashOnStart bool
}

func newFakeDocker(images ...string) *fakeDocker {
	f := &fakeDocker{images: map[string]bool{}, ctrs: map[string]*fakeCtr{}, events: make(chan dockerctl.Event, 100)}
	for _, i := range images {
		f.images[i] = true
	}
	return f
}

var errDaemonDown = errors.New("Cannot connect to the Docker daemon")

func (f *fakeDocker) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLateLocked()
	if f.down {
		return errDaemonDown
	}
	return nil
}

func (f *fakeDocker) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	if err := f.check(); err != nil {
		return err
	}
	time.Sleep(f.pullDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[ref] {
		return fmt.Errorf("%w: pull %s: manifest unknown", dockerctl.ErrImagePull, ref)
	}
	return nil
}

func (f *fakeDocker) Create(ctx context.Context, s dockerctl.Spec) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("%064x", f.n*7919)
	c := &fakeCtr{spec: s, id: id, healthy: !envHas(s.Env, "NEVER_HEALTHY=1"), crashOnStart: envHas(s.Env, "CRASH=1")}
	version := envValue(s.Env, "VERSION")
	c.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthcheck":
			f.mu.Lock()
			ok := c.healthy
			c.probes++
			if f.exitAfterProbe {
				c.running = false
			}
			f.mu.Unlock()
			if !ok {
				http.Error(w, "not healthy", 500)
				return
			}
		case "/slow":
			f.mu.Lock()
			hold := c.hold
			f.mu.Unlock()
			if hold != nil {
				select {
				case <-hold:
				case <-r.Context().Done(): // the container was stopped
				}
			}
		}
		fmt.Fprint(w, version)
	})
	c.srv = httptest.NewUnstartedServer(c.handler)
	f.ctrs[id] = c
	f.created = append(f.created, id)
	return id, nil
}

func envHas(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

func envValue(env []string, k string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, k+"="); ok {
			return v
		}
	}
	return ""
}

// noteLateLocked records a call made after the test marked the manager
// closed; caller holds f.mu.
func (f *fakeDocker) noteLateLocked() {
	if f.closed {
		pc, _, _, _ := runtime.Caller(2)
		f.lateCalls = append(f.lateCalls, runtime.FuncForPC(pc).Name())
	}
}

func (f *fakeDocker) get(id string) (*fakeCtr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLateLocked()
	c, ok := f.ctrs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", dockerctl.ErrNotFound, id)
	}
	return c, nil
}

func (f *fakeDocker) Start(ctx context.Context, id string) error {
	if err := f.check(); err != nil {
		return err
	}
	f.mu.Lock()
	gate := f.startGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	if c.running {
		f.mu.Unlock()
		return nil
	}
	if c.closed { // a stopped container starts again on a new port
		c.srv, c.closed = httptest.NewUnstartedServer(c.handler), false
	}
	srv, crash := c.srv, c.crashOnStart
	c.running, c.started = true, time.Now()
	f.mu.Unlock()
	srv.Start()
	if crash {
		f.kill(id, 1)
	}
	return nil
}

// send queues an event without blocking: a test without a watching
// manager must not hang on a full channel.
func (f *fakeDocker) send(e dockerctl.Event) {
	select {
	case f.events <- e:
	default:
	}
}

// rmForce removes a container as `docker rm -f` does behind the manager's
// back: it dies (when running), then is destroyed.
func (f *fakeDocker) rmForce(id string) {
	c, _ := f.get(id)
	f.mu.Lock()
	running := c.running
	f.mu.Unlock()
	if running {
		f.kill(id, 137)
	}
	f.Remove(context.Background(), id)
}

func (f *fakeDocker) info(c *fakeCtr) dockerctl.Container {
	ct := dockerctl.Container{ID: c.id, Name: c.spec.Name, Image: c.spec.Image, Labels: c.spec.Labels,
		Running: c.running, StartedAt: c.started, State: "exited"}
	if !c.running && c.crashOnStart {
		ct.ExitCode = 1
	}
	if c.running {
		ct.State = "running"
		ct.Addr = c.srv.Listener.Addr().String()
	}
	return ct
}

func (f *fakeDocker) Inspect(ctx context.Context, id string) (dockerctl.Container, error) {
	if err := f.check(); err != nil {
		return dockerctl.Container{}, err
	}
	c, err := f.get(id)
	if err != nil {
		return dockerctl.Container{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info(c), nil
}

func (f *fakeDocker) List(ctx context.Context, labels map[string]string) ([]dockerctl.Container, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dockerctl.Container
	for i := len(f.created) - 1; i >= 0; i-- {
		c, ok := f.ctrs[f.created[i]]
		if !ok {
			continue
		}
		match := true
		for k, v := range labels {
			if c.spec.Labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, f.info(c))
		}
	}
	return out, nil
}

// kill stops a container as if it crashed, with a die event.
func (f *fakeDocker) kill(id string, code int) {
	c, _ := f.get(id)
	f.mu.Lock()
	c.running, c.closed = false, true
	srv := c.srv
	f.mu.Unlock()
	srv.CloseClientConnections()
	srv.Close()
	f.send(dockerctl.Event{ContainerID: id, Action: "die", ExitCode: code, Labels: c.spec.Labels})
}

func (f *fakeDocker) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := f.get(id)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	wasRunning := c.running
	c.running = false
	f.stopped = append(f.stopped, id)
	srv := c.srv
	if wasRunning {
		c.closed = true
	}
	f.mu.Unlock()
	if wasRunning {
		// As the process's death would, cut the requests still in it.
		srv.CloseClientConnections()
		srv.Close()
		f.send(dockerctl.Event{ContainerID: id, Action: "die", Labels: c.spec.Labels})
	}
	return nil
}

func (f *fakeDocker) Remove(ctx context.Context, id string) error {
	c, err := f.get(id)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	running := c.running
	c.running = false
	delete(f.ctrs, id)
	f.removed = append(f.removed, id)
	srv := c.srv
	f.mu.Unlock()
	if running {
		srv.Close()
		f.send(dockerctl.Event{ContainerID: id, Action: "die", ExitCode: 137, Labels: c.spec.Labels})
	}
	f.send(dockerctl.Event{ContainerID: id, Action: "destroy", Labels: c.spec.Labels})
	return nil
}

func (f *fakeDocker) Logs(ctx context.Context, id string, tail int) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	return "app: listening\napp: health check failing on purpose", nil
}

func (f *fakeDocker) Events(ctx context.Context, labels map[string]string) (<-chan dockerctl.Event, <-chan error) {
	errs := make(chan error)
	return f.events, errs
}

func (f *fakeDocker) running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, c := range f.ctrs {
		if c.running {
			out = append(out, id)
		}
	}
	return out
}

func (f *fakeDocker) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.running {
			c.srv.Close()
		}
	}

}

// holdSlow makes container id's /slow wait until the returned channel is
// closed.
func (f *fakeDocker) holdSlow(id string) chan struct{} {
	hold := make(chan struct{})
	c, _ := f.get(id)
	f.mu.Lock()
	c.hold = hold
	f.mu.Unlock()
	return hold
}
