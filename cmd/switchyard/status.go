package main

import (
	"context"
	"errors"
	"fmt"
)

// errNotHealthy makes `status` exit 1 once it has printed an unhealthy
// status, so scripts can test it.
var errNotHealthy = errors.New("not healthy (HTTP 503)")

// runStatus is `switchyard status`: exit 0 healthy, 1 not healthy, 3 when
// the API gave no answer about the app (unreachable, refused, not the API),
// so that a script tells an unhealthy app from a broken check.
func runStatus(ctx context.Context, r *clientRun, args []string) error {
	st, err := r.api.Status(ctx)
	if err != nil {
		return &exitError{exitUnknown, fmt.Errorf("status: %w", err)}
	}
	if r.cfg.json {
		err = printJSON(r.stdout, st)
	} else {
		printStatus(r.stdout, st)
	}
	if err == nil && !st.Healthy {
		err = errNotHealthy
	}
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}
