package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Row is one proxy × scenario result.
type Row struct {
	Proxy          string  `json:"proxy"`
	Scenario       string  `json:"scenario"`
	Schedule       string  `json:"schedule"` // RATE[/DURATION]+…, as -scenarios says
	QueueTimeoutMs int64   `json:"queue_timeout_ms"`
	Sent           int     `json:"sent"`
	Wall           float64 `json:"wall_s"`      // first scheduled send to last answer (drain included)
	Goodput        float64 `json:"goodput_rps"` // 200s / Wall

	OK    int     `json:"ok"`
	OKP50 float64 `json:"ok_p50_ms"`
	OKP99 float64 `json:"ok_p99_ms"`

	Shed           int     `json:"shed"` // 503s
	ShedRetryAfter int     `json:"shed_with_retry_after"`
	ShedP50        float64 `json:"shed_p50_ms"`
	ShedP99        float64 `json:"shed_p99_ms"`

	Errors      int            `json:"errors"` // neither 200 nor 503
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	HealthOK    int            `json:"health_ok"`
	HealthTotal int            `json:"health_total"`
	HealthP99   float64        `json:"health_p99_ms"`

	BackendPeak    int64 `json:"backend_peak"`     // most non-health requests the app held at once
	BackendPeakAll int64 `json:"backend_peak_all"` // most requests of any kind
	BackendServed  int64 `json:"backend_served"`   // non-health requests the app answered (some too late for the client)
}

func summarize(r *Row, load, health []outcome, wall time.Duration) {
	r.Sent = len(load)
	r.Wall = wall.Seconds()
	var ok, shed []time.Duration
	r.ErrorKinds = map[string]int{}
	for _, o := range load {
		switch o.status {
		case 200:
			ok = append(ok, o.latency)
		case 503:
			shed = append(shed, o.latency)
			if o.retryAfter {
				r.ShedRetryAfter++
			}
		case 0:
			r.ErrorKinds[o.err]++
		default:
			r.ErrorKinds[fmt.Sprintf("HTTP %d", o.status)]++
		}
	}
	r.OK, r.Shed = len(ok), len(shed)
	r.Errors = r.Sent - r.OK - r.Shed
	if wall > 0 {
		r.Goodput = float64(r.OK) / wall.Seconds()
	}
	r.OKP50, r.OKP99 = pct(ok, 50), pct(ok, 99)
	r.ShedP50, r.ShedP99 = pct(shed, 50), pct(shed, 99)

	var hl []time.Duration
	for _, o := range health {
		if o.status == 200 {
			r.HealthOK++
		}
		hl = append(hl, o.latency) // failures count at the time they took
	}
	r.HealthTotal = len(health)
	r.HealthP99 = pct(hl, 99)
}

// pct is the nearest-rank percentile in milliseconds; NaN-free: 0 for none.
func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.9999) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

func (r Row) errorSummary() string {
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return r.ErrorKinds[kinds[i]] > r.ErrorKinds[kinds[j]] })
	var parts []string
	for i, k := range kinds {
		if i == 4 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", r.ErrorKinds[k], k))
	}
	return strings.Join(parts, "; ")
}
