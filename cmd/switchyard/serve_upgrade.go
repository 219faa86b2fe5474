package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/internal/handoff"
	"github.com/switchyard/switchyard/internal/manager"
	"github.com/switchyard/switchyard/internal/statelock"
)

// upgradeSettings are the settings of switchyard's upgrade of itself
// (SIGUSR2, POST /upgrade, `switchyard upgrade`): the binary on disk starts
// with the listening sockets, takes over, and this process stops.
type upgradeSettings struct {
	pidFile      string
	socket       string
	readyTimeout time.Duration
	handoff      *handoff.Handoff // nil: listeners of its own (tests in-process)
	upgrader     *upgrader
}

func addUpgradeSettings(s *settings, u *upgradeSettings) {
	s.str(&u.pidFile, "pid-file", []string{"SWITCHYARD_PID_FILE"}, "", "file naming the serving process's pid; an upgrade rewrites it once the new process serves")
	s.str(&u.socket, "handoff-socket", []string{"SWITCHYARD_HANDOFF_SOCKET"}, "",
		"unix socket (in the state volume) where a new switchyard container gets the listening sockets from the running one, which then stops; see docs/container.md")
	s.duration(&u.readyTimeout, "upgrade-timeout", []string{"SWITCHYARD_UPGRADE_TIMEOUT"}, durationText(handoff.DefaultReadyTimeout),
		"on SIGUSR2 or POST /upgrade, how long the new process may take to serve; past it, it is killed and this one serves on")
}

// listenTCP listens on addr: on the socket an upgrade's predecessor passed
// on, when there is one.
func (u *upgradeSettings) listenTCP(addr string) (net.Listener, error) {
	if u.handoff == nil {
		return net.Listen("tcp", addr)
	}
	return u.handoff.Listen(addr)
}

// ready tells the predecessor, if any, that this process serves now, and
// writes the pid file.
func (u *upgradeSettings) ready(log zerolog.Logger) {
	if u.handoff == nil {
		return
	}
	if err := u.handoff.Ready(); err != nil {
		log.Error().Err(err).Msg("upgrade: could not tell the previous process that this one serves")
		return
	}
	if u.handoff.Inherited() {
		log.Info().Int("pid", os.Getpid()).Msg("upgrade: serving on the inherited sockets; the previous process stops accepting")
	}
}

// takeOver is the manager's Options.TakeOver: an upgrade's successor
// waits for its predecessor's lock; any other start fails when it is held.
func (u *upgradeSettings) takeOver() time.Duration {
	if u.handoff == nil || !u.handoff.Inherited() {
		return 0
	}
	return u.readyTimeout
}

// processHolder is this process as the state directory's lock names it.
func processHolder() statelock.Holder {
	host, _ := os.Hostname()
	return statelock.Holder{PID: os.Getpid(), Version: version, Host: host, Since: time.Now()}
}

// upgradeFunc is POST /upgrade's, nil without a hand-off.
func (u *upgradeSettings) upgradeFunc() api.UpgradeFunc {
	if u.upgrader == nil {
		return nil
	}
	return u.upgrader.upgrade
}

// withHandoff runs serve with the hand-off: listeners inherited from an
// upgrade's predecessor, SIGUSR2 starting an upgrade, and ctx ended once a
// successor serves. It owns the goroutines it starts and waits for them.
func withHandoff(ctx context.Context, c *serveConfig, log zerolog.Logger, run func(context.Context) error) error {
	u := &upgrader{log: log, pidFile: c.upgrade.pidFile, timeout: c.upgrade.readyTimeout}
	h, err := handoff.New(handoff.Options{PIDFile: c.upgrade.pidFile, ReadyTimeout: c.upgrade.readyTimeout,
		Socket: c.upgrade.socket, Prepare: u.prepareSocket})
	if err != nil {
		return err
	}
	defer h.Stop()
	u.h = h
	if h.Inherited() {
		log.Info().Msg("upgrade: taking over the listening sockets of the running switchyard")
	}
	c.upgrade.handoff, c.upgrade.upgrader = h, u
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// cancel before the wait: run may return (an error at start-up) while
	// the caller's ctx goes on, and the goroutines end with ctx.
	defer func() { cancel(); wg.Wait() }()
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer signal.Stop(usr2)
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr2:
				u.upgrade(ctx, "SIGUSR2")
			}
		}
	}()
	go func() {
		defer wg.Done()
		select {
		case <-h.Replaced():
			log.Info().Msg("upgrade: the new process serves; this one stops accepting and finishes its requests")
			cancel()
		case <-ctx.Done():
		}
	}()
	return run(ctx)
}

