// Command cpu measures the CPU each proxy spends per proxied request.
//
// It starts the fast syncapp (-workers 0: instant answers), then every proxy,
// warms each up, and for each scenario (-scenarios: a small GET, a 16 KiB
// response, a 4 KiB POST, the small GET with keep-alive off) drives -requests
// requests through each proxy with wrk (-t1, -connections) -runs times,
// reading the proxy's CPU time (user + system, its whole process tree) from
// /proc before and after. It prints, per scenario, µs of CPU per request
// (median of the runs and their spread), requests per second, and the ratio
// to HAProxy, nginx and plainproxy measured in the same run. See
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
	scenarios []scenario
	requests  int
	warmup    int
	runs      int
	conns     int
	limit     time.Duration
	syWorkers int
	syLog     string
	threads   int
	accessLog bool
	client    string
	bins      launch.Binaries
	jsonOut   bool
	keep      bool

	profile        string // -profile: write a CPU profile of switchyard here instead of measuring
	profileSeconds int
}

// scenario is one kind of request.
type scenario struct {
	name   string
	path   string // on syncapp
	method string // "": GET
	body   int    // request body bytes
	close  bool   // Connection: close on every request (a new client connection each)
}

// scenarios are the kinds -scenarios picks from.
var scenarios = []scenario{
	{name: "small", path: "/"},
	{name: "16k", path: "/size/16384"},
	{name: "post4k", path: "/", method: "POST", body: 4096},
	{name: "close", path: "/", close: true},
}

func pickScenarios(list string) ([]scenario, error) {
	var out []scenario
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: %q: want small, 16k, post4k or close", name)
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}

// Result is one proxy's measurements in one scenario.
type Result struct {
	Scenario  string  `json:"scenario"`
	Proxy     string  `json:"proxy"`
	Runs      []Run   `json:"runs"`
	CPUPerReq float64 `json:"cpu_us_per_req"` // median over runs
	CPUMin    float64 `json:"cpu_us_per_req_min"`
	CPUMax    float64 `json:"cpu_us_per_req_max"`
	RPS       float64 `json:"rps"` // median over runs
	// Ratios to the references measured in the same run: haproxy, nginx,
	// plainproxy.
	Ratios map[string]float64 `json:"ratios,omitempty"`
	Errors int                `json:"errors"`
}

// references are the proxies every other is compared with.
var references = []string{launch.HAProxy, launch.Nginx, launch.PlainProxy}

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
	proxies := flag.String("proxies", "plainproxy,switchyard,haproxy,nginx", "comma-separated: plainproxy, switchyard, switchyard-std (net/http's server: --std-http1), haproxy, nginx")
	scs := flag.String("scenarios", "small,16k,post4k,close", "comma-separated: small (GET, 100 B), 16k (GET, 16 KiB), post4k (POST 4 KiB, 100 B back), close (small, keep-alive off)")
	flag.IntVar(&c.requests, "requests", 200_000, "requests per measured run")
	flag.IntVar(&c.warmup, "warmup", 20_000, "requests before the first measured run (not measured)")
	flag.IntVar(&c.runs, "runs", 3, "measured runs per proxy; the median is reported")
	flag.IntVar(&c.conns, "connections", 32, "keep-alive client connections")
	flag.DurationVar(&c.limit, "max-run", 120*time.Second, "upper bound on one run's time")
	flag.IntVar(&c.syWorkers, "switchyard-workers", 64, "switchyard --workers (and HAProxy server maxconn): on, but above -connections")
	flag.IntVar(&c.threads, "threads", 1, "threads of every proxy: HAProxy nbthread, nginx worker_processes, switchyard --threads, plainproxy GOMAXPROCS; 0: each its default (one per CPU)")
	flag.BoolVar(&c.accessLog, "access-log", false, "turn on HAProxy's and nginx's access logs too (switchyard always logs, to a file)")
	flag.StringVar(&c.syLog, "switchyard-log", "", "switchyard --log-address; empty: a file in the scratch directory (\"off\" to measure without it)")
	flag.StringVar(&c.client, "client", "auto", "wrk, go, or auto (wrk if installed)")
	flag.StringVar(&c.bins.Switchyard, "switchyard", "/tmp/switchyard", "switchyard binary; skipped if absent")
	flag.BoolVar(&c.jsonOut, "json", false, "print JSON instead of a table")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory (configs, process and access logs)")
	flag.StringVar(&c.profile, "profile", "", "instead of measuring: write a CPU profile of switchyard (built with pprof) under the first scenario's load to this file")
	flag.IntVar(&c.profileSeconds, "profile-seconds", 10, "length of the -profile profile; -requests must outlast it")
	flag.Parse()
	c.proxies = strings.Split(*proxies, ",")
	var err error
	if c.scenarios, err = pickScenarios(*scs); err != nil {
		fmt.Fprintln(os.Stderr, "cpu:", err)
		os.Exit(2)
	}
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

	if c.profile != "" {
		return profileRun(ctx, g, c, drive, backend.Addr)
	}
	loadBefore := loadavg()
	results, err := measureAll(ctx, g, c, drive, backend.Addr)
	if err != nil {
		return err
	}
	load := loadBefore + " → " + loadavg()
	setRatios(results)
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	printTable(os.Stdout, results, c, load)
	return nil
}

