package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/ids"
)

// runDeploy is `switchyard deploy ID`: launch, then switch to what was
// launched. A failure says which step failed and what is left running.
func runDeploy(ctx context.Context, r *clientRun, args []string) error {
	fmt.Fprintf(r.stderr, "deploy step 1/2: ")
	info, err := launch(ctx, r, args[0])
	if err != nil {
		return &hintError{err, "nothing was switched: the active container keeps serving"}
	}
	if !r.cfg.json {
		fmt.Fprintln(r.stdout, containerLine("launched", info))
	}
	id := ids.Short(info.ID)
	if ctx.Err() != nil { // interrupted between the steps
		return &exitError{exitInterrupted, fmt.Errorf("interrupted before the switch: container %s is launched but not active; "+
			"switch to it with switchyard switch %s, or remove it with switchyard discard %s%s", id, id, id, expiry(info))}
	}
	fmt.Fprintf(r.stderr, "deploy step 2/2: ")
	if err := switchTo(ctx, r, info.ID); err != nil {
		if ctx.Err() != nil {
			return &exitError{exitInterrupted, fmt.Errorf("interrupted during the switch to %s: the switch goes on on the server "+
				"(traffic moves to the new container, the old one drains and stops); see switchyard status", id)}
		}
		if lost, lerr := switchLost(ctx, r, info.ID, err); lost {
			return lerr
		}
		return &hintError{err, fmt.Sprintf("container %s was launched but is not active; see switchyard status, retry with: switchyard switch %s, "+
			"or remove it with switchyard discard %s%s", id, id, id, expiry(info))}
	}
	return nil
}

// expiry says when a launched container is removed if nobody switches.
func expiry(info api.ContainerInfo) string {
	if info.ExpiresAt == nil {
		return ""
	}
	return " (otherwise it is removed at " + info.ExpiresAt.Local().Format("15:04:05") + ")"
}
