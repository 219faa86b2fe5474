package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/testservers"
)

// stopDocker is a Docker for serve's shutdown tests: one container, a real
// HTTP server on loopback whose health check passes or not; pulls wait for
// release. It records its calls and any made after Close.
type stopDocker struct {
	mu       sync.Mutex
	healthy  bool
	release  chan struct{} // closed: pulls finish
	pulling  chan struct{} // closed by the first pull
	app      *httptest.Server
	calls    []string
	closed   bool
	late     []string
	pullOnce sync.Once
}

func newStopDocker(t *testing.T, healthy bool) *stopDocker {
	d := &stopDocker{healthy: healthy, release: make(chan struct{}), pulling: make(chan struct{})}
	d.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.healthy {
			http.Error(w, "not yet", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(d.app.Close)
	return d
}

// call records one call; a call after Close is recorded as late.
func (d *stopDocker) call(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name != "events" { // the event watcher's goroutine may start late, or not before the stop
		d.calls = append(d.calls, name)
	}
	if d.closed {
		d.late = append(d.late, name)
	}
	return ctx.Err()
}

func (d *stopDocker) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	if err := d.call(ctx, "pull"); err != nil {
		return err
	}
	d.pullOnce.Do(func() { close(d.pulling) })
	select {
	case <-d.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *stopDocker) Create(ctx context.Context, s dockerctl.Spec) (string, error) {
	return strings.Repeat("c", 64), d.call(ctx, "create")
}
func (d *stopDocker) Start(ctx context.Context, id string) error { return d.call(ctx, "start") }
func (d *stopDocker) Inspect(ctx context.Context, id string) (dockerctl.Container, error) {
	return dockerctl.Container{ID: id, Running: true, State: "running", Addr: d.app.Listener.Addr().String()},
		d.call(ctx, "inspect")
}
func (d *stopDocker) List(ctx context.Context, labels map[string]string) ([]dockerctl.Container, error) {
	return nil, d.call(ctx, "list")
}
func (d *stopDocker) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return d.call(ctx, "stop")
}
func (d *stopDocker) Remove(ctx context.Context, id string) error { return d.call(ctx, "remove") }
func (d *stopDocker) Logs(ctx context.Context, id string, tail int) (string, error) {
	return "app: starting", d.call(ctx, "logs")
}
func (d *stopDocker) Events(ctx context.Context, labels map[string]string) (<-chan dockerctl.Event, <-chan error) {
	d.call(ctx, "events")
	return make(chan dockerctl.Event), make(chan error)
}
func (d *stopDocker) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// SIGTERM during a launch: the API's graceful shutdown waits for it, and the
// manager and Docker are closed only after: a launch that finishes within
// the shutdown timeout answers; one that does not is cancelled, cleans up
// its container and is recorded. Nothing calls Docker after its Close.
func TestServeStopsDuringLaunch(t *testing.T) {
	for _, tt := range []struct {
		name       string
		finishes   bool // the pull is released after the stop began
		timeout    string
		wantRecord string // the launch in the history
		wantCalls  string // Docker's calls, in order
	}{
		{"the launch finishes", true, "20s", "launch ok", "list pull create start inspect"},
		{"the launch is cut by the shutdown timeout", false, "300ms", "launch error (shutting down)", "list pull create start inspect logs remove"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docker := newStopDocker(t, tt.finishes)
			if !tt.finishes {
				close(docker.release) // it waits for health checks that fail instead
			}
			configs, state := t.TempDir(), t.TempDir()
			body := `{"image":"app:v1","port":8080,"health":{"interval":"100ms","timeout":"1s","start_timeout":"1m"}}`
			id := deployconfig.ID([]byte(body))
			os.WriteFile(filepath.Join(configs, id+".json"), []byte(body), 0o644)
			apiAddr := testservers.FreeAddr(t)
			c, err := parseServe([]string{"--listen", "127.0.0.1:0", "--api", apiAddr, "--configs", configs, "--state-dir", state,
				"--log-address", "off", "--shutdown-timeout", tt.timeout}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			served := make(chan error, 1)
			go func() {
				served <- serve(ctx, c, zerolog.Nop(), func(context.Context) (dockerClient, error) { return docker, nil })
			}()

			client, _ := api.NewClient(apiAddr, api.ClientOptions{User: "ci"})
			launched := make(chan error, 1)
			go func() { launched <- launchWhenUp(client, id) }()
			select {
			case <-docker.pulling:
			case err := <-launched:
				t.Fatalf("launch returned before its pull: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no pull within 10s")
			}
			if !tt.finishes {
				// Let the health checks fail a few times first.
				time.Sleep(100 * time.Millisecond)
			}
			stop() // as SIGTERM does
			if tt.finishes {
				time.Sleep(100 * time.Millisecond) // the API is shutting down, the launch still runs
				close(docker.release)
			}
			var serveErr error
			select {
			case serveErr = <-served:
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return within 20s of the stop")
			}
			err = <-launched
			if tt.finishes && (err != nil || serveErr != nil) {
				t.Fatalf("launch: %v; serve: %v; want both to succeed", err, serveErr)
			}
			if !tt.finishes && (err == nil || serveErr == nil || !strings.Contains(serveErr.Error(), "graceful stop")) {
				t.Fatalf("launch: %v; serve: %v; want the launch cut and serve to report the timeout", err, serveErr)
			}
			docker.mu.Lock()
			calls, late, closed := strings.Join(docker.calls, " "), docker.late, docker.closed
			docker.mu.Unlock()
			// Start-up lists (adoption, and the events watcher's reconcile).
			if !closed || len(late) > 0 || !strings.HasPrefix(strings.ReplaceAll(calls, "list ", ""), "pull create start inspect") ||
				strings.Contains(calls, "remove") != strings.Contains(tt.wantCalls, "remove") {
				t.Fatalf("Docker closed %v, calls %q, after Close %q; want %q, none after Close", closed, calls, late, tt.wantCalls)
			}
			if got := lastLaunch(t, state); got != tt.wantRecord {
				t.Fatalf("history records %q, want %q", got, tt.wantRecord)
			}
		})
	}
}

// launchWhenUp launches id once the API answers, retrying while the cold
// start holds the operation slot.
func launchWhenUp(c *api.Client, id string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Launch(context.Background(), id)
		var ae *api.Error
		if err == nil || (errors.As(err, &ae) && ae.Kind != api.KindBusy) || time.Now().After(deadline) {
			return err
		}
		if ae == nil && !strings.Contains(err.Error(), "connection refused") {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastLaunch is the last launch in the history file: "launch ok",
// "launch error", or "launch error (shutting down)".
func lastLaunch(t *testing.T, stateDir string) string {
	b, err := os.ReadFile(filepath.Join(stateDir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Action, Result, Error string }
		if err := json.Unmarshal([]byte(line), &e); err == nil && e.Action == "launch" {
			last = fmt.Sprintf("%s %s", e.Action, e.Result)
			if strings.Contains(e.Error, "shutting down") {
				last += " (shutting down)"
			}
		}
	}
	return last
}
