package dockerctl

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/switchyard/switchyard/internal/ids"
)

// Logs returns the last tail lines of the container's stdout and stderr,
// interleaved as the daemon stored them; tail <= 0 returns all of them. It
// needs a log driver the daemon can read back (json-file, local, journald).
func (c *Client) Logs(ctx context.Context, id string, tail int) (string, error) {
	// A container with a TTY has one raw stream; without one the daemon
	// multiplexes stdout and stderr in frames that stdcopy takes apart.
	r, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("logs of container %s: %w", ids.Short(id), notFound(err))
	}
	n := "all"
	if tail > 0 {
		n = strconv.Itoa(tail)
	}
	rc, err := c.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: n})
	if err != nil {
		return "", fmt.Errorf("logs of container %s: %w", ids.Short(id), notFound(err))
	}
	defer rc.Close()
	var buf bytes.Buffer
	if r.Container.Config != nil && r.Container.Config.Tty {
		_, err = io.Copy(&buf, rc)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, rc)
	}
	if err != nil {
		return buf.String(), fmt.Errorf("logs of container %s: read: %w", ids.Short(id), err)
	}
	return buf.String(), nil
}
