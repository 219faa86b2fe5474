// Command load measures how proxies shed load in front of a sync-worker app.
//
// For each proxy × scenario it starts a fresh syncapp backend (-workers ×
// -service ⇒ capacity) and a fresh proxy in front of it, offers the
// scenario's rate schedule open-loop while a prober hits the health path,
// and prints one row: goodput, latency of successes and of 503s, errors,
// health probes, and the most requests the app ever held at once. Then it
// checks switchyard's rows against HAProxy's for the targets of the
// adaptive queue (docs/queue.md). Every child process is stopped at the
// end, also on Ctrl-C. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

type config struct {
	proxies    []proxyKind
	scenarios  []scenario
	workers    int
	service    time.Duration
	healthPath string
	healthRate float64
	timeout    time.Duration
	healthTO   time.Duration
	bins       launch.Binaries
	jsonOut    bool
	keep       bool
}

// proxyKind is a proxy as -proxies names it: switchyard-fifo is switchyard
// with --queue-discipline fifo.
type proxyKind struct {
	name       string // for the table
	kind       string // for launch
	discipline string
}

func parseProxies(list string) ([]proxyKind, error) {
	var out []proxyKind
	for _, name := range strings.Split(list, ",") {
		k := proxyKind{name: name, kind: name}
		if d, ok := strings.CutPrefix(name, launch.Switchyard+"-"); ok {
			switch d {
			case "adaptive", "fifo", "lifo":
				k.kind, k.discipline = launch.Switchyard, d
			default:
				return nil, fmt.Errorf("-proxies: %q: switchyard's disciplines are adaptive, fifo and lifo", name)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

func parseFlags() (config, error) {
	var c config
	proxies := flag.String("proxies", "haproxy,switchyard", "comma-separated: switchyard (its default queue), switchyard-adaptive, switchyard-fifo, switchyard-lifo, haproxy, plainproxy, nginx, direct")
	scen := flag.String("scenarios", "default", "comma-separated name=RATE[/DURATION][+RATE/DURATION…][@QUEUE_TIMEOUT], RATE in rps or a multiple of capacity (1.5x); \"default\": "+defaultScenarios+"; \"long\": "+longScenarios)
	duration := flag.Duration("duration", 10*time.Second, "how long a phase lasts when the scenario does not say")
	flag.IntVar(&c.workers, "workers", 3, "syncapp workers; also the proxy's concurrency limit")
	flag.DurationVar(&c.service, "service", 50*time.Millisecond, "syncapp service time per request")
	queueTimeout := flag.Duration("queue-timeout", time.Second, "proxy queue timeout when the scenario does not say")
	flag.StringVar(&c.healthPath, "health-path", "/healthcheck", "health path (bypasses the queue)")
	flag.Float64Var(&c.healthRate, "health-rps", 10, "health probes per second")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Second, "client timeout per request")
	flag.DurationVar(&c.healthTO, "health-timeout", 2*time.Second, "client timeout per health probe")
	flag.StringVar(&c.bins.Switchyard, "switchyard", "/tmp/switchyard", "switchyard binary; skipped if absent")
	flag.BoolVar(&c.jsonOut, "json", false, "print JSON rows instead of a table")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory (configs, process logs)")
	flag.Parse()

	if *duration <= 0 || *duration > time.Hour || c.healthRate < 0 || c.healthRate > 1000 || c.workers < 1 || c.service <= 0 || *queueTimeout <= 0 {
		return c, errors.New("need 0 < -duration <= 1h, 0 <= -health-rps <= 1000, -workers >= 1, -service > 0, -queue-timeout > 0")
	}
	var err error
	if c.proxies, err = parseProxies(*proxies); err != nil {
		return c, err
	}
	capacity := float64(c.workers) / c.service.Seconds()
	c.scenarios, err = parseScenarios(*scen, capacity, *duration, *queueTimeout)
	return c, err
}

func main() {
	c, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	launch.Main("load", c.keep, func(ctx context.Context, g *launch.Group) error { return run(ctx, g, c) })
}

func run(ctx context.Context, g *launch.Group, c config) error {
	var err error
	if c.bins.Syncapp, err = g.Build("bench/syncapp"); err != nil {
		return err
	}
	if c.bins.PlainProxy, err = g.Build("bench/plainproxy"); err != nil {
		return err
	}
	capacity := float64(c.workers) / c.service.Seconds()
	fmt.Fprintf(os.Stderr, "backend: %d workers × %s = %.0f rps capacity\n", c.workers, c.service, capacity)

	var rows []Row
	// Scenario by scenario, every proxy in turn: a row and its reference
	// are measured minutes apart at most.
	skip := map[string]bool{}
	for _, sc := range c.scenarios {
		for _, pk := range c.proxies {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if skip[pk.name] {
				continue
			}
			row, err := runOne(ctx, g, c, pk, sc)
			if errors.Is(err, launch.ErrUnavailable) {
				fmt.Fprintf(os.Stderr, "SKIP %s: %v\n", pk.name, err)
				skip[pk.name] = true
				continue
			}
			if err != nil {
				return err
			}
			rows = append(rows, row)
			fmt.Fprintf(os.Stderr, "done %s/%s: goodput %.1f rps, %d shed, %d errors\n",
				pk.name, sc.name, row.Goodput, row.Shed, row.Errors)
		}
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	printTable(os.Stdout, rows)
	printChecks(os.Stdout, rows, c.workers)
	return nil
}

// runOne starts a fresh backend and proxy, runs one scenario and stops both.
func runOne(ctx context.Context, g *launch.Group, c config, pk proxyKind, sc scenario) (Row, error) {
	backend, err := g.StartSyncapp(c.bins.Syncapp, c.workers, c.service, c.healthPath)
	if err != nil {
		return Row{}, err
	}
	defer backend.Stop()
	proxy, err := g.StartProxy(pk.kind, c.bins, launch.Options{
		Upstream: backend.Addr, Workers: c.workers, QueueTimeout: sc.queueTimeout, HealthPath: c.healthPath,
		Discipline: pk.discipline,
	})
	if err != nil {
		return Row{}, err
	}
	defer proxy.Stop()

	load, health, wall := offer(ctx, c, proxy.Addr, sc)
	if ctx.Err() != nil {
		return Row{}, ctx.Err()
	}
	if proxy.Exited() && pk.kind != launch.Direct {
		return Row{}, fmt.Errorf("%s exited during the run; its output (%s):\n%s", pk.name, proxy.LogPath, proxy.LogTail(2000))
	}
	row := Row{Proxy: pk.name, Scenario: sc.name, Schedule: sc.spec, QueueTimeoutMs: sc.queueTimeout.Milliseconds()}
	summarize(&row, load, health, wall)
	st, err := backendStats(backend.Addr)
	if err != nil {
		return Row{}, err
	}
	row.BackendPeak, row.BackendPeakAll, row.BackendServed = st.Peak, st.PeakAll, st.Served
	return row, nil
}

// offer sends the scenario's requests to addr open-loop, and health probes
// at -health-rps meanwhile; it returns when every request has ended.
func offer(ctx context.Context, c config, addr string, sc scenario) (load, health []outcome, wall time.Duration) {
	client := newClient(int(sc.peakRate()*c.timeout.Seconds())+16, c.timeout)
	prober := newClient(8, c.healthTO)
	defer client.CloseIdleConnections()
	defer prober.CloseIdleConnections()

	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	if nh := int(c.healthRate * sc.duration().Seconds()); nh > 0 {
		probes := scenario{phases: []phase{{rate: c.healthRate, d: sc.duration()}}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			health, _ = openLoop(ctx, prober, "http://"+addr+c.healthPath, probes.sendTimes(), start)
		}()
	}
	load, wall = openLoop(ctx, client, "http://"+addr+"/work", sc.sendTimes(), start)
	wg.Wait()
	return load, health, wall
}

type backendStatsJSON struct {
	Peak    int64 `json:"peak"`
	PeakAll int64 `json:"peak_all"`
	Served  int64 `json:"served"`
}

func backendStats(addr string) (backendStatsJSON, error) {
	var st backendStatsJSON
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/_stats")
	if err != nil {
		return st, fmt.Errorf("read syncapp stats: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse syncapp stats %q: %w", b, err)
	}
	return st, nil
}

func printTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tproxy\toffered\tqueue\tsent\tok/s\tok p50\tok p99\tshed\t+R-A\tshed p50\tshed p99\terrs\thealth ok\thealth p99\tpeak\tpeak_all\twall\t")
	fmt.Fprintln(tw, "\t\trps/duration\ttimeout\t\t\tms\tms\t503\t\tms\tms\t\t\tms\t\t\ts\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\t%.0f\t%.0f\t%d\t%d\t%.0f\t%.0f\t%d\t%d/%d\t%.0f\t%d\t%d\t%.1f\t\n",
			r.Scenario, r.Proxy, r.Schedule, time.Duration(r.QueueTimeoutMs)*time.Millisecond, r.Sent, r.Goodput, r.OKP50, r.OKP99,
			r.Shed, r.ShedRetryAfter, r.ShedP50, r.ShedP99, r.Errors,
			r.HealthOK, r.HealthTotal, r.HealthP99, r.BackendPeak, r.BackendPeakAll, r.Wall)
	}
	tw.Flush()
	for _, r := range rows {
		if r.Errors > 0 {
			fmt.Fprintf(w, "errors %s/%s: %s\n", r.Proxy, r.Scenario, r.errorSummary())
		}
	}
}
