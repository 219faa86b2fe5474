package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// Field is one header field.
type Field struct{ Name, Value string }

// Request is what an exchange writes to the app. It is read, never
// changed, and must not change until the exchange is closed.
type Request struct {
	Method string
	// Path is the escaped path of the request target; RawQuery its query,
	// without the "?". Path "" is sent as "/".
	Path, RawQuery string
	// Host is the Host field.
	Host string
	// Header holds the client's fields. The hop-by-hop ones (and those the
	// client's Connection names), Host, Content-Length and
	// Transfer-Encoding are never written: the exchange writes its own
	// framing. Neither are the names for which Drop reports true.
	Header http.Header
	Drop   func(name string) bool
	// Set are more fields, written after Header's.
	Set []Field

	// Body is the request body, nil for none. ContentLength is its length,
	// -1 when unknown: the body is then sent chunked, followed by Trailer.
	// A body shorter than ContentLength fails the exchange.
	Body          io.Reader
	ContentLength int64
	Trailer       http.Header
	// Buffered says that the body is at hand (read whole before the
	// exchange): when it fits the connection's write buffer with the head
	// (16 KiB), it goes out with it, in one write. Any other body goes out
	// from a goroutine as it comes, so that the app gets the head at once
	// and an app that answers before it has read it all is heard.
	Buffered bool
	// GetBody returns the body anew for a retry; nil: the body cannot be
	// sent twice.
	GetBody func() (io.ReadCloser, error)
	// AbortBody, when set, makes a Body.Read in progress return (the
	// client's read deadline): a body still being sent when the exchange
	// closes (the app answered without reading it all) is given up.
	AbortBody func()

	// Informational gets the 1xx answers but 100 Continue, which the
	// exchange handles, and 101, which ends the head. An error fails the
	// exchange. nil: they are dropped.
	Informational func(code int, fields []Field) error
}

// errBodyLength is a body that ended before its Content-Length.
var errBodyLength = errors.New("upstream: request body shorter than its Content-Length")

// expectsContinue is true when the client asked the app to agree before it
// sends its body (net/http's server has let no other Expect through).
func (r *Request) expectsContinue() bool {
	return r.Body != nil && httpguts.HeaderValuesContainsToken(r.Header["Expect"], "100-continue")
}

// inline reports whether the body goes with the head, whose bytes are in
// w.
func (r *Request) inline(w *bufio.Writer) bool {
	return r.Body != nil && r.Buffered && r.ContentLength > 0 && r.ContentLength <= int64(w.Available()) &&
		!r.expectsContinue()
}

// writeInline copies the body into w's buffer behind the head and sends
// both.
func (r *Request) writeInline(w *bufio.Writer, body io.Reader) error {
	buf := w.AvailableBuffer()[:r.ContentLength]
	if _, err := io.ReadFull(body, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errBodyLength
		}
		return err
	}
	_, _ = w.Write(buf) // in place
	return w.Flush()
}

// idempotent is net/http's isReplayable: a request the app may get twice.
func (r *Request) idempotent() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := r.Header["Idempotency-Key"]
	_, k2 := r.Header["X-Idempotency-Key"]
	return k1 || k2
}

// writeHead writes the request line and the fields, checking what net/http
// checks: the method, the Host, every name and value.
func (r *Request) writeHead(w *bufio.Writer) error {
	if !validMethod(r.Method) {
		return fmt.Errorf("upstream: invalid method %q", r.Method)
	}
	if !httpguts.ValidHostHeader(r.Host) {
		return fmt.Errorf("upstream: invalid Host %q", r.Host)
	}
	w.WriteString(r.Method)
	w.WriteByte(' ')
	if r.Path == "" {
		w.WriteByte('/')
	} else {
		w.WriteString(r.Path)
	}
	if r.RawQuery != "" {
		w.WriteByte('?')
		w.WriteString(r.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	if err := r.writeFields(w); err != nil {
		return err
	}
	r.writeFraming(w)
	_, err := w.WriteString("\r\n")
	return err
}

// writeFields writes the client's end-to-end fields, then Set.
func (r *Request) writeFields(w *bufio.Writer) error {
	conn := r.Header["Connection"]
	for name, vs := range r.Header {
		if HopByHop(name, conn) || (r.Drop != nil && r.Drop(name)) {
			continue
		}
		for _, v := range vs {
			if err := writeField(w, name, v); err != nil {
				return err
			}
		}
	}
	for _, f := range r.Set {
		if err := writeField(w, f.Name, f.Value); err != nil {
			return err
		}
	}
	return nil
}

func writeField(w *bufio.Writer, name, value string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("upstream: invalid header field name %q", name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return fmt.Errorf("upstream: invalid header field value for %q", name)
	}
	w.WriteString(name)
	w.WriteString(": ")
	w.WriteString(textproto.TrimString(value))
	w.WriteString("\r\n")
	return nil
}

// writeFraming writes the one framing of the body: Content-Length, or
// chunked with its announced trailer fields. As net/http's Transport, a
// bodiless POST, PUT or PATCH says Content-Length: 0.
func (r *Request) writeFraming(w *bufio.Writer) {
	switch {
	case r.Body == nil:
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			w.WriteString("Content-Length: 0\r\n")
		}
	case r.ContentLength >= 0:
		w.WriteString("Content-Length: ")
		var b [20]byte
		w.Write(strconv.AppendInt(b[:0], r.ContentLength, 10))
		w.WriteString("\r\n")
	default:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			w.WriteString("Trailer: ")
			first := true
			for name := range r.Trailer {
				if !first {
					w.WriteByte(',')
				}
				first = false
				w.WriteString(name)
			}
			w.WriteString("\r\n")
		}
	}
}

// writeBody writes body in the request's framing and flushes.
func (r *Request) writeBody(w *bufio.Writer, body io.Reader) error {
	if r.ContentLength >= 0 {
		n, err := io.Copy(w, io.LimitReader(body, r.ContentLength))
		if err == nil && n < r.ContentLength {
			err = errBodyLength
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil { // the last chunk: "0\r\n"
		return err
	}
	for name, vs := range r.Trailer {
		if hopByHop(name) {
			continue
		}
		for _, v := range vs {
			if err := writeField(w, name, v); err != nil {
				return err
			}
		}
	}
	w.WriteString("\r\n")
	return w.Flush()
}

// HopByHop reports whether a request field is not to be passed on: it
// describes one connection, not the message (RFC 9110 7.6.1, with the ones
// ReverseProxy drops), or is framing the sender writes itself (Host,
// Content-Length). Fields that conn (the Connection field's values) names
// are the connection's too. The proxy's peer fallback uses the same rule.
func HopByHop(name string, conn []string) bool {
	return hopByHop(name) || len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, name)
}

// hopByHop names the fields that describe one connection, not the message
// (RFC 9110 7.6.1, with the ones ReverseProxy drops), and the framing the
// exchange writes itself.
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Host", "Content-Length":
		return true
	}
	return false
}

// validMethod is a token, as net/http's validMethod.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}
