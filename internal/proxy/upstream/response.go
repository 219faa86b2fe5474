package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// How a response body is framed.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota // HEAD, 1xx, 204, 304, Content-Length: 0
	bodyLength                  // Content-Length
	bodyChunked                 // Transfer-Encoding: chunked
	bodyClose                   // until the app closes the connection
)

// max1xx bounds the informational answers before the final one, as
// net/http's Transport does.
const max1xx = 5

var (
	errHeadTooLarge = errors.New("upstream: the app's response head is over the limit")
	errTooMany1xx   = errors.New("upstream: too many 1xx informational answers")
)

// span is one field of a head being read: offsets into the scratch bytes.
type span struct{ name, colon, value, end int }

// head is the part of a response head framing needs, found while its
// fields are sorted.
type head struct {
	minor     int // HTTP/1.minor
	cl        int64
	chunked   bool
	connClose bool
	keepAlive bool
	conn      []string // the Connection field's values
}

// readHead reads one response head: its status into x.Status and its
// fields into x.raw, as substrings of one string. x.gotByte says whether
// any byte of it came (none: the app closed or reset the connection, a case
// for a retry).
func (x *Exchange) readHead() error {
	br, limit := x.c.br, x.pool.cfg.MaxHeaderBytes
	x.read = 0
	x.scratch, x.spans = x.scratch[:0], x.spans[:0]
	line, err := x.readLine(br, limit)
	if err != nil {
		return err
	}
	if x.Status, x.h.minor, err = parseStatusLine(x.scratch[line:]); err != nil {
		return err
	}
	x.scratch = x.scratch[:0]
	if err := x.readFields(br, limit); err != nil {
		return err
	}
	x.toFields()
	return nil
}

// readFields reads field lines up to the empty line into x.spans, each
// checked as net/http checks names and values; an obsolete folded line is
// refused.
func (x *Exchange) readFields(br *bufio.Reader, limit int) error {
	for {
		start, err := x.readLine(br, limit)
		if err != nil {
			return err
		}
		l := x.scratch[start:]
		if len(l) == 0 {
			return nil
		}
		if l[0] == ' ' || l[0] == '\t' {
			return errors.New("upstream: the app's response folds a header line (obsolete, refused)")
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !validFieldName(l[:colon]) {
			return fmt.Errorf("upstream: malformed response header line %q", truncate(l))
		}
		v := start + colon + 1
		for v < len(x.scratch) && (x.scratch[v] == ' ' || x.scratch[v] == '\t') {
			v++
		}
		end := len(x.scratch)
		for end > v && (x.scratch[end-1] == ' ' || x.scratch[end-1] == '\t') {
			end--
		}
		if !validFieldValue(x.scratch[v:end]) {
			return fmt.Errorf("upstream: invalid response header value in %q", truncate(l))
		}
		x.spans = append(x.spans, span{start, start + colon, v, end})
	}
}

// readLine appends the next line to x.scratch without its line end and
// returns where it starts; the head read so far must stay under limit.
func (x *Exchange) readLine(br *bufio.Reader, limit int) (int, error) {
	start := len(x.scratch)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			x.gotByte = true
		}
		x.read += len(b)
		if x.read > limit {
			return 0, errHeadTooLarge
		}
		x.scratch = append(x.scratch, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return 0, err
		}
		n := len(x.scratch) - 1 // the '\n'
		if n > start && x.scratch[n-1] == '\r' {
			n--
		}
		x.scratch = x.scratch[:n]
		return start, nil
	}
}

// toFields makes x.raw from the spans: one string for the whole head,
// names in canonical form (no allocation when the app sent them so).
func (x *Exchange) toFields() {
	s := string(x.scratch)
	x.raw = x.raw[:0]
	for _, sp := range x.spans {
		name := textproto.CanonicalMIMEHeaderKey(s[sp.name:sp.colon])
		x.raw = append(x.raw, Field{name, s[sp.value:sp.end]})
	}
}

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(l []byte) (code, minor int, err error) {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
		(len(l) > 12 && l[12] != ' ') {
		return 0, 0, fmt.Errorf("upstream: malformed status line %q", truncate(l))
	}
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("upstream: malformed status code in %q", truncate(l))
		}
	}
	code = int(l[9]-'0')*100 + int(l[10]-'0')*10 + int(l[11]-'0')
	if code < 100 {
		return 0, 0, fmt.Errorf("upstream: status %d out of range", code)
	}
	return code, int(l[7] - '0'), nil
}

