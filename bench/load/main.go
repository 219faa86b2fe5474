// Command load measures how proxies shed load in front of a sync-worker app.
//
// For each proxy × scenario it starts a fresh syncapp backend (-workers ×
// -service ⇒ capacity) and a fresh proxy in front of it, offers a fixed
// request rate open-loop for -duration while a prober hits the health path,
// and prints one row: goodput, latency of successes and of 503s, errors,
// health probes, and the most requests the app ever held at once. Every child
// process is stopped at the end, also on Ctrl-C. See bench/README.md.
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
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

type config struct {
	proxies      []string
	scenarios    []scenario
	duration     time.Duration
	workers      int
	service      time.Duration
	queueTimeout time.Duration
	healthPath   string
	healthRate   float64
	timeout      time.Duration
	healthTO     time.Duration
	bins         launch.Binaries
	jsonOut      bool
	keep         bool
}

type scenario struct {
	name string
	rate float64
}

func parseFlags() (config, error) {
	var c config
	proxies := flag.String("proxies", "switchyard,haproxy", "comma-separated: switchyard, haproxy, plainproxy, nginx, direct")
	scen := flag.String("scenarios", "under=40,over=200", "comma-separated name=rps")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "how long to offer load, per row")
	flag.IntVar(&c.workers, "workers", 3, "syncapp workers; also the proxy's concurrency limit")
	flag.DurationVar(&c.service, "service", 50*time.Millisecond, "syncapp service time per request")
	flag.DurationVar(&c.queueTimeout, "queue-timeout", time.Second, "proxy queue timeout")
	flag.StringVar(&c.healthPath, "health-path", "/healthcheck", "health path (bypasses the queue)")
	flag.Float64Var(&c.healthRate, "health-rps", 10, "health probes per second")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Second, "client timeout per request")
	flag.DurationVar(&c.healthTO, "health-timeout", 2*time.Second, "client timeout per health probe")
	flag.StringVar(&c.bins.Switchyard, "switchyard", "/tmp/switchyard", "switchyard binary; skipped if absent")
	flag.BoolVar(&c.jsonOut, "json", false, "print JSON rows instead of a table")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory (configs, process logs)")
	flag.Parse()

	c.proxies = strings.Split(*proxies, ",")
	for _, s := range strings.Split(*scen, ",") {
		name, rps, ok := strings.Cut(s, "=")
		r, err := strconv.ParseFloat(rps, 64)
		if !ok || err != nil || r <= 0 || r > 5000 {
			return c, fmt.Errorf("-scenarios: %q is not name=rps with 0 < rps <= 5000", s)
		}
		c.scenarios = append(c.scenarios, scenario{name, r})
	}
	if c.duration <= 0 || c.duration > time.Hour || c.healthRate < 0 || c.healthRate > 1000 || c.workers < 1 {
		return c, errors.New("need 0 < -duration <= 1h, 0 <= -health-rps <= 1000, -workers >= 1")
	}
	return c, nil
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
	fmt.Fprintf(os.Stderr, "backend: %d workers × %s = %.0f rps capacity; queue timeout %s; %s per row\n",
		c.workers, c.service, capacity, c.queueTimeout, c.duration)

	var rows []Row
	for _, kind := range c.proxies {
		for _, sc := range c.scenarios {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			row, err := runOne(ctx, g, c, kind, sc)
			if errors.Is(err, launch.ErrUnavailable) {
				fmt.Fprintf(os.Stderr, "SKIP %s: %v\n", kind, err)
				break
			}
			if err != nil {
				return err
			}
			rows = append(rows, row)
			fmt.Fprintf(os.Stderr, "done %s/%s: goodput %.1f rps, %d shed, %d errors\n",
				kind, sc.name, row.Goodput, row.Shed, row.Errors)
		}
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	printTable(os.Stdout, rows)
	return nil
}

// runOne starts a fresh backend and proxy, runs one scenario and stops both.
func runOne(ctx context.Context, g *launch.Group, c config, kind string, sc scenario) (Row, error) {
	backend, err := g.StartSyncapp(c.bins.Syncapp, c.workers, c.service, c.healthPath)
	if err != nil {
		return Row{}, err
	}
	defer backend.Stop()
	proxy, err := g.StartProxy(kind, c.bins, launch.Options{
		Upstream: backend.Addr, Workers: c.workers, QueueTimeout: c.queueTimeout, HealthPath: c.healthPath,
	})
	if err != nil {
		return Row{}, err
	}
	defer proxy.Stop()

	n := int(sc.rate * c.duration.Seconds())
	nh := int(c.healthRate * c.duration.Seconds())
	client := newClient(int(sc.rate*c.timeout.Seconds())+16, c.timeout)
	prober := newClient(8, c.healthTO)
	defer client.CloseIdleConnections()
	defer prober.CloseIdleConnections()

	start := time.Now().Add(100 * time.Millisecond)
	var health []outcome
	var wg sync.WaitGroup
	if nh > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			health, _ = openLoop(ctx, prober, "http://"+proxy.Addr+c.healthPath, c.healthRate, nh, start)
		}()
	}
	load, wall := openLoop(ctx, client, "http://"+proxy.Addr+"/work", sc.rate, n, start)
	wg.Wait()
	if ctx.Err() != nil {
		return Row{}, ctx.Err()
	}
	if proxy.Exited() && kind != launch.Direct {
		return Row{}, fmt.Errorf("%s exited during the run; its output (%s):\n%s", kind, proxy.LogPath, proxy.LogTail(2000))
	}

	row := Row{Proxy: kind, Scenario: sc.name, Offered: sc.rate}
	summarize(&row, load, health, wall)
	st, err := backendStats(backend.Addr)
	if err != nil {
		return Row{}, err
	}
	row.BackendPeak, row.BackendPeakAll, row.BackendServed = st.Peak, st.PeakAll, st.Served
	return row, nil
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
	fmt.Fprintln(tw, "proxy\tscenario\toffered\tgoodput\tok\tok p50\tok p99\tshed\t+R-A\tshed p50\tshed p99\terrs\thealth ok\thealth p99\tpeak\tpeak_all\twall\t")
	fmt.Fprintln(tw, "\t\trps\trps\t\tms\tms\t503\t\tms\tms\t\t\tms\t\t\ts\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%d\t%.0f\t%.0f\t%d\t%d\t%.0f\t%.0f\t%d\t%d/%d\t%.0f\t%d\t%d\t%.1f\t\n",
			r.Proxy, r.Scenario, r.Offered, r.Goodput, r.OK, r.OKP50, r.OKP99,
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
