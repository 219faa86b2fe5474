package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/ids"
)

// runFleet is `switchyard fleet`: what current.json names and every host's
// heartbeat, as a table (or the heartbeats as JSON).
func runFleet(ctx context.Context, c *bucketConfig, b *deployconfig.Bucket, _ []string, stdout, stderr io.Writer) error {
	hosts, err := fleet.ReadHosts(ctx, b)
	if err != nil {
		return err
	}
	if c.json {
		if hosts == nil {
			hosts = []fleet.Heartbeat{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(hosts)
	}
	if data, _, err := b.Get(ctx, deployconfig.CurrentName, ""); err == nil {
		if rel, err := b.ParseRelease(data); err == nil {
			fmt.Fprintf(stdout, "current.json: %s, released by %s at %s\n\n", ids.Short(rel.ID), cmpOr(rel.By, "?"), rel.Time.Format(time.RFC3339))
		}
	}
	printHosts(stdout, hosts, time.Now())
	return nil
}

func printHosts(w io.Writer, hosts []fleet.Heartbeat, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tACTIVE\tHEALTH\tWANT\tRPS\tSHED\t5XX\tFALLBACK S/R/F\tSEEN\tADDR\tVERSION\tLAST ERROR")
	for _, h := range hosts {
		state, health := "live", "unhealthy"
		switch {
		case h.Stopped:
			state = "stopped"
		case !h.Live(now):
			state = "gone"
		}
		if h.Healthy {
			health = "healthy"
		}
		last := "-"
		if e := h.LaunchError; e != nil {
			last = ids.Short(e.ConfigID) + ": " + firstLineOf(e.Error)
		}
		if h.SourceError != "" {
			last = "S3: " + firstLineOf(h.SourceError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%d\t%d\t%d/%d/%d\t%s ago\t%s\t%s\t%s\n", h.Host, state,
			cmpOr(ids.Short(h.Active), "-"), health, cmpOr(ids.Short(h.Want), "-"), h.RPS, h.Shed, h.Errors5xx,
			h.Fallbacks.Sent, h.Fallbacks.Received, h.Fallbacks.Failed, now.Sub(h.Time).Round(time.Second),
			cmpOr(h.Addr, "-"), h.Version, last)
	}
	tw.Flush()
	if len(hosts) == 0 {
		fmt.Fprintln(w, "no heartbeats yet: start hosts with serve --follow")
	}
}

func firstLineOf(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
