package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/internal/api"
)

// runCancel is `switchyard cancel [OPERATION]`.
func runCancel(ctx context.Context, r *clientRun, args []string) error {
	op := strings.Join(args, " ") // `cancel launch 3fa4c2e1b5d6` needs no quotes
	name, err := r.api.Cancel(ctx, op)
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	if r.cfg.json {
		return printJSON(r.stdout, api.CancelResponse{Cancelled: name})
	}
	fmt.Fprintf(r.stdout, "cancelled %s: it has cleaned up (a launch removes its container; see switchyard history)\n", name)
	return nil
}
