package dockerctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
)

// EnsureImage pulls ref unless the daemon already has it. A tag present
// locally is not refreshed, so deploy immutable tags or digests rather than
// "latest".
//
// Registry credentials come from the docker config file ($DOCKER_CONFIG/
// config.json, default ~/.docker/config.json): its "auths" entry for ref's
// registry host (base64 "auth", or username/password, or identitytoken).
// Credential helpers (credsStore, credHelpers) are not run; without an
// "auths" entry the pull is anonymous.
//
// A failed pull returns an error matching ErrImagePull that names the image
// and carries the daemon's message. progress may be nil; it gets one line per
// status change of the pull ("<layer>: Downloading", "Status: ..."), not one
// per byte.
func (c *Client) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	if ref == "" {
		return fmt.Errorf("pull image: %w: empty image reference", ErrImagePull)
	}
	// The daemon would report an invalid reference as a missing image.
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Errorf("pull image %s: %w: invalid reference: %w", ref, ErrImagePull, err)
	}
	_, err := c.api.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return c.pull(ctx, ref, progress)
}

func (c *Client) pull(ctx context.Context, ref string, progress func(string)) error {
	creds, err := credsFor(ref)
	if err != nil {
		return fmt.Errorf("pull image %s: %w: %w", ref, ErrImagePull, err)
	}
	fail := func(msg string) error {
		if creds.helper != "" {
			msg += fmt.Sprintf(" (%s names credential helper %q for this registry, which switchyard does not run: add an \"auths\" entry with a base64 \"auth\")", creds.file, creds.helper)
		}
		return fmt.Errorf("pull image %s: %w: %s", ref, ErrImagePull, msg)
	}
	body, err := c.api.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: creds.header})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
		}
		return fail(err.Error())
	}
	defer body.Close()
	if msg, err := readPullStream(body, progress); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
		}
		return fmt.Errorf("pull image %s: read progress: %w", ref, err)
	} else if msg != "" {
		return fail(msg)
	}
	return nil
}

// pullMessage is one line of the daemon's JSON progress stream.
type pullMessage struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// readPullStream consumes the pull's progress stream to its end (the pull
// goes on only while it is read) and returns the daemon's error message, if
// any: a failed pull still answers 200 and reports the failure in the stream.
func readPullStream(r io.Reader, progress func(string)) (string, error) {
	dec := json.NewDecoder(r)
	last := map[string]string{} // layer id → last status reported
	for {
		var m pullMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return "", nil
		} else if err != nil {
			return "", err
		}
		if m.Error != "" || m.ErrorDetail.Message != "" {
			if m.ErrorDetail.Message != "" {
				return m.ErrorDetail.Message, nil
			}
			return m.Error, nil
		}
		if progress == nil || m.Status == "" || last[m.ID] == m.Status {
			continue
		}
		last[m.ID] = m.Status
		line := m.Status
		if m.ID != "" {
			line = m.ID + ": " + m.Status
		}
		progress(strings.TrimSpace(line))
	}
}
