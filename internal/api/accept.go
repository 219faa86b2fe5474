package api

import (
	"net/http"
	"strconv"
	"strings"
)

// prefersHTML says whether the client would rather have the status page
// than JSON: its Accept header gives text/html a higher quality than
// application/json. Browsers navigating send "text/html,...,*/*;q=0.8";
// curl sends "*/*" and programs send nothing or application/json, and a tie
// goes to JSON, so only people's browsers get the page.
func prefersHTML(r *http.Request) bool {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	return acceptQuality(accept, "text/html") > acceptQuality(accept, "application/json")
}

// acceptsHTML says whether the Accept header names text/html itself (not
// through a wildcard) with a quality above 0: a browser, which can answer a
// Basic challenge with its login dialog.
func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, rng := range strings.Split(v, ",") {
			mt, q := mediaRange(rng)
			if mt == "text/html" && q > 0 {
				return true
			}
		}
	}
	return false
}

// acceptQuality returns the quality (0 to 1) that an Accept header value
// gives mediaType, from its most specific matching range (RFC 9110 12.5.1):
// "text/html" beats "text/*" beats "*/*". No header accepts everything.
func acceptQuality(accept, mediaType string) float64 {
	if strings.TrimSpace(accept) == "" {
		return 1
	}
	typ, _, _ := strings.Cut(mediaType, "/")
	best, quality := 0, 0.0
	for _, rng := range strings.Split(accept, ",") {
		mt, q := mediaRange(rng)
		specificity := 0
		switch {
		case mt == mediaType:
			specificity = 3
		case mt == typ+"/*":
			specificity = 2
		case mt == "*/*":
			specificity = 1
		}
		if specificity > best {
			best, quality = specificity, q
		}
	}
	return quality
}

// mediaRange parses one range of an Accept header, "type/subtype;a=b;q=0.8",
// into its lower-cased media type and its quality (1 when absent, 0 when
// malformed).
func mediaRange(s string) (string, float64) {
	parts := strings.Split(s, ";")
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	q := 1.0
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				f = 0
			}
			q = f
		}
	}
	return mt, q
}
