package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DirSource reads configs from a local directory: <dir>/<id>.json and
// <dir>/current.json (or the wunderproxy names). It is the embedded default
// and what tests and single hosts use.
type DirSource struct {
	dir string
	f   fetcher
}

// NewDir returns a source reading dir with the given layout. The directory
// is read on each call, so files may be added while switchyard runs.
func NewDir(dir string, layout Layout) *DirSource {
	s := &DirSource{dir: filepath.Clean(dir)}
	s.f = fetcher{store: dirStore{s.dir}, layout: layout}
	return s
}

// Fetch returns the config whose id (or unambiguous prefix) is id.
func (s *DirSource) Fetch(ctx context.Context, id string) (*Config, error) {
	return s.f.fetch(ctx, id)
}

// Current returns the id named by current.json and, as its version, the
// SHA-256 of current.json's bytes.
func (s *DirSource) Current(ctx context.Context) (string, string, error) {
	return s.f.current(ctx)
}

// String returns "dir:<path>".
func (s *DirSource) String() string { return "dir:" + s.dir }

// dirStore is the objectStore of a directory. Names are checked by the
// fetcher (hex ids and fixed names only) before they get here.
type dirStore struct{ dir string }

func (d dirStore) String() string           { return "dir:" + d.dir }
func (d dirStore) where(name string) string { return filepath.Join(d.dir, name) }

func (d dirStore) get(ctx context.Context, name string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("config %s: %w: %w", d.where(name), ErrUnavailable, err)
	}
	p := d.where(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("config %s: %w: write the file there, or check the id", p, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("config %s: %w: %w", p, ErrUnavailable, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxObjectSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("config %s: %w: %w", p, ErrUnavailable, err)
	}
	if len(data) > maxObjectSize {
		return nil, "", fmt.Errorf("config %s: %w: larger than %d bytes; a config file is small JSON", p, ErrInvalid, maxObjectSize)
	}
	return data, ID(data), nil
}

func (d dirStore) list(ctx context.Context, namePrefix string) ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("config directory %s: %w: %w", d.dir, ErrUnavailable, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), namePrefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
