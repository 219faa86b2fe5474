package deployconfig

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// objectStore is what the sources share: where the objects live. Names are
// relative to the source's prefix ("<id>.json", "current.json").
type objectStore interface {
	// get returns an object's bytes (at most maxObjectSize, else ErrInvalid)
	// and an opaque version; errors wrap ErrNotFound or ErrUnavailable and
	// name the object.
	get(ctx context.Context, name string) (data []byte, version string, err error)
	// list returns the names starting with namePrefix (possibly more than
	// the caller wants; it filters).
	list(ctx context.Context, namePrefix string) ([]string, error)
	// where describes an object for messages, e.g. "s3://bucket/prefix/name".
	where(name string) string
	// String describes the store, e.g. "s3://bucket/prefix".
	String() string
}

// fetcher implements Fetch and Current over any objectStore for a Layout.
type fetcher struct {
	store  objectStore
	layout Layout
}

// cache makes f read through a cache in dir ("": none).
func (f *fetcher) cache(dir string) {
	if dir != "" {
		f.store = cachingStore{objectStore: f.store, dir: dir, keep: DefaultCacheKeep}
	}
}

// maxListed caps how many candidate ids an ambiguity error lists.
const maxListed = 5

func (f fetcher) fetch(ctx context.Context, id string) (*Config, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	n := f.layout.namingFor(id)
	full := id
	if len(id) != n.hexLen {
		var err error
		if full, err = f.resolve(ctx, n, id); err != nil {
			return nil, err
		}
	}
	name := n.name(full)
	data, _, err := f.store.get(ctx, name)
	if err != nil {
		return nil, err
	}
	// The id is the hash of the content: anything else means the object was
	// overwritten or corrupted, and running it would run an unreviewed config.
	if got := n.sum(data); got != full {
		return nil, fmt.Errorf("config %s: %w: %s is %s, not the id %s: the object was changed after upload; upload the file again under its own hash",
			f.store.where(name), ErrHashMismatch, n.algo, got, full)
	}
	cfg, err := f.parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", f.store.where(name), err)
	}
	cfg.ID = full
	return cfg, nil
}

// parse reads a config in the format(s) the layout accepts.
func (f fetcher) parse(data []byte) (*Config, error) {
	if f.layout == LayoutWunderproxy {
		return parseEither(data)
	}
	return parseConfig(data)
}

// resolve expands an id prefix to the one full id it names.
func (f fetcher) resolve(ctx context.Context, n naming, prefix string) (string, error) {
	names, err := f.store.list(ctx, n.before+prefix)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, name := range names {
		if id, ok := n.idOf(name); ok && strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("config id %q in %s: %w: no %s matches; check the id, or upload the config first",
			prefix, f.store, ErrNotFound, n.name(prefix+"*"))
	case 1:
		return ids[0], nil
	}
	shown := ids[:min(len(ids), maxListed)]
	more := ""
	if len(ids) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(ids)-len(shown))
	}
	return "", fmt.Errorf("config id %q in %s: %w: it matches %s%s; give more characters",
		prefix, f.store, ErrAmbiguous, strings.Join(shown, ", "), more)
}

func (f fetcher) current(ctx context.Context) (string, string, error) {
	data, version, err := f.store.get(ctx, currentName)
	if err != nil {
		return "", "", err
	}
	id, err := f.parseCurrent(data)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", f.store.where(currentName), err)
	}
	return id, version, nil
}

// currentPointer is the native content of current.json.
type currentPointer = Release

// Release is the native content of current.json, as `switchyard release`
// writes it: the id, and what was released before (for release
// --previous), when and by whom.
type Release struct {
	ID       string    `json:"id"`
	Previous string    `json:"previous,omitempty"`
	Time     time.Time `json:"released_at,omitzero"`
	By       string    `json:"by,omitempty"`
}

// parseCurrent accepts {"id": "<hex>"}, the bare hex id, and in the
// wunderproxy layout a whole config (wunderproxy copies the deployed
// container.<md5>.json to current.json), whose id is the MD5 of its bytes.
func (f fetcher) parseCurrent(data []byte) (string, error) {
	trimmed := bytes.TrimSpace(data)
	var id string
	switch {
	case isLowerHex(string(trimmed)):
		id = string(trimmed)
	case len(trimmed) > 0 && trimmed[0] == '{':
		var p currentPointer
		if err := decodeStrict(trimmed, &p, false); err == nil {
			id = p.ID
			break
		}
		if f.layout != LayoutWunderproxy {
			return "", fmt.Errorf("%w: want {\"id\": \"<sha256>\"} or the bare id, got %s", ErrInvalid, quoteShort(trimmed))
		}
		if _, err := parseEither(data); err != nil {
			return "", fmt.Errorf("neither {\"id\": ...} nor a valid config: %w", err)
		}
		return wunderproxyNaming.sum(data), nil
	default:
		return "", fmt.Errorf("%w: want {\"id\": \"<sha256>\"} or the bare lowercase hex id, got %s", ErrInvalid, quoteShort(trimmed))
	}
	if !isLowerHex(id) || !f.fullLength(id) {
		return "", fmt.Errorf("%w: id %q is not a full lowercase hex %s; write the whole id", ErrInvalid, id, f.idKinds())
	}
	return id, nil
}

func (f fetcher) fullLength(id string) bool {
	return len(id) == nativeNaming.hexLen || (f.layout == LayoutWunderproxy && len(id) == wunderproxyNaming.hexLen)
}

func (f fetcher) idKinds() string {
	if f.layout == LayoutWunderproxy {
		return "md5 (32 chars) or sha256 (64 chars)"
	}
	return "sha256 (64 chars)"
}

// quoteShort quotes the start of b for an error message.
func quoteShort(b []byte) string {
	const n = 60
	if len(b) > n {
		return fmt.Sprintf("%q…", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
