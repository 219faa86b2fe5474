package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// scenario is a rate schedule offered open-loop, and the queue timeout the
// proxies get for it.
type scenario struct {
	name         string
	spec         string  // as written, for the table
	phases       []phase // one after the other
	queueTimeout time.Duration
}

// phase is a constant rate for a while.
type phase struct {
	rate float64 // requests per second
	d    time.Duration
}

// The scenarios (3 workers × 50 ms = 60 rps): sustained 3.3×
// overload, a burst FIFO absorbs, under capacity; and, with -scenarios
// long, a long 1.5× overload and a step 0.5× → 2× → 0.5×.
const (
	defaultScenarios = "over=200/10s@1s,burst=200/0.5s+20/9.5s@3s,under=40/10s@1s"
	longScenarios    = "long=1.5x/60s@3s,step=0.5x/10s+2x/10s+0.5x/10s@3s"
)

// parseScenarios reads a comma-separated list of
// name=RATE[/DURATION][+RATE/DURATION…][@QUEUE_TIMEOUT]. RATE is requests
// per second, or a multiple of capacity with an x (1.5x). A phase without a
// duration lasts dflt; a scenario without a timeout gets timeout.
// "default" and "long" stand for the lists above.
func parseScenarios(list string, capacity float64, dflt, timeout time.Duration) ([]scenario, error) {
	var items []string
	for _, s := range strings.Split(list, ",") {
		switch s {
		case "default":
			items = append(items, strings.Split(defaultScenarios, ",")...)
		case "long":
			items = append(items, strings.Split(longScenarios, ",")...)
		default:
			items = append(items, s)
		}
	}
	var out []scenario
	for _, s := range items {
		sc, err := parseScenario(s, capacity, dflt, timeout)
		if err != nil {
			return nil, fmt.Errorf("-scenarios: %q: %w", s, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

func parseScenario(s string, capacity float64, dflt, timeout time.Duration) (scenario, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return scenario{}, fmt.Errorf("want name=RATE[/DURATION][+RATE/DURATION…][@QUEUE_TIMEOUT]")
	}
	sc := scenario{name: name, queueTimeout: timeout}
	if sched, to, ok := strings.Cut(rest, "@"); ok {
		d, err := time.ParseDuration(to)
		if err != nil || d <= 0 {
			return scenario{}, fmt.Errorf("queue timeout %q: want a positive duration", to)
		}
		rest, sc.queueTimeout = sched, d
	}
	sc.spec = rest
	var total time.Duration
	for _, p := range strings.Split(rest, "+") {
		ph, err := parsePhase(p, capacity, dflt)
		if err != nil {
			return scenario{}, err
		}
		total += ph.d
		sc.phases = append(sc.phases, ph)
	}
	if total > time.Hour {
		return scenario{}, fmt.Errorf("lasts %v: at most 1h", total)
	}
	return sc, nil
}

func parsePhase(p string, capacity float64, dflt time.Duration) (phase, error) {
	rate, dur, hasDur := strings.Cut(p, "/")
	ph := phase{d: dflt}
	mult := strings.HasSuffix(rate, "x")
	r, err := strconv.ParseFloat(strings.TrimSuffix(rate, "x"), 64)
	if mult {
		r *= capacity
	}
	if err != nil || r <= 0 || r > 5000 {
		return phase{}, fmt.Errorf("rate %q: want requests/s or a multiple of capacity (1.5x), up to 5000/s", rate)
	}
	ph.rate = r
	if hasDur {
		if ph.d, err = time.ParseDuration(dur); err != nil || ph.d <= 0 {
			return phase{}, fmt.Errorf("duration %q: want a positive duration", dur)
		}
	}
	return ph, nil
}

// sendTimes are the offsets from the start at which the requests are sent:
// evenly spaced at each phase's rate.
func (sc scenario) sendTimes() []time.Duration {
	var out []time.Duration
	var start time.Duration
	for _, ph := range sc.phases {
		// From the index, not by adding up a gap rounded to nanoseconds:
		// 90/s for 60 s is 5400 requests, not 5401.
		for i := 0; ; i++ {
			at := time.Duration(float64(i) * float64(time.Second) / ph.rate)
			if at >= ph.d {
				break
			}
			out = append(out, start+at)
		}
		start += ph.d
	}
	return out
}

// duration is the whole schedule's.
func (sc scenario) duration() time.Duration {
	var d time.Duration
	for _, ph := range sc.phases {
		d += ph.d
	}
	return d
}

// peakRate is the highest rate of the schedule.
func (sc scenario) peakRate() float64 {
	var r float64
	for _, ph := range sc.phases {
		r = max(r, ph.rate)
	}
	return r
}
