package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/manager"
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

// launch launches config id, saying so on stderr. Interrupted (Ctrl-C),
// it cancels the launch on the server and says what is left.
func launch(ctx context.Context, r *clientRun, id string) (api.ContainerInfo, error) {
	fmt.Fprintf(r.stderr, "launching %s (config), this pulls the image and waits for health checks\n", progressID(id, configIDLen))
	info, err := r.api.Launch(ctx, id)
	switch {
	case err != nil && ctx.Err() != nil:
		return info, r.cancelLaunch(id)
	case err != nil:
		return info, fmt.Errorf("launch %s: %w", ids.Cut(id, configIDLen), err)
	}
	return info, nil
}

// cancelLaunchWait bounds the wait for an interrupted launch to clean up.
const cancelLaunchWait = 30 * time.Second

// cancelLaunch cancels the interrupted launch of id on the server (which
// its closed connection does as well) and waits until it has removed its
// container, then says so.
func (r *clientRun) cancelLaunch(id string) error {
	fmt.Fprintf(r.stderr, "interrupted: cancelling the launch of %s on the server\n", ids.Cut(id, configIDLen))
	ctx, cancel := context.WithTimeout(context.Background(), cancelLaunchWait)
	defer cancel()
	_, err := r.api.Cancel(ctx, manager.LaunchOperation(id))
	var ae *api.Error
	if err == nil || (errors.As(err, &ae) && ae.Kind == api.KindNoOperation) {
		return &exitError{exitInterrupted, fmt.Errorf("interrupted: the launch of %s was cancelled and its container removed; nothing was switched", ids.Cut(id, configIDLen))}
	}
	return &exitError{exitInterrupted, fmt.Errorf("interrupted: the launch of %s may still be running on the server (cancel: %w); "+
		"see switchyard status, and remove what it leaves with switchyard discard", ids.Cut(id, configIDLen), err)}
}
