package proxy

// Mounting the app under a path prefix (Config.Prefix), as nginx's
// `location /api/ { proxy_pass http://app/; }` with
// `proxy_set_header X-Forwarded-Prefix /api` does: the proxy answers 404
// outside the prefix, strips it before forwarding and tells the app where it
// is mounted, so that Werkzeug's ProxyFix (x_prefix=1) sets SCRIPT_NAME and
// url_for builds /api/... URLs.
//
// Matching is by whole path segments: with prefix /api, /api and /api/x are
// inside, /apix is not. It is done on the decoded path (URL.Path); the
// escaped form is stripped alongside when it has the same prefix.

import (
	"fmt"
	"net/url"
	"strings"
)

// normalizePrefix checks a configured prefix and drops a trailing slash;
// "" and "/" mean none.
func normalizePrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("prefix %q: must be a path starting with / (no query)", p)
	}
	if strings.Contains(p, "//") || strings.Contains(p+"/", "/../") || strings.Contains(p+"/", "/./") {
		return "", fmt.Errorf("prefix %q: must be a clean path", p)
	}
	return strings.TrimRight(p, "/"), nil
}

// stripPrefix returns path without prefix ("/" when nothing is left), or
// false when path is not under prefix. An empty prefix keeps every path.
func stripPrefix(prefix, path string) (string, bool) {
	if prefix == "" {
		return path, true
	}
	if !strings.HasPrefix(path, prefix) {
		return "", false
	}
	rest := path[len(prefix):]
	switch {
	case rest == "":
		return "/", true
	case rest[0] == '/':
		return rest, true
	}
	return "", false
}

// underPrefix reports whether path is prefix or below it ("/" holds all).
func underPrefix(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	_, ok := stripPrefix(prefix, path)
	return ok
}

// stripURL removes prefix from the outgoing request's path.
func stripURL(u *url.URL, prefix string) {
	if rest, ok := stripPrefix(prefix, u.Path); ok {
		u.Path = rest
	}
	if u.RawPath != "" {
		if rest, ok := stripPrefix(prefix, u.RawPath); ok {
			u.RawPath = rest
		} else {
			// The prefix was escaped in the request (/%61pi): send the
			// decoded path, escaped the standard way.
			u.RawPath = ""
		}
	}
}
