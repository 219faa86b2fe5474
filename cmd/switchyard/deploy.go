package main

import (
	"context"
	"fmt"

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
	fmt.Fprintf(r.stderr, "deploy step 2/2: ")
	if err := switchTo(ctx, r, info.ID); err != nil {
		id := ids.Short(info.ID)
		return &hintError{err, fmt.Sprintf("container %s was launched but is not active; see switchyard status, retry with: switchyard switch %s", id, id)}
	}
	return nil
}
