package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// errTooLarge marks a body over maxBodySize (413, not 400).
var errTooLarge = fmt.Errorf("request body is larger than %d bytes: send just the id", maxBodySize)

// readRef reads the one reference a POST carries: a JSON object whose
// fields (synonyms, in order of preference) hold it, or, as wunderproxy's
// clients send it, a text body that is just the reference. field names
// the reference in errors.
func readRef(w http.ResponseWriter, r *http.Request, fields ...string) (string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", errTooLarge
		}
		return "", fmt.Errorf("reading the request body: %w", err)
	}
	body = bytes.TrimSpace(body)
	isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	if isJSON || (len(body) > 0 && body[0] == '{') {
		return refFromJSON(body, fields)
	}
	ref := string(body)
	if ref == "" {
		return "", fmt.Errorf("missing %q: send {%q: \"...\"} or the %s alone as the body", fields[0], fields[0], fields[0])
	}
	if strings.ContainsFunc(ref, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }) || !utf8.ValidString(ref) {
		return "", fmt.Errorf("text body %q is not a single %s: send {%q: \"...\"} or the %s alone", shorten(ref, 80), fields[0], fields[0], fields[0])
	}
	return ref, nil
}

// refFromJSON decodes {"<field>": "..."} strictly: an unknown field is
// more likely a typo than something to ignore.
func refFromJSON(body []byte, fields []string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("body is not a JSON object: %w", err)
	}
	want := fmt.Sprintf("%q", fields[0])
	if len(fields) > 1 {
		want = fmt.Sprintf("%q (or %q)", fields[0], fields[1])
	}
	ref := ""
	for k, raw := range m {
		known := false
		for _, f := range fields {
			known = known || k == f
		}
		if !known {
			return "", fmt.Errorf("unknown field %q in the body: want %s", k, want)
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("field %q: want a string, got %s", k, shorten(string(raw), 40))
		}
		v = strings.TrimSpace(v)
		if ref != "" && v != "" && v != ref {
			return "", fmt.Errorf("fields %s disagree (%q, %q): give one", want, ref, v)
		}
		if v != "" {
			ref = v
		}
	}
	if ref == "" {
		return "", fmt.Errorf("missing or empty field %s in the JSON body", want)
	}
	return ref, nil
}

// caller names who makes the request: UserHeader when set, else the remote
// IP. A header that is too long or not printable is an error rather than
// truncated, so the history never records a name nobody sent.
func caller(r *http.Request) (string, error) {
	if v := strings.TrimSpace(r.Header.Get(UserHeader)); v != "" {
		if utf8.RuneCountInString(v) > MaxUserLen {
			return "", fmt.Errorf("header %s: longer than %d characters", UserHeader, MaxUserLen)
		}
		if !validUser(v) {
			return "", fmt.Errorf("header %s %q: only printable characters are allowed", UserHeader, shorten(v, 40))
		}
		return v, nil
	}
	return remoteIP(r), nil
}

// validUser is the rule for a caller's name (UserHeader, Client's User):
// at most MaxUserLen printable characters.
func validUser(u string) bool {
	return utf8.RuneCountInString(u) <= MaxUserLen && utf8.ValidString(u) &&
		!strings.ContainsFunc(u, func(c rune) bool { return !unicode.IsPrint(c) })
}

// remoteIP is the connection's peer address without the port.
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// shorten cuts s to n runes for quoting in a message.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
