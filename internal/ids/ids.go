// Package ids abbreviates the long hex ids switchyard shows people
// (container ids, deployment config ids), by one rule: docker ps's.
package ids

import "strings"

// ShortLen is how many characters of an id are shown: docker ps's 12.
const ShortLen = 12

// Short is Cut(id, ShortLen).
func Short(id string) string { return Cut(id, ShortLen) }

// Cut cuts a lowercase hex id longer than n to its first n characters.
// Anything else (a container name, a reference someone typed, an id that
// is already short) is returned whole: only what is certainly an id loses
// characters.
func Cut(id string, n int) string {
	if len(id) > n && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:n]
	}
	return id
}
