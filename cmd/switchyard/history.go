package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/api"
)

// runHistory is `switchyard history`.
func runHistory(ctx context.Context, r *clientRun, args []string) error {
	events, err := r.api.History(ctx, r.cfg.limit)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if r.cfg.json {
		return printJSON(r.stdout, api.DeploymentsResponse{Deployments: events})
	}
	return printHistory(r.stdout, events)
}
