// Command cpu measures the CPU each proxy spends per proxied request.
//
// It starts the fast syncapp (-workers 0: instant ~100-byte answers), then for
// each proxy in turn starts it fresh, warms it up, and -runs times drives
// -requests keep-alive GETs through it with wrk (-t1, -connections), reading
// the proxy's CPU time (user + system, its whole process tree) from /proc
// before and after. It prints µs of CPU per request (median of the runs and
// their spread), requests per second, and the ratio to plainproxy. See
// bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

type config struct {
	proxies   []string
	requests  int
	warmup    int
	runs      int
	conns     int
	limit     time.Duration
	syWorkers int
	syLog     string
	accessLog bool
	client    string
	bins      launch.Binaries
	jsonOut   bool
	keep      bool
}

// Result is one proxy's measurements.
type Result struct {
	Proxy     string  `json:"proxy"`
	Runs      []Run   `json:"runs"`
	CPUPerReq float64 `json:"cpu_us_per_req"` // median over runs
	CPUMin    float64 `json:"cpu_us_per_req_min"`
	CPUMax    float64 `json:"cpu_us_per_req_max"`
	RPS       float64 `json:"rps"` // median over runs
	Ratio     float64 `json:"ratio_to_plainproxy,omitempty"`
	Errors    int     `json:"errors"`
}

// Run is one measured drive.
type Run struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	CPUSec    float64 `json:"proxy_cpu_s"`
	Seconds   float64 `json:"seconds"`
	CPUPerReq float64 `json:"cpu_us_per_req"`
	RPS       float64 `json:"rps"`
}

func main() {
	var c config
	proxies := flag.String("proxies", "plainproxy,switchyard,haproxy,nginx", "comma-separated: plainproxy, switchyard, haproxy, nginx")
	flag.IntVar(&c.requests, "requests", 200_000, "requests per measured run")
	flag.IntVar(&c.warmup, "warmup", 20_000, "requests before the first measured run (not measured)")
	flag.IntVar(&c.runs, "runs", 3, "measured runs per proxy; the median is reported")
	flag.IntVar(&c.conns, "connections", 32, "keep-alive client connections")
	flag.DurationVar(&c.limit, "max-run", 120*time.Second, "upper bound on one run's time")
	flag.IntVar(&c.syWorkers, "switchyard-workers", 64, "switchyard --workers (and HAProxy server maxconn): on, but above -connections")
	flag.BoolVar(&c.accessLog, "access-log", false, "turn on HAProxy's and nginx's access logs too (switchyard always logs, to a file)")
	flag.StringVar(&c.syLog, "switchyard-log", "", "switchyard --log-address; empty: a file in the scratch directory (\"off\" to measure without it)")
	flag.StringVar(&c.client, "client", "auto", "wrk, go, or auto (wrk if installed)")
	flag.StringVar(&c.bins.Switchyard, "switchyard", "/tmp/switchyard", "switchyard binary; skipped if absent")
	flag.BoolVar(&c.jsonOut, "json", false, "print JSON instead of a table")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory (configs, process and access logs)")
	flag.Parse()
	c.proxies = strings.Split(*proxies, ",")
	if c.requests < 1 || c.requests > 10_000_000 || c.runs < 1 || c.runs > 50 || c.conns < 1 || c.conns > 10_000 || c.warmup < 0 {
		fmt.Fprintln(os.Stderr, "cpu: need 1 <= -requests <= 1e7, 1 <= -runs <= 50, 1 <= -connections <= 10000, -warmup >= 0")
		os.Exit(2)
	}
	launch.Main("cpu", c.keep, func(ctx context.Context, g *launch.Group) error { return run(ctx, g, c) })
}

