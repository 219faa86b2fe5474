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
	// before it is killed (or, over the socket, given up). Default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Socket, when set, is the unix socket of the hand-off between
	// processes that do not descend from each other (socket.go): a new
	// process asks the one serving there for its listeners, and once ready
	// serves the socket itself.
	Socket string
	// Prepare, when set, is called before the listeners go to a successor
	// over the socket; done gets the outcome. An error refuses the
	// hand-off.
	Prepare func(ctx context.Context) (done func(error), err error)
}

// Handoff is this process's end of the hand-off: the listeners it
// inherited or made, its readiness, and the upgrade to a successor.
type Handoff struct {
	o   Options
	upg *tableflip.Upgrader
	mu  sync.Mutex // one Upgrade at a time

	lnMu      sync.Mutex
	listeners map[string]*net.TCPListener // by the address asked for
	fromSock  map[string]net.Listener     // passed over the socket, not yet asked for
	sockConn  *net.UnixConn               // to the predecessor, until Ready

	replaced    chan struct{}
	replaceOnce sync.Once
	stop        context.CancelFunc
	ctx         context.Context
	wg          sync.WaitGroup
}

// New sets up the hand-off; call it once, before any Listen. With
// Options.Socket it asks the process serving there for its listeners.
func New(o Options) (*Handoff, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: o.ReadyTimeout, PIDFile: o.PIDFile})
	if err != nil {
		return nil, fmt.Errorf("listener hand-off: %w", err)
	}
	h := &Handoff{o: o, upg: upg, listeners: map[string]*net.TCPListener{}, replaced: make(chan struct{})}
	h.ctx, h.stop = context.WithCancel(context.Background())
	if o.Socket != "" && !upg.HasParent() {
		if h.sockConn, h.fromSock, err = fetchListeners(o.Socket, o.ReadyTimeout); err != nil {
			upg.Stop()
			return nil, err
		}
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		select {
		case <-upg.Exit():
			if h.ctx.Err() == nil { // not Stop's doing
				h.replace()
			}
		case <-h.ctx.Done():
		}
	}()
	return h, nil
}

func (h *Handoff) replace() { h.replaceOnce.Do(func() { close(h.replaced) }) }

// Inherited says whether this process is an upgrade's successor: its
// listeners come from its predecessor, which still runs.
func (h *Handoff) Inherited() bool { return h.upg.HasParent() || h.sockConn != nil }

// Listen returns the TCP listener on addr the predecessor passed on, or a
// new one. Every listener a successor should inherit is made here.
func (h *Handoff) Listen(addr string) (net.Listener, error) {
	ln, err := h.upg.ListenWithCallback("tcp", addr, func(network, addr string) (net.Listener, error) {
		h.lnMu.Lock()
		ln := h.fromSock[addr]
		delete(h.fromSock, addr)
		h.lnMu.Unlock()
		if ln != nil {
			return ln, nil
		}
		return net.Listen(network, addr)
	})
	if err != nil {
		return nil, err
	}
	if tl, ok := ln.(*net.TCPListener); ok {
		h.lnMu.Lock()
		h.listeners[addr] = tl
		h.lnMu.Unlock()
	}
	return ln, nil
}

// Ready says that this process serves: listeners it inherited but did not
// ask for are closed, the pid file names it, and the predecessor, if any,
// is told to stop. From now on it serves the socket for a successor.
func (h *Handoff) Ready() error {
	if err := h.upg.Ready(); err != nil {
		return err
	}
	h.lnMu.Lock()
	for _, ln := range h.fromSock {
		ln.Close()
	}
	h.fromSock = nil
	h.lnMu.Unlock()
	if h.sockConn != nil {
		_, err := h.sockConn.Write([]byte(socketReady))
		h.sockConn.Close()
		if err != nil {
			return fmt.Errorf("tell the previous switchyard over %s: %w", h.o.Socket, err)
		}
	}
	if h.o.Socket == "" {
		return nil
	}
	os.Remove(h.o.Socket) // the predecessor's: it stops now
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.o.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("hand-off socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // a successor has its own file by then
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.serveSocket(h.ctx, ln) }()
	return nil
}

// Replaced is closed once a successor is ready: this process stops
// accepting now and finishes what it serves.
func (h *Handoff) Replaced() <-chan struct{} { return h.replaced }

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
	h.stop()
	h.upg.Stop()
	h.wg.Wait()
	select {
	case <-h.replaced:
	default:
		if h.o.Socket != "" {
			os.Remove(h.o.Socket) // nobody serves it any more
		}
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
