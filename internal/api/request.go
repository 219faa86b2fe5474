package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
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
	ref, err := readOptionalRef(w, r, fields...)
	if err == nil && ref == "" {
		err = fmt.Errorf("missing %s: send {%q: \"...\"} or the %s alone as the body", synonyms(fields), fields[0], fields[0])
	}
	return ref, err
}

// readOptionalRef is readRef for a body that may be empty (or "{}"): the
// reference is then "".
func readOptionalRef(w http.ResponseWriter, r *http.Request, fields ...string) (string, error) {
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
		if len(body) == 0 {
			return "", nil
		}
		return refFromJSON(body, fields)
	}
	ref := string(body)
	if strings.ContainsFunc(ref, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }) || !utf8.ValidString(ref) {
		return "", fmt.Errorf("text body %q is not a single %s: send {%q: \"...\"} or the %s alone", shorten(ref, 80), fields[0], fields[0], fields[0])
	}
	return ref, nil
}

// refFromJSON decodes {"<field>": "..."} strictly: an unknown field is
// more likely a typo than something to ignore, and a key given twice is
// refused, as parsers disagree on which copy wins (a forged form body
// relies on the last one winning). An empty object holds no reference.
func refFromJSON(body []byte, fields []string) (string, error) {
	members, err := objectMembers(body)
	if err != nil {
		return "", fmt.Errorf("body is not a JSON object: %w", err)
	}
	want := synonyms(fields)
	ref := ""
	seen := map[string]bool{}
	for _, m := range members {
		if seen[m.key] {
			return "", fmt.Errorf("field %q is given twice: give it once", m.key)
		}
		seen[m.key] = true
		if !slices.Contains(fields, m.key) {
			return "", fmt.Errorf("unknown field %q in the body: want %s", m.key, want)
		}
		var v string
		if err := json.Unmarshal(m.value, &v); err != nil {
			return "", fmt.Errorf("field %q: want a string, got %s", m.key, shorten(string(m.value), 40))
		}
		v = strings.TrimSpace(v)
		if ref != "" && v != "" && v != ref {
			return "", fmt.Errorf("fields %s disagree (%q, %q): give one", want, ref, v)
		}
		if v != "" {
			ref = v
		}
	}
	if ref == "" && len(members) > 0 {
		return "", fmt.Errorf("missing or empty field %s in the JSON body", want)
	}
	return ref, nil
}

// synonyms names a reference's fields for a message: "container" (or "id").
func synonyms(fields []string) string {
	if len(fields) > 1 {
		return fmt.Sprintf("%q (or %q)", fields[0], fields[1])
	}
	return fmt.Sprintf("%q", fields[0])
}

// member is one key and value of a JSON object, in the order given.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers reads a JSON object's members in order, duplicates kept.
func objectMembers(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			err = fmt.Errorf("want {...}, got %s", shorten(string(body), 40))
		}
		return nil, err
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the object")
	}
	return out, nil
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