func run(ctx context.Context, g *launch.Group, c config) error {
	var err error
	drive, err := pickDriver(c.client, g.Dir)
	if err != nil {
		return err
	}
	if c.bins.Syncapp, err = g.Build("bench/syncapp"); err != nil {
		return err
	}
	if c.bins.PlainProxy, err = g.Build("bench/plainproxy"); err != nil {
		return err
	}
	backend, err := g.StartSyncapp(c.bins.Syncapp, 0, 0, "/healthcheck")
	if err != nil {
		return err
	}

	loadBefore := loadavg()
	results, err := measureAll(ctx, g, c, drive, backend.Addr)
	if err != nil {
		return err
	}
	load := loadBefore + " → " + loadavg()
	for _, r := range results {
		if r.Proxy == launch.PlainProxy && r.CPUPerReq > 0 {
			for i := range results {
				results[i].Ratio = results[i].CPUPerReq / r.CPUPerReq
			}
		}
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	printTable(os.Stdout, results, c, load)
	return nil
}

func pickDriver(name, dir string) (driver, error) {
	_, wrkErr := exec.LookPath("wrk")
	switch {
	case name == "go", name == "auto" && wrkErr != nil:
		fmt.Fprintln(os.Stderr, "client: Go (wrk not used)")
		return goDriver, nil
	case name == "wrk" || name == "auto":
		if wrkErr != nil {
			return nil, fmt.Errorf("-client wrk: %w (apt-get install wrk, or -client go)", wrkErr)
		}
		return wrkDriver(dir), nil
	}
	return nil, fmt.Errorf("-client %q: want wrk, go or auto", name)
}

// measureAll starts every proxy, warms each up, then measures them in
// rounds — run 1 of each, run 2 of each, … — so that load from other
// processes on the machine spreads over all proxies instead of one.
func measureAll(ctx context.Context, g *launch.Group, c config, drive driver, upstream string) ([]Result, error) {
	var procs []*launch.Process
	for _, kind := range c.proxies {
		if kind == launch.Direct {
			continue // no proxy process to measure
		}
		p, err := g.StartProxy(kind, c.bins, launch.Options{
			Upstream:      upstream,
			Workers:       c.syWorkers,
			QueueTimeout:  time.Second,
			HealthPath:    "/healthcheck",
			AccessLog:     c.accessLog,
			SwitchyardLog: c.syLog,
			Threads:       1, // HAProxy nbthread 1; nginx has worker_processes 1
		})
		if errors.Is(err, launch.ErrUnavailable) {
			fmt.Fprintf(os.Stderr, "SKIP %s: %v\n", kind, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.warmup > 0 {
			if _, err := drive(ctx, "http://"+p.Addr+"/", c.warmup, c.conns, c.limit); err != nil {
				return nil, fmt.Errorf("%s warm-up: %w", kind, err)
			}
		}
		procs = append(procs, p)
	}
	results := make([]Result, len(procs))
	for round := 1; round <= c.runs; round++ {
		for i, p := range procs {
			r, err := measureOne(ctx, c, drive, p)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", p.Name, round, err)
			}
			results[i].Proxy = p.Name
			results[i].Runs = append(results[i].Runs, r)
			results[i].Errors += r.Errors
			fmt.Fprintf(os.Stderr, "%s run %d: %d req, %.2f µs CPU/req, %.0f req/s, %d errors\n",
				p.Name, round, r.Requests, r.CPUPerReq, r.RPS, r.Errors)
		}
	}
	for i := range results {
		res := &results[i]
		cpus := make([]float64, len(res.Runs))
		rps := make([]float64, len(res.Runs))
		for j, r := range res.Runs {
			cpus[j], rps[j] = r.CPUPerReq, r.RPS
		}
		res.CPUPerReq, res.RPS = median(cpus), median(rps)
		res.CPUMin, res.CPUMax = slices.Min(cpus), slices.Max(cpus)
	}
	return results, nil
}

// measureOne drives c.requests through p and reads p's CPU time around it.
func measureOne(ctx context.Context, c config, drive driver, p *launch.Process) (Run, error) {
	before, err := launch.TreeCPU(p.PID())
	if err != nil {
		return Run{}, err
	}
	d, err := drive(ctx, "http://"+p.Addr+"/", c.requests, c.conns, c.limit)
	if err != nil {
		return Run{}, err
	}
	after, err := launch.TreeCPU(p.PID())
	if err != nil {
		return Run{}, err
	}
	if d.requests == 0 || p.Exited() {
		return Run{}, fmt.Errorf("no responses or the proxy exited; its output:\n%s", p.LogTail(2000))
	}
	cpu := after - before
	return Run{
		Requests: d.requests, Errors: d.errors,
		CPUSec: cpu.Seconds(), Seconds: d.elapsed.Seconds(),
		CPUPerReq: float64(cpu.Nanoseconds()) / 1e3 / float64(d.requests),
		RPS:       float64(d.requests) / d.elapsed.Seconds(),
	}, nil
}

// loadavg is /proc/loadavg's first three fields: other work on the machine
// inflates req/s noise (and, less, CPU per request).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w io.Writer, rs []Result, c config, load string) {
	fmt.Fprintf(w, "%d runs × %d requests, %d keep-alive connections, fast syncapp upstream; load average %s\n",
		c.runs, c.requests, c.conns, load)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tCPU µs/req\tspread (min–max)\treq/s\tvs plainproxy\terrors\t")
	for _, r := range rs {
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f–%.2f\t%.0f\t%s\t%d\t\n", r.Proxy, r.CPUPerReq, r.CPUMin, r.CPUMax, r.RPS, ratio, r.Errors)
	}
	tw.Flush()
}
