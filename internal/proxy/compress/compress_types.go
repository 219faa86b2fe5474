package compress

import (
	"fmt"
	"strconv"
	"strings"
)

// Coding is a response body's content coding.
type Coding uint8

const (
	Identity Coding = iota
	Gzip
	Zstd
)

func (c Coding) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "identity"
}

// acceptQ holds the q-values a request's Accept-Encoding gives gzip and zstd
// (0: not acceptable).
type acceptQ struct{ gzip, zstd float64 }

// parseAcceptEncoding reads the Accept-Encoding field lines. A coding not
// listed gets the q of "*" if that is listed, else 0; "x-gzip" is gzip; a
// q-value that does not parse counts as 0.
func parseAcceptEncoding(values []string) acceptQ {
	gz, zs, star := -1.0, -1.0, -1.0 // -1: not listed
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			q := 1.0
			if params != "" {
				q = parseQ(params)
			}
			switch {
			case strings.EqualFold(name, "zstd"):
				zs = max(zs, q)
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				gz = max(gz, q)
			case name == "*":
				star = max(star, q)
			}
		}
	}
	if gz < 0 {
		gz = star
	}
	if zs < 0 {
		zs = star
	}
	return acceptQ{gzip: max(gz, 0), zstd: max(zs, 0)}
}

// parseQ finds q=VALUE among a coding's parameters (";q=0.5").
func parseQ(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		p = strings.TrimSpace(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(p[2:]), 64)
		if err != nil || q < 0 {
			return 0
		}
		return min(q, 1)
	}
	return 1
}

// Negotiate picks the coding of a response that exists as gzip (haveGzip)
// and/or zstd (haveZstd) for a request's Accept-Encoding field lines: zstd
// when it is acceptable, available and its q is not below gzip's, else gzip
// when acceptable and available, else Identity. Static files use it for
// their precompressed siblings.
func Negotiate(acceptEncoding []string, haveGzip, haveZstd bool) Coding {
	return parseAcceptEncoding(acceptEncoding).choose(haveGzip, haveZstd)
}

// choose picks zstd when it is acceptable, available and its q is not below
// gzip's, else gzip when acceptable and available, else identity.
func (a acceptQ) choose(haveGzip, haveZstd bool) Coding {
	zs := haveZstd && a.zstd > 0
	gz := haveGzip && a.gzip > 0
	switch {
	case zs && (!gz || a.zstd >= a.gzip):
		return Zstd
	case gz:
		return Gzip
	}
	return Identity
}

// typePattern is a media type pattern: type/subtype, where type or subtype
// may be "*" and subtype may be "*+suffix" (application/*+json).
type typePattern struct{ typ, sub string }

// typeMatcher decides which media types are compressed.
type typeMatcher []typePattern

func newTypeMatcher(patterns []string) (typeMatcher, error) {
	var m typeMatcher
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		typ, sub, ok := strings.Cut(p, "/")
		if !ok || !validPattern(typ, sub) {
			return nil, fmt.Errorf("compress type %q: want type/subtype, type/*, type/*+suffix or */*", p)
		}
		m = append(m, typePattern{typ, sub})
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("compress types: none given")
	}
	return m, nil
}

func validPattern(typ, sub string) bool {
	if typ == "" || sub == "" || strings.ContainsAny(typ+sub, " ;,/") {
		return false
	}
	if strings.Contains(typ, "*") && typ != "*" {
		return false
	}
	switch {
	case sub == "*":
		return true
	case strings.HasPrefix(sub, "*+"):
		return len(sub) > 2 && !strings.Contains(sub[1:], "*")
	case strings.Contains(sub, "*"):
		return false
	}
	return typ != "*" // */json is not a pattern
}

// match reports whether a Content-Type value (parameters allowed) is
// compressible: listed by a pattern and not one of the formats that are
// compressed already or must stream (incompressible).
func (m typeMatcher) match(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || incompressible(typ, mt) {
		return false
	}
	for _, p := range m {
		if p.typ != "*" && p.typ != typ {
			continue
		}
		if p.sub == "*" || p.sub == sub || (p.sub[0] == '*' && strings.HasSuffix(sub, p.sub[1:])) {
			return true
		}
	}
	return false
}

// incompressible are the media types never compressed, whatever the
// patterns: formats compressed already (compressing them again costs CPU
// and gains nothing) and text/event-stream, whose events must reach the
// client as they are written.
func incompressible(typ, mediaType string) bool {
	switch typ {
	case "video", "audio":
		return true
	}
	switch mediaType {
	case "text/event-stream",
		"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic", "image/heif", "image/jxl",
		"font/woff", "font/woff2", "application/font-woff",
		"application/zip", "application/gzip", "application/x-gzip", "application/zstd", "application/x-bzip2",
		"application/x-xz", "application/x-7z-compressed", "application/vnd.rar", "application/x-rar-compressed",
		"application/x-brotli", "application/br":
		return true
	}
	return false
}