// upgrader runs one upgrade at a time: the manager hands over (operations
// refused, the running one finished), the successor starts and takes over,
// or the manager takes operations back.
type upgrader struct {
	h       *handoff.Handoff
	log     zerolog.Logger
	pidFile string
	timeout time.Duration
	mu      sync.Mutex
	m       *manager.Manager // nil until the manager runs, and with a static upstream
}

func (u *upgrader) setManager(m *manager.Manager) {
	u.mu.Lock()
	u.m = m
	u.mu.Unlock()
}

func (u *upgrader) upgrade(ctx context.Context, who string) (api.UpgradeResult, error) {
	start := time.Now()
	res := api.UpgradeResult{OldPID: os.Getpid()}
	m, abort, err := u.handover(ctx)
	if err != nil {
		return res, err
	}
	u.log.Info().Str("who", who).Msg("upgrade: starting the binary on disk with the listening sockets")
	wctx, cancel := context.WithTimeout(ctx, u.timeout)
	err = u.h.Upgrade(wctx)
	cancel()
	if err != nil {
		abort()
		err = fmt.Errorf("%w: %w; this process (pid %d) serves on", manager.ErrUpgradeFailed, err, os.Getpid())
		u.log.Error().Err(err).Str("who", who).Msg("upgrade failed")
	} else {
		res.NewPID, _ = handoff.ReadPIDFile(u.pidFile)
		u.log.Info().Str("who", who).Int("new_pid", res.NewPID).Dur("took", time.Since(start)).Msg("upgrade: the new process took over")
	}
	if m != nil {
		m.RecordUpgrade(who, time.Since(start), err)
	}
	u.report(err)
	return res, err
}

// handover has the manager, if one runs, hand over (operations refused,
// the running one finished, within the upgrade timeout); abort gives
// operations back when the upgrade fails.
func (u *upgrader) handover(ctx context.Context) (m *manager.Manager, abort func(), err error) {
	u.mu.Lock()
	m = u.m
	u.mu.Unlock()
	if m == nil {
		return nil, func() {}, nil
	}
	hctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	abort, err = m.Handover(hctx)
	return m, abort, err
}

// prepareSocket readies a hand-off to a successor over the unix socket
// (a new container): the manager hands over as for an upgrade, and done
// records the outcome.
func (u *upgrader) prepareSocket(ctx context.Context) (func(error), error) {
	start := time.Now()
	m, abort, err := u.handover(ctx)
	if err != nil {
		return nil, err
	}
	u.log.Info().Msg("upgrade: a new switchyard asks for the listening sockets over the hand-off socket")
	return func(err error) {
		if err != nil {
			abort()
			err = fmt.Errorf("%w: %w; this process (pid %d) serves on", manager.ErrUpgradeFailed, err, os.Getpid())
			u.log.Error().Err(err).Msg("upgrade over the hand-off socket failed")
		} else {
			u.log.Info().Dur("took", time.Since(start)).Msg("upgrade: the new switchyard serves; this one stops")
		}
		if m != nil {
			m.RecordUpgrade("a new switchyard (hand-off socket)", time.Since(start), err)
		}
	}, nil
}

// upgradeReport is the outcome of the last upgrade by signal, in the file
// PIDFILE.upgrade, where `switchyard upgrade --pid-file` reads it.
type upgradeReport struct {
	PID   int       `json:"pid"`
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
}

func (u *upgrader) report(err error) {
	if u.pidFile == "" {
		return
	}
	r := upgradeReport{PID: os.Getpid(), Time: time.Now().UTC()}
	if err != nil {
		r.Error = err.Error()
	}
	b, _ := json.Marshal(r)
	if werr := atomicfile.Write(u.pidFile+".upgrade", append(b, '\n'), 0o644); werr != nil {
		u.log.Warn().Err(werr).Msg("upgrade: could not write its outcome next to the pid file")
	}
}
