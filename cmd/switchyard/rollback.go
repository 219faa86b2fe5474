package main

import (
	"context"
	"errors"
	"fmt"
)

// runRollback is `switchyard rollback`.
func runRollback(ctx context.Context, r *clientRun, args []string) error {
	fmt.Fprintln(r.stderr, "rolling back: launching the previous config and switching to it")
	res, err := r.api.Rollback(ctx)
	if err != nil && ctx.Err() != nil {
		return &exitError{exitInterrupted, errors.New("interrupted: the rollback goes on on the server; see switchyard status")}
	}
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return printSwitch(r, res)
}
