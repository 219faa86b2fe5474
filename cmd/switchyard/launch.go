package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/ids"
)

// runLaunch is `switchyard launch ID`.
func runLaunch(ctx context.Context, r *clientRun, args []string) error {
	info, err := launch(ctx, r, args[0])
	if err != nil {
		return err
	}
	if r.cfg.json {
		return printJSON(r.stdout, info)
	}
	fmt.Fprintln(r.stdout, containerLine("launched", info))
	fmt.Fprintf(r.stderr, "make it active with: switchyard switch %s\n", ids.Short(info.ID))
	return nil
}

// launch launches config id, saying so on stderr.
func launch(ctx context.Context, r *clientRun, id string) (api.ContainerInfo, error) {
	fmt.Fprintf(r.stderr, "launching %s (config), this pulls the image and waits for health checks\n", progressID(id, configIDLen))
	info, err := r.api.Launch(ctx, id)
	if err != nil {
		return info, fmt.Errorf("launch %s: %w", ids.Cut(id, configIDLen), err)
	}
	return info, nil
}