// setRatios compares each result with the references of its scenario.
func setRatios(results []Result) {
	for i := range results {
		r := &results[i]
		for _, ref := range results {
			if ref.Scenario == r.Scenario && slices.Contains(references, ref.Proxy) && ref.CPUPerReq > 0 {
				if r.Ratios == nil {
					r.Ratios = map[string]float64{}
				}
				r.Ratios[ref.Proxy] = r.CPUPerReq / ref.CPUPerReq
			}
		}
	}
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

// measureAll starts every proxy and warms each up, then, scenario by
// scenario, measures them in rounds — run 1 of each, run 2 of each, … — so
// that load from other processes on the machine spreads over all proxies
// instead of one.
func measureAll(ctx context.Context, g *launch.Group, c config, drive driver, upstream string) ([]Result, error) {
	procs, err := startAll(ctx, g, c, drive, upstream)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, sc := range c.scenarios {
		rs := make([]Result, len(procs))
		for round := 1; round <= c.runs; round++ {
			for i, p := range procs {
				r, err := measureOne(ctx, c, sc, drive, p)
				if err != nil {
					return nil, fmt.Errorf("%s %s run %d: %w", sc.name, p.Name, round, err)
				}
				rs[i].Scenario, rs[i].Proxy = sc.name, p.Name
				rs[i].Runs = append(rs[i].Runs, r)
				rs[i].Errors += r.Errors
				fmt.Fprintf(os.Stderr, "%s %s run %d: %d req, %.2f µs CPU/req, %.0f req/s, %d errors\n",
					sc.name, p.Name, round, r.Requests, r.CPUPerReq, r.RPS, r.Errors)
			}
		}
		for i := range rs {
			summarize(&rs[i])
		}
		results = append(results, rs...)
	}
	return results, nil
}

// startAll starts the proxies, each warmed up with -warmup requests of
// every scenario.
func startAll(ctx context.Context, g *launch.Group, c config, drive driver, upstream string) ([]*launch.Process, error) {
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
			Threads:       c.threads,
		})
		if errors.Is(err, launch.ErrUnavailable) {
			fmt.Fprintf(os.Stderr, "SKIP %s: %v\n", kind, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, sc := range c.scenarios {
			if c.warmup == 0 {
				break
			}
			if _, err := drive(ctx, "http://"+p.Addr, sc, c.warmup, c.conns, c.limit); err != nil {
				return nil, fmt.Errorf("%s warm-up (%s): %w", kind, sc.name, err)
			}
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// summarize sets the medians and the spread of res's runs.
func summarize(res *Result) {
	cpus := make([]float64, len(res.Runs))
	rps := make([]float64, len(res.Runs))
	for j, r := range res.Runs {
		cpus[j], rps[j] = r.CPUPerReq, r.RPS
	}
	res.CPUPerReq, res.RPS = median(cpus), median(rps)
	res.CPUMin, res.CPUMax = slices.Min(cpus), slices.Max(cpus)
}

// measureOne drives c.requests through p and reads p's CPU time around it.
func measureOne(ctx context.Context, c config, sc scenario, drive driver, p *launch.Process) (Run, error) {
	before, err := launch.TreeCPU(p.PID())
	if err != nil {
		return Run{}, err
	}
	d, err := drive(ctx, "http://"+p.Addr, sc, c.requests, c.conns, c.limit)
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
	fmt.Fprintf(w, "%d runs × %d requests, %d connections, fast syncapp upstream; load average %s\n",
		c.runs, c.requests, c.conns, load)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tproxy\tCPU µs/req\tspread (min–max)\treq/s\t")
	for _, ref := range references {
		fmt.Fprintf(tw, "× %s\t", ref)
	}
	fmt.Fprintln(tw, "errors\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f–%.2f\t%.0f\t", r.Scenario, r.Proxy, r.CPUPerReq, r.CPUMin, r.CPUMax, r.RPS)
		for _, ref := range references {
			if v, ok := r.Ratios[ref]; ok {
				fmt.Fprintf(tw, "%.2f\t", v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintf(tw, "%d\t\n", r.Errors)
	}
	tw.Flush()
}
