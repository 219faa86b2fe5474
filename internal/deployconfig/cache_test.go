package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStore is an objectStore in memory that can be down or hung.
type fakeStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	calls   int
	down    bool
	hang    chan struct{} // when set, every call waits for it (or ctx)
}

func (s *fakeStore) enter(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	down, hang := s.down, s.hang
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if down {
		return fmt.Errorf("fake store: %w: connection refused", ErrUnavailable)
	}
	return nil
}

func (s *fakeStore) get(ctx context.Context, name string) ([]byte, string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[name]
	if !ok {
		return nil, "", fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return b, "v", nil
}

func (s *fakeStore) list(ctx context.Context, prefix string) ([]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.objects {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (s *fakeStore) where(name string) string { return "fake:/" + name }
func (s *fakeStore) String() string           { return "fake:" }

func (s *fakeStore) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *fakeStore) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// A config read once is read from the cache after that, checked against
// its hash every time: while the store is down or hung, by id or by a
// prefix; a corrupted copy is never served, and is replaced from the store
// once the store is back.
func TestCacheServesWhileTheStoreIsDown(t *testing.T) {
	data := configJSON("app:1")
	id := ID(data)
	store := &fakeStore{objects: map[string][]byte{id + ".json": data, "current.json": []byte(id)}}
	dir := t.TempDir()
	f := fetcher{store: store, layout: LayoutNative}
	f.cache(dir)
	ctx := context.Background()
	if c, err := f.fetch(ctx, id); err != nil || c.Image != "app:1" {
		t.Fatalf("first fetch: %+v %v", c, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, id+".json")); err != nil || string(b) != string(data) {
		t.Fatalf("cached copy: %q %v", b, err)
	}

	// Hung: a context without a deadline would wait forever on the store.
	hang := make(chan struct{})
	defer close(hang)
	store.set(func() { store.hang = hang })
	before := store.callCount()
	if c, err := f.fetch(ctx, id); err != nil || c.Image != "app:1" || c.ID != id {
		t.Fatalf("fetch with the store hung: %+v %v", c, err)
	}
	if store.callCount() != before {
		t.Fatal("the store was asked for a cached config")
	}

	store.set(func() { store.hang, store.down = nil, true })
	if c, err := f.fetch(ctx, id[:10]); err != nil || c.ID != id {
		t.Fatalf("fetch by prefix with the store down: %+v %v", c, err)
	}
	if _, _, err := f.current(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("current.json with the store down: %v, want ErrUnavailable (never cached)", err)
	}

	// A corrupted copy is not served: with the store down, the fetch fails.
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(`{"image":"evil","port":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := f.fetch(ctx, id); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("fetch of a corrupted copy with the store down: %+v %v, want ErrUnavailable", c, err)
	}
	store.set(func() { store.down = false })
	if c, err := f.fetch(ctx, id); err != nil || c.Image != "app:1" {
		t.Fatalf("fetch once the store is back: %+v %v", c, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, id+".json")); string(b) != string(data) {
		t.Fatalf("the cache was not repaired: %q", b)
	}
}

// The cache keeps the most recently used configs, and never a copy whose
// content is not its name.
func TestCacheKeepsTheRecent(t *testing.T) {
	store := &fakeStore{objects: map[string][]byte{}}
	var ids []string
	for i := range 4 {
		data := configJSON(fmt.Sprint("app:", i))
		ids = append(ids, ID(data))
		store.objects[ID(data)+".json"] = data
	}
	bad := configJSON("tampered")
	badID := ID(configJSON("original"))
	store.objects[badID+".json"] = bad
	dir := t.TempDir()
	c := cachingStore{objectStore: store, dir: dir, keep: 2}
	ctx := context.Background()
	for i, id := range ids {
		if _, _, err := c.get(ctx, id+".json"); err != nil {
			t.Fatal(err)
		}
		// Used in order, a minute apart (the clock's grain could tie them).
		at := time.Now().Add(time.Duration(i-len(ids)) * time.Minute)
		os.Chtimes(filepath.Join(dir, id+".json"), at, at)
	}
	c.get(ctx, badID+".json")
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), ids[3]) || !strings.Contains(strings.Join(names, " "), ids[2]) {
		t.Fatalf("cache holds %v, want the 2 last used %s and %s, and not the tampered one", names, ids[2], ids[3])
	}
}

// Open with a cache directory: a config used once is still there after it
// is gone from the source.
func TestOpenWithCache(t *testing.T) {
	src, cache := t.TempDir(), filepath.Join(t.TempDir(), "configs")
	data := configJSON("app")
	id := ID(data)
	if err := os.WriteFile(filepath.Join(src, id+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), src, OpenOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, id+".json"))
	if c, err := s.Fetch(context.Background(), id); err != nil || c.ID != id {
		t.Fatalf("fetch after the source lost it: %+v %v", c, err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v %v, want mode 0700", fi, err)
	}
}
