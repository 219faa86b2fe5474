// Package launch starts the processes a benchmark measures — the syncapp
// backend, the plain reference proxy, HAProxy, nginx and switchyard — each on
// a fresh 127.0.0.1 port with a config it writes itself, and stops every one
// of them when the benchmark ends, is interrupted, or dies.
package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ReadyTimeout is how long a started process has to accept TCP connections on
// its address before Start gives up and kills it.
const ReadyTimeout = 10 * time.Second

// StopTimeout is how long a process has to exit after SIGTERM before its
// whole process group gets SIGKILL.
const StopTimeout = 3 * time.Second

// ErrNotReady is returned (wrapped) when a process did not start listening.
var ErrNotReady = errors.New("process did not become ready")

// Process is one child process serving HTTP on Addr.
type Process struct {
	Name    string // short name, e.g. "haproxy"
	Addr    string // 127.0.0.1:port it serves on
	LogPath string // its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// PID is the process id; for nginx it is the master, whose children are the
// workers (see TreeCPU).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has already exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after StopTimeout.
// Stopping twice is harmless.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	pgid := -p.cmd.Process.Pid // Setpgid makes the child lead its own group
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// nginx's workers may outlive a killed master for a moment: reap the group.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// LogTail returns up to the last n bytes the process wrote, for error reports.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// Group owns the processes of one benchmark run and a scratch directory for
// their configs and logs. StopAll must be called (deferred) by the owner.
type Group struct {
	Dir string

	mu    sync.Mutex
	procs []*Process
	seq   int
}

// NewGroup makes a group whose files live in a new temp directory. The
// directory is world-readable so that nginx workers running as another user
// could read it.
func NewGroup() (*Group, error) {
	dir, err := os.MkdirTemp("", "switchyard-bench-")
	if err != nil {
		return nil, fmt.Errorf("create the bench scratch directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	return &Group{Dir: dir}, nil
}

// Path returns a fresh file name in the group's directory: name-N.ext.
func (g *Group) Path(name, ext string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	return filepath.Join(g.Dir, fmt.Sprintf("%s-%d%s", name, g.seq, ext))
}

// Start runs argv as a child serving on addr and waits until addr accepts TCP
// connections. The child leads its own process group (so Ctrl-C reaches only
// us, and we stop it together with its own children) and gets SIGKILL if we die.
func (g *Group) Start(name, addr string, argv []string, env []string) (*Process, error) {
	logPath := g.Path(name, ".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = g.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	p := &Process{Name: name, Addr: addr, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()

	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()

	if err := waitListening(p, ReadyTimeout); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s on %s: %w; its output (%s):\n%s", name, addr, err, logPath, p.LogTail(2000))
	}
	return p, nil
}

// StopAll stops every process the group started, newest first.
func (g *Group) StopAll() {
	g.mu.Lock()
	procs := g.procs
	g.procs = nil
	g.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
}

// Remove deletes the scratch directory.
func (g *Group) Remove() error { return os.RemoveAll(g.Dir) }

func waitListening(p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) { // bounded by the deadline
		if p.Exited() {
			return fmt.Errorf("%w: it exited", ErrNotReady)
		}
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%w: not listening after %s", ErrNotReady, timeout)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Main runs a bench program's body with a fresh Group: it stops every child
// and removes the scratch directory (unless keep) however run ends, turns
// Ctrl-C, SIGTERM and SIGPIPE (output piped to a closed reader) into a clean
// stop, and exits 130 when interrupted, 1 on error.
func Main(name string, keep bool, run func(ctx context.Context, g *Group) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	err := func() error {
		defer stop()
		g, err := NewGroup()
		if err != nil {
			return err
		}
		defer func() {
			g.StopAll()
			if keep {
				fmt.Fprintln(os.Stderr, "scratch directory kept:", g.Dir)
			} else {
				_ = g.Remove()
			}
		}()
		return run(ctx, g)
	}()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "%s: interrupted; every child process stopped\n", name)
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// ServeUntilSignal runs srv until Ctrl-C or SIGTERM, then shuts it down
// (1 s grace): the shared main loop of the bench's child servers.
func ServeUntilSignal(name string, srv *http.Server) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "%s: serve on %s: %v\n", name, srv.Addr, err)
		os.Exit(1)
	}
}
