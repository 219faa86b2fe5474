// Package handoff upgrades a running switchyard to the binary on disk
// without refusing a connection: the new process inherits every listening
// socket (github.com/cloudflare/tableflip: fork and exec with the fds),
// becomes ready (adopts the app, accepts), and only then the old one stops
// accepting, finishes what it serves and exits. A new process that exits or
// is not ready in time is killed and the old one keeps serving. The pid
// file, when set, is written by whichever process is ready last, so it
// names the serving process at every moment.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/tableflip"
)

// DefaultReadyTimeout is how long a new process may take to become ready.
const DefaultReadyTimeout = time.Minute

// Options configure New.
type Options struct {
	// PIDFile, when set, names the serving process.
	PIDFile string
	// ReadyTimeout is how long a new process may take to become ready
	// before it is killed. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Handoff is this process's end of the hand-off: the listeners it
// inherited or made, its readiness, and the upgrade to a successor.
type Handoff struct {
	o   Options
	upg *tableflip.Upgrader
	mu  sync.Mutex // one Upgrade at a time
}

// New sets up the hand-off; call it once, before any Listen.
func New(o Options) (*Handoff, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: o.ReadyTimeout, PIDFile: o.PIDFile})
	if err != nil {
		return nil, fmt.Errorf("listener hand-off: %w", err)
	}
	return &Handoff{o: o, upg: upg}, nil
}

// Inherited says whether this process is an upgrade's successor: its
// listeners come from its predecessor, which still runs.
func (h *Handoff) Inherited() bool { return h.upg.HasParent() }

// Listen returns the TCP listener on addr the predecessor passed on, or a
// new one. Every listener a successor should inherit is made here.
func (h *Handoff) Listen(addr string) (net.Listener, error) {
	return h.upg.Listen("tcp", addr)
}

// Ready says that this process serves: listeners it inherited but did not
// ask for are closed, the pid file names it, and the predecessor, if any,
// is told to stop.
func (h *Handoff) Ready() error { return h.upg.Ready() }

// Replaced is closed once a successor is ready: this process stops
// accepting now and finishes what it serves.
func (h *Handoff) Replaced() <-chan struct{} { return h.upg.Exit() }

// ErrPredecessorRunning: the process this one took over from has not
// exited yet (it still finishes its requests); an upgrade must wait.
var ErrPredecessorRunning = errors.New("the previous switchyard process is still finishing its requests")

// Upgrade starts the binary on disk as a successor with this process's
// listeners and waits until it is ready (nil: this process should stop
// now), or it exited, or ReadyTimeout passed (it was killed): the error
// says which, and this process keeps serving. An upgrade waits, up to ctx,
// for the predecessor of this process to exit first.
func (h *Handoff) Upgrade(ctx context.Context) error {
	if !h.mu.TryLock() {
		return errors.New("an upgrade is already running")
	}
	defer h.mu.Unlock()
	if err := h.upg.WaitForParent(ctx); err != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %w", ErrPredecessorRunning, err)
	}
	if err := h.upg.Upgrade(); err != nil {
		return fmt.Errorf("the new switchyard process did not take over: %w", err)
	}
	return nil
}

// Stop ends the hand-off for good (this process stops without a
// successor); the pid file is removed when it names this process.
func (h *Handoff) Stop() {
	h.upg.Stop()
	select {
	case <-h.upg.Exit():
	case <-time.After(time.Second):
	}
	if h.o.PIDFile == "" {
		return
	}
	if pid, err := ReadPIDFile(h.o.PIDFile); err == nil && pid == os.Getpid() {
		os.Remove(h.o.PIDFile)
	}
}

// ReadPIDFile reads the pid a pid file names.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("pid file %s: %q is no pid", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}
