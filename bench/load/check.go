package main

import (
	"fmt"
	"io"
	"strings"
)

// check is one of the adaptive queue's targets (issue 14, docs/queue.md):
// switchyard's row of a scenario against HAProxy's of the same run.
type check struct {
	scenario string
	what     string
	pass     func(sy, ha Row, workers int) (bool, string)
}

var checks = []check{
	{"over", "ok/s ≥ 0.97 × HAProxy's", func(sy, ha Row, _ int) (bool, string) {
		return sy.Goodput >= 0.97*ha.Goodput, fmt.Sprintf("%.1f vs %.1f", sy.Goodput, ha.Goodput)
	}},
	{"over", "ok p99 ≤ 300 ms", func(sy, ha Row, _ int) (bool, string) {
		return sy.OKP99 <= 300, fmt.Sprintf("%.0f ms (HAProxy %.0f)", sy.OKP99, ha.OKP99)
	}},
	{"over", "shed p50 ≤ 50 ms", func(sy, ha Row, _ int) (bool, string) {
		return sy.Shed > 0 && sy.ShedP50 <= 50, fmt.Sprintf("%.0f ms (HAProxy %.0f)", sy.ShedP50, ha.ShedP50)
	}},
	{"over", "every health probe ok", func(sy, _ Row, _ int) (bool, string) {
		return sy.HealthOK == sy.HealthTotal, fmt.Sprintf("%d/%d", sy.HealthOK, sy.HealthTotal)
	}},
	{"over", "app peak = workers", func(sy, _ Row, workers int) (bool, string) {
		return sy.BackendPeak == int64(workers), fmt.Sprintf("%d, workers %d", sy.BackendPeak, workers)
	}},
	{"burst", "shed ≤ 1 %", func(sy, ha Row, _ int) (bool, string) {
		return sy.Shed*100 <= sy.Sent, fmt.Sprintf("%d/%d (HAProxy %d)", sy.Shed, sy.Sent, ha.Shed)
	}},
	{"burst", "ok p99 ≤ 1.1 × HAProxy's", func(sy, ha Row, _ int) (bool, string) {
		return sy.OKP99 <= 1.1*ha.OKP99, fmt.Sprintf("%.0f vs %.0f ms", sy.OKP99, ha.OKP99)
	}},
	{"under", "nothing shed", func(sy, ha Row, _ int) (bool, string) {
		return sy.Shed == 0 && sy.Errors == 0, fmt.Sprintf("%d shed, %d errors", sy.Shed, sy.Errors)
	}},
	{"under", "ok p99 ≤ HAProxy's + 5 ms", func(sy, ha Row, _ int) (bool, string) {
		return sy.OKP99 <= ha.OKP99+5, fmt.Sprintf("%.0f vs %.0f ms", sy.OKP99, ha.OKP99)
	}},
}

// printChecks prints each target whose scenario was run by both switchyard
// (its default queue, or switchyard-adaptive) and HAProxy.
func printChecks(w io.Writer, rows []Row, workers int) {
	find := func(scenario string, names ...string) (Row, bool) {
		for _, r := range rows {
			for _, n := range names {
				if r.Scenario == scenario && r.Proxy == n {
					return r, true
				}
			}
		}
		return Row{}, false
	}
	var lines []string
	for _, c := range checks {
		sy, ok1 := find(c.scenario, "switchyard", "switchyard-adaptive")
		ha, ok2 := find(c.scenario, "haproxy")
		if !ok1 || !ok2 {
			continue
		}
		ok, detail := c.pass(sy, ha, workers)
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
		}
		lines = append(lines, fmt.Sprintf("%s  %-6s %-32s %s", verdict, c.scenario, c.what, detail))
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\ntargets (switchyard vs HAProxy, same run):\n%s\n", strings.Join(lines, "\n"))
	}
}
