package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// DefaultCacheKeep is how many configs a cache keeps: the most recently
// used ones.
const DefaultCacheKeep = 100

// cachingStore keeps a copy of every config object read through it in a
// local directory, under its own name (its content's hash), and reads it
// from there first: rollback, a restart and a relaunch of a config already
// used work while the store (S3) is down or hung, and cost no round trip.
// Every read of a copy is checked against the hash in its name, so a
// corrupted copy is dropped and read from the store again. current.json,
// which is not named by its content, always comes from the store.
type cachingStore struct {
	objectStore
	dir  string
	keep int
}

// cachedName returns the hash an object name carries and its naming, or
// false for a name that is not content-addressed.
func cachedName(name string) (string, naming, bool) {
	for _, n := range []naming{wunderproxyNaming, nativeNaming} {
		if id, ok := n.idOf(name); ok {
			return id, n, true
		}
	}
	return "", naming{}, false
}

func (c cachingStore) get(ctx context.Context, name string) ([]byte, string, error) {
	id, n, ok := cachedName(name)
	if !ok {
		return c.objectStore.get(ctx, name)
	}
	path := filepath.Join(c.dir, name)
	if data, err := os.ReadFile(path); err == nil {
		if n.sum(data) == id {
			now := time.Now()
			_ = os.Chtimes(path, now, now) // recently used: kept longest
			return data, id, nil
		}
		_ = os.Remove(path) // corrupted: read it from the store again
	}
	data, version, err := c.objectStore.get(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if n.sum(data) == id { // the fetcher refuses the rest; only good copies are kept
		c.put(name, data)
	}
	return data, version, nil
}

// list asks the store, and the cache when the store cannot answer, so that
// an id prefix of a config used before still resolves while S3 is down.
func (c cachingStore) list(ctx context.Context, namePrefix string) ([]string, error) {
	names, err := c.objectStore.list(ctx, namePrefix)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return names, err
	}
	entries, rerr := os.ReadDir(c.dir)
	if rerr != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, _, ok := cachedName(e.Name()); ok && strings.HasPrefix(e.Name(), namePrefix) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, err
	}
	return names, nil
}

// put writes a copy and trims the cache to the keep most recently used.
func (c cachingStore) put(name string, data []byte) {
	if err := atomicfile.Write(filepath.Join(c.dir, name), data, 0o600); err != nil {
		return // a cache that cannot be written is only slower
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil || len(entries) <= c.keep {
		return
	}
	type file struct {
		name string
		used time.Time
	}
	var files []file
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && e.Name() != name {
			files = append(files, file{e.Name(), info.ModTime()})
		}
	}
	// The one just written is the newest whatever the clock's grain says;
	// the others by their last use.
	slices.SortFunc(files, func(a, b file) int { return b.used.Compare(a.used) })
	for _, f := range files[min(c.keep-1, len(files)):] {
		_ = os.Remove(filepath.Join(c.dir, f.name))
	}
}

// openCache makes the cache directory (private: configs hold env values).
func openCache(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("config cache %s: %w", dir, err)
	}
	return nil
}
