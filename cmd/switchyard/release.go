package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/ids"
)

// runRelease is `switchyard release ID` (or --previous): current.json is
// written with a conditional PUT on the ETag read, so that two releases
// racing cannot overwrite each other; with --wait it then follows the
// hosts' heartbeats until every live host serves the release healthy, or
// one fails to launch it. The id is printed on stdout, progress on stderr.
func runRelease(ctx context.Context, c *bucketConfig, b *deployconfig.Bucket, args []string, stdout, stderr io.Writer) error {
	var rel fleet.Released
	var err error
	if c.previous {
		rel, err = fleet.ReleasePrevious(ctx, b, c.user)
	} else {
		var id string
		if id, err = resolveID(ctx, c, args[0]); err != nil {
			return err
		}
		rel, err = fleet.Release(ctx, b, id, c.user)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "released %s (before it: %s) in %s\n", ids.Short(rel.ID), cmpOr(ids.Short(rel.Previous), "nothing"), b.Where(deployconfig.CurrentName))
	fmt.Fprintln(stdout, rel.ID)
	if !c.wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	err = fleet.Wait(ctx, b, fleet.WaitOptions{Released: rel, Progress: func(line string) {
		fmt.Fprintf(stderr, "%6.1fs  %s\n", time.Since(start).Seconds(), line)
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "every live host serves %s, healthy\n", ids.Short(rel.ID))
	return nil
}

// resolveID checks that config id (or an unambiguous prefix) is published
// and valid, and returns its full id.
func resolveID(ctx context.Context, c *bucketConfig, id string) (string, error) {
	src, err := deployconfig.Open(ctx, c.configs, c.openOptions())
	if err != nil {
		return "", err
	}
	cfg, err := src.Fetch(ctx, id)
	if err != nil {
		return "", fmt.Errorf("nothing released: %w", err)
	}
	return cfg.ID, nil
}
