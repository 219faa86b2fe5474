// Package deployconfig fetches deployment configs by id from S3 or a local
// directory, verifies their hash, parses them strictly and checks them
// against the operator's policy.
package deployconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Source fetches deployment configs. Implementations: a local directory (the
// embedded default, DirSource) and S3 (s3Source).
type Source interface {
	// Fetch returns the config whose id is id (full hex hash, or an
	// unambiguous prefix of at least minIDPrefix hex chars), verified and
	// parsed, with Config.ID set to the full id.
	Fetch(ctx context.Context, id string) (*Config, error)
	// Current returns the id named by <prefix>/current.json (what runs after
	// a cold start) and an opaque version string (the S3 ETag) that changes
	// when current.json changes.
	Current(ctx context.Context) (id string, version string, err error)
	// String describes the source for logs, e.g. "s3://bucket/prefix" or
	// "dir:/path".
	String() string
}

// Errors returned by Source methods, wrapped with the id, key or bucket and
// what to do; match them with errors.Is.
var (
	// ErrNotFound: the object does not exist, or no object matches an id prefix.
	ErrNotFound = errors.New("deployment config not found")
	// ErrAmbiguous: an id prefix matches several configs.
	ErrAmbiguous = errors.New("ambiguous config id prefix")
	// ErrHashMismatch: the object's content hash is not the id it is stored under.
	ErrHashMismatch = errors.New("hash mismatch")
	// ErrInvalid: the id, the object or the config in it is malformed or
	// fails validation (also parseConfig's errors).
	ErrInvalid = errors.New("invalid deployment config")
	// ErrUnavailable: the store could not be read (S3 down, network,
	// credentials, permissions): anything that is not one of the above.
	ErrUnavailable = errors.New("config store unavailable")
	// ErrPolicy: the config asks for something the operator's Policy refuses.
	ErrPolicy = errors.New("refused by policy")
)

// minIDPrefix is the shortest id prefix Fetch accepts: shorter ones would
// become ambiguous too soon.
const minIDPrefix = 8

// maxObjectSize is the largest config object read (1 MiB); a bigger one is
// ErrInvalid, so a wrong key cannot make switchyard read gigabytes.
const maxObjectSize = 1 << 20

// currentName is the name of the object, under the prefix, that names the
// config to run after a cold start.
const currentName = "current.json"

// ID returns the id of a native config file: the lowercase hex SHA-256 of
// its bytes. Store the file as <prefix>/<ID(data)>.json.
func ID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// OpenOptions configure Open for an s3:// URI; a directory ignores all but
// Layout.
type OpenOptions struct {
	// Endpoint is the S3 endpoint URL; empty means AWS, or AWS_ENDPOINT_URL
	// when set.
	Endpoint string
	// Region is the S3 region; empty means AWS_REGION or the shared config,
	// then "us-east-1".
	Region string
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint (needed by most self-hosted S3 servers). Default false.
	PathStyle bool
	// Layout names and hashes objects; default LayoutNative.
	Layout Layout
	// CacheDir, when set, keeps a copy of every config read in this
	// directory, named by its hash, and reads configs from there first,
	// checking each copy against its hash (see cachingStore): configs used
	// before stay readable while the store is down or hung. Default "": no
	// cache.
	CacheDir string
}

// Open returns the source uri names: "s3://bucket/optional/prefix" is S3;
// anything else is a local directory ("dir:/path" or a plain path), which
// must exist.
func Open(ctx context.Context, uri string, o OpenOptions) (Source, error) {
	if o.CacheDir != "" {
		if err := openCache(o.CacheDir); err != nil {
			return nil, err
		}
	}
	if rest, ok := strings.CutPrefix(uri, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("config source %q: no bucket: use s3://bucket/prefix", uri)
		}
		s, err := newS3(ctx, s3Config{
			Bucket:    bucket,
			Prefix:    prefix,
			Endpoint:  o.Endpoint,
			Region:    o.Region,
			PathStyle: o.PathStyle,
			Layout:    o.Layout,
		})
		if err != nil {
			return nil, err
		}
		s.f.cache(o.CacheDir)
		return s, nil
	}
	dir := strings.TrimPrefix(uri, "dir:")
	if dir == "" {
		return nil, fmt.Errorf("config source: empty path: give a directory or s3://bucket/prefix")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("config source %q: %w", uri, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("config source %q: not a directory: give a directory or s3://bucket/prefix", uri)
	}
	d := NewDir(dir, o.Layout)
	d.f.cache(o.CacheDir)
	return d, nil
}
