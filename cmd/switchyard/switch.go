package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/ids"
)

// runSwitch is `switchyard switch CONTAINER`.
func runSwitch(ctx context.Context, r *clientRun, args []string) error {
	return switchTo(ctx, r, args[0])
}

// switchTo switches to ref and prints the result.
func switchTo(ctx context.Context, r *clientRun, ref string) error {
	fmt.Fprintf(r.stderr, "switching to %s, then draining and stopping the old container\n", progressID(ref, ids.ShortLen))
	res, err := r.api.Switch(ctx, ref)
	if err != nil && ctx.Err() != nil {
		return &exitError{exitInterrupted, fmt.Errorf("interrupted: the switch to %s goes on on the server "+
			"(traffic moves to the new container, the old one drains and stops); see switchyard status", ids.Short(ref))}
	}
	if err != nil {
		return fmt.Errorf("switch %s: %w", ids.Short(ref), err)
	}
	return printSwitch(r, res)
}
