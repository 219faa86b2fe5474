package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/manager"
)

// How the client subcommands show ids: containers as docker ps does,
// configs shorter (they are read beside a container id).
const configIDLen = 8

// printJSON writes v as the API encodes its answers (--json).
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printSwitch writes what a switch or rollback did.
func printSwitch(r *clientRun, res api.SwitchResult) error {
	if r.cfg.json {
		return printJSON(r.stdout, res)
	}
	w := r.stdout
	fmt.Fprintln(w, containerLine("active  ", res.Active))
	switch {
	case res.Previous == nil:
		fmt.Fprintln(w, "previous none")
	case res.Drained:
		fmt.Fprintf(w, "previous %s stopped after its requests finished (drained in %s)\n",
			ids.Short(res.Previous.ID), humanDuration(res.DrainFor))
	default:
		fmt.Fprintf(w, "previous %s stopped when the drain timeout passed (%s), with requests still in flight\n",
			ids.Short(res.Previous.ID), humanDuration(res.DrainFor))
	}
	return nil
}

// printStatus writes the readable summary of /status: the app, then its
// launched containers.
func printStatus(w io.Writer, st api.StatusResponse) {
	now := st.Started.Add(st.Uptime) // the server's clock, not ours
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "app\t%s (switchyard %s, up %s)\n", st.App, st.Version, humanDuration(st.Uptime))
	fmt.Fprintf(tw, "health\t%s\n", healthLine(st))
	if a := st.Active; a != nil {
		fmt.Fprintf(tw, "active\t%s  image %s  config %s  %s  up %s  in flight %d\n", ids.Short(a.ID), a.Image,
			ids.Cut(a.ConfigID, configIDLen), a.Health, upFor(*a, now), a.InFlight)
	} else {
		fmt.Fprintf(tw, "active\tnone\n")
	}
	if r := st.Restart; r != nil {
		fmt.Fprintf(tw, "restart\t%s\n", restartLine(r))
	}
	if st.Operation != "" {
		fmt.Fprintf(tw, "running\t%s\n", st.Operation)
	}
	printProxy(tw, st)
	if st.Previous != "" {
		fmt.Fprintf(tw, "previous\tconfig %s (what rollback launches)\n", ids.Cut(st.Previous, configIDLen))
	}
	fmt.Fprintf(tw, "configs\t%s\n", st.Source)
	tw.Flush()

	fmt.Fprintf(w, "\nlaunched containers (%d):\n", len(st.Launched))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONTAINER\tIMAGE\tCONFIG\tHEALTH\tUP\tIN FLIGHT")
	for _, c := range st.Launched {
		mark := " " // "*" marks the active one, as git branch does
		if st.Active != nil && c.ID == st.Active.ID {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%d\n", mark, ids.Short(c.ID), c.Image, ids.Cut(c.ConfigID, configIDLen),
			c.Health, upFor(c, now), c.InFlight)
	}
	tw.Flush()
}

// upFor is how long a container has run, "-" once it died.
func upFor(c api.ContainerInfo, now time.Time) string {
	if c.Health == manager.HealthDead {
		return "-"
	}
	return humanDuration(now.Sub(c.Started))
}

// restartLine says how bringing the dead active container back goes.
func restartLine(r *manager.RestartStatus) string {
	line := fmt.Sprintf("bringing the dead container back: try %d of %d", r.Attempts, r.MaxAttempts)
	if r.State == manager.RestartGaveUp {
		line = fmt.Sprintf("GAVE UP after %d tries (a crash loop): deploy or roll back", r.Attempts)
	}
	if r.LastError != "" {
		line += "; last: " + shorten(r.LastError, 100)
	}
	return line
}

func healthLine(st api.StatusResponse) string {
	switch {
	case st.Healthy:
		return "healthy"
	case st.Active == nil:
		return "NOT HEALTHY: no active container"
	}
	return fmt.Sprintf("NOT HEALTHY: active container is %s", st.Active.Health)
}

// printProxy writes the proxy's figures: requests, codes, latencies.
func printProxy(tw io.Writer, st api.StatusResponse) {
	p := st.Proxy
	fmt.Fprintf(tw, "requests\t%d  in flight %d  queued %d  shed %d  failed %d\n", p.Requests, p.InFlight, p.Queued, p.Shed, p.Failed)
	var cs []string
	for _, code := range slices.Sorted(maps.Keys(p.Codes)) {
		cs = append(cs, fmt.Sprintf("%d: %d", code, p.Codes[code]))
	}
	if len(cs) == 0 {
		cs = []string{"none yet"}
	}
	fmt.Fprintf(tw, "codes\t%s\n", strings.Join(cs, "  "))
	for _, name := range []string{"queue", "app", "total"} {
		if l, ok := p.Latency[name]; ok && l.N > 0 {
			fmt.Fprintf(tw, "%s ms\tp50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (%d)\n", name, l.P50, l.P90, l.P99, l.Max, l.N)
		}
	}
}

// printHistory writes the deployment history as a table.
func printHistory(w io.Writer, events []api.Event) error {
	if len(events) == 0 {
		fmt.Fprintln(w, "no deployments yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tRESULT\tCONFIG\tCONTAINER\tWHO\tTOOK\tERROR")
	for _, e := range events {
		errLine, _, _ := strings.Cut(e.Error, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Action, e.Result,
			orDash(ids.Cut(e.ConfigID, configIDLen)), orDash(ids.Short(e.Container)), orDash(e.Who), humanDuration(e.Duration), shorten(errLine, 80))
	}
	return tw.Flush()
}

// containerLine is one container on one line, after label.
func containerLine(label string, c api.ContainerInfo) string {
	return fmt.Sprintf("%s %s  image %s  config %s  %s  at %s", label, ids.Short(c.ID), c.Image,
		ids.Cut(c.ConfigID, configIDLen), orDash(string(c.Health)), orDash(c.Addr))
}

// progressID is ids.Cut with an ellipsis when it cut.
func progressID(id string, n int) string {
	if s := ids.Cut(id, n); s != id {
		return s + "…"
	}
	return id
}

// humanDuration rounds d for people: 850ms, 42s, 3m12s, 5h02m, 3d04h.
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
