package deployconfig

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Layout says how config objects are named and hashed under the prefix.
type Layout int

const (
	// LayoutNative (the default) stores <prefix>/<sha256>.json, verified by SHA-256.
	LayoutNative Layout = iota
	// LayoutWunderproxy reads what wunderproxy wrote: <prefix>/container.<md5>.json,
	// verified by MD5, in wunderproxy's format or ours (see wunderproxy.go).
	// Ids longer than 32 hex chars cannot be MD5s and are looked up in the
	// native naming instead, so both kinds can live under one prefix.
	LayoutWunderproxy
)

// String returns the name ParseLayout accepts.
func (l Layout) String() string {
	switch l {
	case LayoutNative:
		return "native"
	case LayoutWunderproxy:
		return "wunderproxy"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout parses "native" or "wunderproxy"; "" is the default, native.
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "native":
		return LayoutNative, nil
	case "wunderproxy":
		return LayoutWunderproxy, nil
	}
	return 0, fmt.Errorf("config layout %q: unknown: use native or wunderproxy", s)
}

// naming is one way of naming config objects: a fixed name prefix and suffix
// around the full hex hash of the content.
type naming struct {
	before, after string
	algo          string // for messages
	hexLen        int
	newHash       func() hash.Hash
}

var (
	nativeNaming      = naming{before: "", after: ".json", algo: "sha256", hexLen: 64, newHash: sha256.New}
	wunderproxyNaming = naming{before: "container.", after: ".json", algo: "md5", hexLen: 32, newHash: md5.New}
)

// namingFor picks the naming an id is looked up in.
func (l Layout) namingFor(id string) naming {
	if l == LayoutWunderproxy && len(id) <= wunderproxyNaming.hexLen {
		return wunderproxyNaming
	}
	return nativeNaming
}

// name returns the object name of a full or partial id.
func (n naming) name(id string) string { return n.before + id + n.after }

// idOf returns the full id in an object name, or false when the name is not
// one of this naming's (other files may share the prefix).
func (n naming) idOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, n.before)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, n.after)
	if !ok || len(id) != n.hexLen || !isLowerHex(id) {
		return "", false
	}
	return id, true
}

// sum returns the lowercase hex hash of data.
func (n naming) sum(data []byte) string {
	h := n.newHash()
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// checkID validates an id before it becomes part of a key or path: only
// lowercase hex, so "../", "/" and the like can never reach the store.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("config id is empty: %w: give the hex hash of the config file", ErrInvalid)
	case len(id) > nativeNaming.hexLen:
		return fmt.Errorf("config id %q: %w: longer than a sha256 (64 hex chars)", id, ErrInvalid)
	case !isLowerHex(id):
		return fmt.Errorf("config id %q: %w: only lowercase hex digits 0-9a-f are allowed", id, ErrInvalid)
	case len(id) < minIDPrefix:
		return fmt.Errorf("config id %q: %w: give at least %d hex chars", id, ErrInvalid, minIDPrefix)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
