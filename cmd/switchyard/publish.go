package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
)

// runPublish is `switchyard publish FILE`: the config is checked (as
// `switchyard check` would, but for the hosts' policy, which it cannot
// know), uploaded as <id>.json unless there already, and its id printed.
func runPublish(ctx context.Context, c *bucketConfig, b *deployconfig.Bucket, args []string, stdout, stderr io.Writer) error {
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	lenient := deployconfig.Policy{AllowPrivileged: true, AllowHostNetwork: true, AllowBindMounts: true, AllowCapAdd: true}
	if rep := deployconfig.CheckFile(data, deployconfig.LayoutNative, lenient, nil); len(rep.Problems) > 0 {
		return fmt.Errorf("%s is not a valid config, nothing uploaded:\n  %s", args[0], strings.Join(rep.Problems, "\n  "))
	}
	id, created, err := fleet.Publish(ctx, b, data)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "published %s\n", b.Where(id+".json"))
	} else {
		fmt.Fprintf(stderr, "already published: %s (left as it is)\n", b.Where(id+".json"))
	}
	fmt.Fprintln(stdout, id)
	return nil
}
