package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/ids"
)

// runDiscard is `switchyard discard CONTAINER`.
func runDiscard(ctx context.Context, r *clientRun, args []string) error {
	info, err := r.api.Discard(ctx, args[0])
	if err != nil {
		return fmt.Errorf("discard %s: %w", ids.Short(args[0]), err)
	}
	if r.cfg.json {
		return printJSON(r.stdout, info)
	}
	fmt.Fprintln(r.stdout, containerLine("removed ", info))
	return nil
}
