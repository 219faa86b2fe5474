package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/ids"
)

// Publish uploads a native config file as <id>.json, create-only: an
// object already there (the same bytes, by its name) is left alone. It
// returns the id and whether it was new.
func Publish(ctx context.Context, st Store, data []byte) (id string, created bool, err error) {
	id = deployconfig.ID(data)
	_, err = st.Put(ctx, id+".json", data, deployconfig.PutCondition{Create: true})
	switch {
	case errors.Is(err, deployconfig.ErrPrecondition):
		return id, false, nil
	case err != nil:
		return "", false, fmt.Errorf("publish %s: %w", st.Where(id+".json"), err)
	}
	return id, true, nil
}

// ErrRaced: current.json changed between the read and the write of a
// release (another release won); nothing was written.
var ErrRaced = errors.New("current.json changed while releasing")

// ErrNoPrevious: release --previous with nothing released before.
var ErrNoPrevious = errors.New("nothing to go back to")

// Released is what a release wrote: the release and current.json's new
// ETag, which hosts report once they read it.
type Released struct {
	deployconfig.Release
	ETag string
}

// Release writes current.json naming id, with a conditional PUT on the ETag
// read (or create-only when there is none), so that two releases racing
// cannot silently overwrite each other: the loser gets ErrRaced, naming
// the winner. id must be a full id (the caller resolves prefixes and checks
// the config exists).
func Release(ctx context.Context, st Store, id, by string) (Released, error) {
	cur, etag, err := readCurrent(ctx, st)
	if err != nil {
		return Released{}, err
	}
	return write(ctx, st, deployconfig.Release{ID: id, Previous: cur.ID, By: by}, etag)
}

// ReleasePrevious releases what current.json names as released before it.
func ReleasePrevious(ctx context.Context, st Store, by string) (Released, error) {
	cur, etag, err := readCurrent(ctx, st)
	if err != nil {
		return Released{}, err
	}
	if cur.Previous == "" {
		return Released{}, fmt.Errorf("%w: %s names no previous release (it was not written by switchyard release, or it is the first one); release an id instead",
			ErrNoPrevious, st.Where(deployconfig.CurrentName))
	}
	return write(ctx, st, deployconfig.Release{ID: cur.Previous, Previous: cur.ID, By: by}, etag)
}

// readCurrent reads current.json; a missing one is the zero release.
func readCurrent(ctx context.Context, st Store) (deployconfig.Release, string, error) {
	data, etag, err := st.Get(ctx, deployconfig.CurrentName, "")
	if errors.Is(err, deployconfig.ErrNotFound) {
		return deployconfig.Release{}, "", nil
	}
	if err != nil {
		return deployconfig.Release{}, "", fmt.Errorf("read %s: %w", st.Where(deployconfig.CurrentName), err)
	}
	rel, err := st.ParseRelease(data)
	return rel, etag, err
}

func write(ctx context.Context, st Store, rel deployconfig.Release, etag string) (Released, error) {
	rel.Time = time.Now().UTC().Truncate(time.Millisecond)
	data, err := marshalRelease(rel)
	if err != nil {
		return Released{}, err
	}
	newTag, err := st.Put(ctx, deployconfig.CurrentName, data, deployconfig.PutCondition{Create: etag == "", IfMatch: etag})
	if errors.Is(err, deployconfig.ErrPrecondition) {
		now, _, rerr := readCurrent(ctx, st)
		winner := "it could not be read again: " + fmt.Sprint(rerr)
		if rerr == nil {
			winner = fmt.Sprintf("it now names %s, released by %s at %s", ids.Short(now.ID), or(now.By, "someone"), now.Time.Format(time.RFC3339))
		}
		return Released{}, fmt.Errorf("release %s: %w (another release won: %s); nothing was written: check what runs with switchyard fleet, then release again",
			ids.Short(rel.ID), ErrRaced, winner)
	}
	if err != nil {
		return Released{}, fmt.Errorf("release %s: write %s: %w", ids.Short(rel.ID), st.Where(deployconfig.CurrentName), err)
	}
	return Released{Release: rel, ETag: newTag}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
