package launch

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// The kinds of proxy StartProxy knows.
const (
	Switchyard = "switchyard" // the binary under test
	// SwitchyardStd is switchyard serving HTTP/1 with net/http's server
	// (--std-http1), to measure its own server against it.
	SwitchyardStd = "switchyard-std"
	HAProxy       = "haproxy"    // configured as the gunicorn-proxy image does
	Nginx         = "nginx"      // a comparably configured keep-alive reverse proxy
	PlainProxy    = "plainproxy" // net/http/httputil.ReverseProxy, the Go reference
	Direct        = "direct"     // no proxy: clients talk to the backend
)

// ErrUnavailable is returned (wrapped) when a proxy's binary is not installed
// or not built; benchmarks skip that proxy with a line saying so.
var ErrUnavailable = errors.New("proxy binary not available")

// Binaries says where the binaries that are not on PATH live.
type Binaries struct {
	Switchyard string // built from ./cmd/switchyard
	PlainProxy string // built from ./bench/plainproxy
	Syncapp    string // built from ./bench/syncapp
}

// Options configures a proxy in front of one upstream. Each kind maps them to
// its own settings; the comments say how.
type Options struct {
	// Upstream is the backend's 127.0.0.1:port.
	Upstream string
	// Workers is the concurrency allowed to reach the upstream on the queued
	// path: switchyard --workers, HAProxy `maxconn` on the app server. 0 means
	// no limit (HAProxy then has no per-server maxconn). Ignored by nginx and
	// plainproxy, which have no such queue.
	Workers int
	// QueueTimeout is how long a request may wait for a worker before a 503:
	// switchyard --queue-timeout, HAProxy `timeout queue`.
	QueueTimeout time.Duration
	// HealthPath bypasses the queue: switchyard --healthcheck-path, HAProxy
	// routes it to a second backend without maxconn.
	HealthPath string
	// AccessLog turns on one log line per request for HAProxy (to its stdout,
	// which is a file) and nginx (to a file). Switchyard always logs, to a file
	// in the group's directory: its CLI has no "off".
	AccessLog bool
	// Threads is how many threads each proxy runs: HAProxy's nbthread,
	// nginx's worker_processes, switchyard's --threads and plainproxy's
	// GOMAXPROCS. 0 leaves each its default (one per CPU for all four;
	// gunicorn-proxy leaves HAProxy's).
	Threads int
	// SwitchyardLog is switchyard's --log-address; empty means a file in the
	// group's directory.
	SwitchyardLog string
	// MaxConnections is HAProxy's global maxconn and switchyard's
	// --max-connections; 0 means 2000, gunicorn-proxy's default.
	MaxConnections int
	// Env is added to switchyard's environment (e.g. SWITCHYARD_PPROF_ADDR
	// for a BuildProfiled binary).
	Env []string
	// Discipline is switchyard's --queue-discipline (adaptive, fifo or
	// lifo); empty leaves switchyard's default. The others ignore it.
	Discipline string
}

func (o Options) maxConnections() int {
	if o.MaxConnections == 0 {
		return 2000
	}
	return o.MaxConnections
}

// StartProxy starts a proxy of the given kind in front of o.Upstream on a new
// port. For Direct it starts nothing and returns a Process-less address.
func (g *Group) StartProxy(kind string, bins Binaries, o Options) (*Process, error) {
	if kind == Direct {
		return &Process{Name: Direct, Addr: o.Upstream, done: closedChan()}, nil
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	switch kind {
	case Switchyard, SwitchyardStd:
		if _, err := os.Stat(bins.Switchyard); err != nil {
			return nil, fmt.Errorf("%w: switchyard at %q: %v (build it: go build -o /tmp/switchyard ./cmd/switchyard)",
				ErrUnavailable, bins.Switchyard, err)
		}
		argv := switchyardArgv(bins.Switchyard, addr, cmp.Or(o.SwitchyardLog, g.Path(kind+"-access", ".log")), o)
		if kind == SwitchyardStd {
			argv = append(argv, "--std-http1")
		}
		return g.Start(kind, addr, argv, o.Env)
	case PlainProxy:
		var env []string
		if o.Threads > 0 {
			env = []string{"GOMAXPROCS=" + strconv.Itoa(o.Threads)}
		}
		return g.Start(kind, addr, []string{bins.PlainProxy, "-listen", addr, "-upstream", o.Upstream}, env)
	case HAProxy:
		bin, err := exec.LookPath("haproxy")
		if err != nil {
			return nil, fmt.Errorf("%w: %v (apt-get install haproxy)", ErrUnavailable, err)
		}
		cfg := g.Path("haproxy", ".cfg")
		if err := os.WriteFile(cfg, []byte(HAProxyConfig(addr, o)), 0o644); err != nil {
			return nil, err
		}
		// -db: stay in the foreground, no master process.
		return g.Start(kind, addr, []string{bin, "-db", "-f", cfg}, nil)
	case Nginx:
		bin, err := exec.LookPath("nginx")
		if err != nil {
			return nil, fmt.Errorf("%w: %v (apt-get install nginx-light)", ErrUnavailable, err)
		}
		cfg := g.Path("nginx", ".conf")
		if err := os.WriteFile(cfg, []byte(g.nginxConfig(addr, o)), 0o644); err != nil {
			return nil, err
		}
		return g.Start(kind, addr, []string{bin, "-p", g.Dir, "-c", cfg, "-e", g.Path("nginx-startup", ".log")}, nil)
	}
	return nil, fmt.Errorf("unknown proxy %q (want %s, %s, %s, %s, %s or %s)",
		kind, Switchyard, SwitchyardStd, HAProxy, Nginx, PlainProxy, Direct)
}

// switchyardArgv is the command line of a switchyard serving o on addr.
func switchyardArgv(bin, addr, logAddr string, o Options) []string {
	argv := []string{bin, "serve",
		"--listen", addr,
		"--upstream", o.Upstream,
		"--workers", strconv.Itoa(max(o.Workers, 1)),
		"--queue-timeout", o.QueueTimeout.String(),
		"--healthcheck-path", o.HealthPath,
		"--log-address", logAddr,
		"--max-connections", strconv.Itoa(o.maxConnections()),
	}
	if o.Discipline != "" {
		argv = append(argv, "--queue-discipline", o.Discipline)
	}
	if o.Threads > 0 {
		argv = append(argv, "--threads", strconv.Itoa(o.Threads))
	}
	return argv
}

// StartSyncapp starts the imitation sync-worker backend: workers slots of
// service each (workers 0: unlimited and instant).
func (g *Group) StartSyncapp(bin string, workers int, service time.Duration, healthPath string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return g.Start("syncapp", addr, []string{bin, "-listen", addr,
		"-workers", strconv.Itoa(workers), "-service", service.String(), "-health-path", healthPath}, nil)
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