// frame reads the final head's framing and keep-alive and sorts its fields:
// the end-to-end ones into Fields, the announced trailer names into
// TrailerNames. Hop-by-hop fields, and Content-Length beside chunked, go.
func (x *Exchange) frame(method string) error {
	h := &x.h
	h.cl, h.chunked, h.connClose, h.keepAlive, h.conn = -1, false, false, false, h.conn[:0]
	x.TrailerNames = x.TrailerNames[:0]
	for _, f := range x.raw {
		if err := h.note(f, x); err != nil {
			return err
		}
	}
	x.Fields = x.Fields[:0]
	for _, f := range x.raw {
		if !h.dropped(f.Name) {
			x.Fields = append(x.Fields, f)
		}
	}
	x.keep = !h.connClose && (h.minor == 1 || h.keepAlive)
	x.setBody(method)
	return nil
}

// dropped says whether the field name stays out of Fields: hop-by-hop
// (Content-Length aside), Content-Length beside chunked, or named by
// Connection.
func (h *head) dropped(name string) bool {
	return hopByHop(name) && name != "Content-Length" ||
		(h.chunked && name == "Content-Length") ||
		(len(h.conn) > 0 && httpguts.HeaderValuesContainsToken(h.conn, name))
}

// setBody sets how the body is framed, from the request's method, the
// status and the head's framing fields.
func (x *Exchange) setBody(method string) {
	h := &x.h
	x.ContentLength = -1
	switch {
	case method == "HEAD" || x.Status < 200 || x.Status == 204 || x.Status == 304:
		x.kind, x.ContentLength = bodyNone, max(h.cl, 0)
	case h.chunked:
		x.kind = bodyChunked
		x.chunks = newChunkedReader(x.c.br)
	case h.cl == 0:
		x.kind, x.ContentLength = bodyNone, 0
	case h.cl > 0:
		x.kind, x.left, x.ContentLength = bodyLength, h.cl, h.cl
	default:
		x.kind, x.keep = bodyClose, false
	}
}

// note takes what framing needs from one field.
func (h *head) note(f Field, x *Exchange) error {
	switch f.Name {
	case "Content-Length":
		return h.noteLength(f.Value)
	case "Transfer-Encoding":
		if h.minor == 0 {
			return nil // HTTP/1.0 has none: the body runs until close
		}
		if h.chunked || !strings.EqualFold(textproto.TrimString(f.Value), "chunked") {
			return fmt.Errorf("upstream: unsupported Transfer-Encoding %q", f.Value)
		}
		h.chunked = true
	case "Connection":
		h.conn = append(h.conn, f.Value)
		h.connClose = h.connClose || httpguts.HeaderValuesContainsToken([]string{f.Value}, "close")
		h.keepAlive = h.keepAlive || httpguts.HeaderValuesContainsToken([]string{f.Value}, "keep-alive")
	case "Trailer":
		for name := range strings.SplitSeq(f.Value, ",") {
			name = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(name))
			if name != "" && !badTrailer(name) {
				x.TrailerNames = append(x.TrailerNames, name)
			}
		}
	}
	return nil
}

// noteLength takes a Content-Length value: digits only, and the same in
// every copy.
func (h *head) noteLength(v string) error {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || v == "" || v[0] == '+' {
		return fmt.Errorf("upstream: bad Content-Length %q", v)
	}
	if h.cl >= 0 && int64(n) != h.cl {
		return errors.New("upstream: the app sent two different Content-Lengths")
	}
	h.cl = int64(n)
	return nil
}

// readTrailer reads the trailer section after the last chunk into Trailer.
func (x *Exchange) readTrailer() error {
	br, limit := x.c.br, x.pool.cfg.MaxHeaderBytes
	x.read = 0
	x.scratch, x.spans = x.scratch[:0], x.spans[:0]
	if err := x.readFields(br, limit); err != nil {
		return err
	}
	x.toFields()
	x.Trailer = x.Trailer[:0]
	for _, f := range x.raw {
		if !hopByHop(f.Name) && !badTrailer(f.Name) {
			x.Trailer = append(x.Trailer, f)
		}
	}
	return nil
}

// badTrailer are the fields a trailer may not carry (net/http's list).
func badTrailer(name string) bool {
	switch name {
	case "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue is httpguts.ValidHeaderFieldValue on bytes: no control
// character but the tab.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// newChunkedReader decodes a chunked body up to its last chunk; the
// trailer section after it is readTrailer's.
var newChunkedReader = httputil.NewChunkedReader

// truncate keeps error messages short.
func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
