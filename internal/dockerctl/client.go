// Package dockerctl drives the Docker Engine API for switchyard: pull, create
// with labels, start, inspect, stop, remove, list, logs and events.
//
// It is a thin layer over the maintained Docker Engine client module
// (github.com/moby/moby/client, with github.com/moby/moby/api's types)
// that speaks in switchyard's terms: a Spec
// to create from, a Container to read back with the address the proxy dials,
// and errors that name the container or image. It works with daemons down to
// API 1.41 (Docker 20.10), so it uses no option that needs a newer API: the
// stop signal and timeout, for instance, are set when the container is
// created rather than passed to stop.
package dockerctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moby/moby/client"
)

// DefaultPingTimeout bounds the daemon check in New when ctx has no earlier
// deadline, so a hung socket fails startup instead of blocking it.
const DefaultPingTimeout = 5 * time.Second

// ErrNotFound is matched (errors.Is) by errors about a container that does
// not exist.
var ErrNotFound = errors.New("no such container")

// ErrImagePull is matched (errors.Is) by errors of EnsureImage when the image
// could not be pulled: unknown image or tag, unreachable registry, refused
// credentials, invalid reference.
var ErrImagePull = errors.New("image pull failed")

// ErrInvalidSpec is matched (errors.Is) by errors of Create when the daemon
// refuses a value of the Spec (a CPU limit beyond the host's CPUs, say): the
// config asked for something this host cannot give.
var ErrInvalidSpec = errors.New("the Docker daemon refused the container's settings")

// Client talks to one Docker daemon. It is safe for concurrent use.
type Client struct {
	api *client.Client
}

// New connects to the daemon named by the usual environment (DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH; default unix:///var/run/docker.sock),
// negotiates the API version down to the daemon's, and pings it. An
// unreachable daemon is an error naming its address.
func New(ctx context.Context) (*Client, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client from environment (DOCKER_HOST etc.): %w", err)
	}
	c := &Client{api: api}
	pctx, cancel := context.WithTimeout(ctx, DefaultPingTimeout)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		api.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	return c.api.Close()
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.api.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("docker daemon at %s unreachable: %w (is it running, and is DOCKER_HOST or the mounted socket right?)", c.api.DaemonHost(), err)
	}
	return nil
}
