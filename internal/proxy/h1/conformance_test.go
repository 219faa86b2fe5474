package h1

// Conformance: the same handler and the same raw request bytes, sent to
// h1.Server and to net/http's http.Server, must get the same answer:
// status, protocol, header fields (less Date), framing, body, trailers and
// whether the connection is closed after.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// serverConfig is what both servers are given.
type serverConfig struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

var defaultConfig = serverConfig{
	ReadHeaderTimeout: 2 * time.Second,
	IdleTimeout:       5 * time.Second,
	MaxHeaderBytes:    4096,
}

var quietLog = log.New(io.Discard, "", 0)

// startH1 serves h with an h1.Server on a loopback port.
func startH1(t testing.TB, h http.Handler, cfg serverConfig) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: quietLog}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return ln.Addr().String()
}

// startStd serves h with net/http's server, configured alike.
func startStd(t testing.TB, h http.Handler, cfg serverConfig) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: quietLog}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return ln.Addr().String()
}

// servers names the two servers under comparison.
var servers = []struct {
	name  string
	start func(testing.TB, http.Handler, serverConfig) string
}{
	{"net/http", startStd},
	{"h1", startH1},
}

// answer is one response as the client saw it.
type answer struct {
	Proto   string
	Status  int
	Header  http.Header // less Date
	Framing string      // "length", "chunked" or "close"
	Body    string
	BodyErr string // "" or "broken": the body did not end as framed
	Trailer http.Header
	Close   bool // Connection: close (ReadResponse takes it out of Header)
}

// outcome is all a connection got.
type outcome struct {
	Answers []answer
	ReadErr string // "" or why no further response could be parsed
	Rest    string // bytes after the last response, until close
	Closed  bool   // the server closed the connection
	raw     string // every byte received, for messages only
}

// recorder keeps what is read through it.
type recorder struct {
	r   io.Reader
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.buf.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// exchange sends req (then each of then, after one more response has been
// read) and reads n responses, then what follows until close or a short
// quiet spell.
func exchange(addr, req string, then []string, n int) outcome {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return outcome{ReadErr: "dial: " + err.Error()}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	// Written on its own goroutine: a server that answers before reading
	// a large body must not deadlock the test.
	go func() { _, _ = io.WriteString(c, req) }()
	rec := &recorder{r: c}
	br := bufio.NewReader(rec)
	method := strings.SplitN(req, " ", 2)[0]
	var o outcome
	for i := 0; i < n; i++ {
		if i > 0 && len(then) > 0 {
			if _, err := io.WriteString(c, then[0]); err != nil {
				o.ReadErr = "write: " + err.Error()
				break
			}
			then = then[1:]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			o.ReadErr = readErrKind(err)
			break
		}
		o.Answers = append(o.Answers, summarize(resp))
	}
	// Closed or not: a kept connection stays quiet for this long.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	rest, err := io.ReadAll(br)
	o.Rest = string(rest)
	var ne net.Error
	o.Closed = !(errors.As(err, &ne) && ne.Timeout())
	o.raw = rec.String()
	return o
}

func readErrKind(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "reset"):
		return "reset"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "error: " + err.Error()
}

func summarize(resp *http.Response) answer {
	a := answer{Proto: resp.Proto, Status: resp.StatusCode, Header: resp.Header.Clone(), Close: resp.Close}
	a.Header.Del("Date")
	switch {
	case len(resp.TransferEncoding) > 0:
		a.Framing = strings.Join(resp.TransferEncoding, ",")
	case resp.ContentLength >= 0:
		a.Framing = "length"
	default:
		a.Framing = "close"
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	a.Body = string(body)
	if err != nil {
		// How much of a cut body gets out is the servers' buffering, not
		// behaviour: only the cut is compared.
		a.Body, a.BodyErr = "", "broken"
	}
	if len(resp.Trailer) > 0 {
		a.Trailer = resp.Trailer
	}
	return a
}

func (o outcome) String() string {
	var b strings.Builder
	for i, a := range o.Answers {
		keys := make([]string, 0, len(a.Header))
		for k := range a.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  #%d %s %d framing=%s close=%v body=%q%s trailer=%v\n", i, a.Proto, a.Status, a.Framing, a.Close, trunc(a.Body), a.BodyErr, a.Trailer)
		for _, k := range keys {
			fmt.Fprintf(&b, "      %s: %q\n", k, a.Header[k])
		}
	}
	fmt.Fprintf(&b, "  readErr=%q rest=%q closed=%v\n  raw=%q", o.ReadErr, trunc(o.Rest), o.Closed, trunc(o.raw))
	return b.String()
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:150] + fmt.Sprintf("...(%d bytes)...", len(s)) + s[len(s)-150:]
	}
	return s
}

// conformanceCase is a table row.
type conformanceCase struct {
	name    string
	handler http.HandlerFunc
	req     string   // raw bytes sent at once
	then    []string // sent each after one more response is read
	n       int      // responses expected (default 1)
	// h1Differs, when set, is a documented difference: h1's outcome is
	// checked by it instead of being compared with net/http's.
	h1Differs func(t *testing.T, std, h1 outcome)
	cfg       *serverConfig // nil: defaultConfig
	// ignoreClose: whether the server closes is not compared (net/http's
	// own behaviour there is an accident, see the row).
	ignoreClose bool
}

const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

func write(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s) }
}

// typed writes s with a Content-Type set, so that sniffing plays no part.
func typed(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, s)
	}
}

func echo(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) }

func nothing(w http.ResponseWriter, r *http.Request) {}

func post(body string, extra string) string {
	return fmt.Sprintf("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n%s\r\n%s", len(body), extra, body)
}

var big = strings.Repeat("0123456789abcdef", 256) // 4096 bytes: past the 2048 buffered

var conformanceCases = []conformanceCase{
	// Framing of a body of unknown length.
	{name: "small body gets Content-Length", handler: write("hello"), req: get},
	{name: "large body goes chunked", handler: typed(big), req: get},
	{name: "handler sets Content-Length", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "4096")
		_, _ = io.WriteString(w, big)
	}},
	{name: "no body: Content-Length 0", handler: nothing, req: get},
	{name: "sniffed Content-Type", handler: write("<html><body>hi</body></html>"), req: get},
	// net/http sniffs the first write whatever its size; these are the
	// cases where the body does not sit in h1's 2048-byte buffer.
	{name: "sniffed Content-Type, first write > 2048", handler: write(big), req: get},
	{name: "sniffed Content-Type, declared Content-Length", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4096")
		_, _ = io.WriteString(w, big)
	}},
	{name: "sniffed Content-Type, HEAD, first write > 2048", handler: write(big), req: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "empty Content-Type: no sniff", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = io.WriteString(w, "<html><body>hi</body></html>")
	}},
	{name: "status without body written", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}},
	{name: "Transfer-Encoding identity from handler", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		_, _ = io.WriteString(w, big)
	}},
	// The documented difference: h1 reads the header when the response
	// goes out, net/http at WriteHeader.
	{name: "header changed after WriteHeader", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Header().Set("X-Late", "1")
		_, _ = io.WriteString(w, "x")
	}, h1Differs: func(t *testing.T, std, h1 outcome) {
		if len(std.Answers) != 1 || std.Answers[0].Header.Get("X-Late") != "" {
			t.Errorf("net/http was expected to drop X-Late:\n%v", std)
		}
		if len(h1.Answers) != 1 || h1.Answers[0].Header.Get("X-Late") != "1" || h1.Answers[0].Body != "x" {
			t.Errorf("h1 was expected to send X-Late (documented):\n%v", h1)
		}
	}},

	// HEAD, bodiless statuses, 1xx.
	{name: "HEAD with body written", handler: write("hello"), req: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "HEAD with large body written", handler: typed(big), req: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "HEAD with declared Content-Length", req: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
	}},
	{name: "HEAD with nothing", handler: nothing, req: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "204 with Content-Length and Content-Type", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
	}},
	{name: "304 with Content-Length and Content-Type", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	}},
	{name: "103 Early Hints then 200", n: 2, req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "done")
	}},

	{name: "103 on HTTP/1.0", req: "GET / HTTP/1.0\r\n\r\n", n: 2, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "done")
	}},
	{name: "103 before reading a 100-continue body", n: 3, then: []string{"", "hello"},
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			echo(w, r)
		}},
	// 101 through WriteHeader, without Hijack: the connection now speaks
	// another protocol nobody serves; h1 closes it, net/http keeps it.
	{name: "101 without hijack", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "x")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
	}, h1Differs: func(t *testing.T, std, h1 outcome) {
		if len(std.Answers) != 1 || std.Answers[0].Status != http.StatusSwitchingProtocols || std.Closed {
			t.Errorf("net/http was expected to answer 101 and keep the connection:\n%v", std)
		}
		if len(h1.Answers) != 1 || h1.Answers[0].Status != http.StatusSwitchingProtocols || !h1.Closed {
			t.Errorf("h1 was expected to answer 101 and close:\n%v", h1)
		}
	}},

	// Keep-alive and close.
	{name: "HTTP/1.0 closes", handler: write("hello"), req: "GET / HTTP/1.0\r\n\r\n"},
	{name: "HTTP/1.0 keep-alive, known length", handler: write("hello"), n: 2,
		req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
	{name: "HTTP/1.0 keep-alive, unknown length", handler: typed(big),
		req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
	{name: "HTTP/1.0 keep-alive, flushed", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		}},
	{name: "HTTP/1.0 HEAD keep-alive", handler: typed(big), n: 2,
		req: "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
	{name: "Connection: close on 1.1", handler: write("hello"),
		req: "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"},
	// What follows a Connection: close request is not served.
	{name: "Connection: close, then a pipelined request", handler: write("hello"), n: 2,
		req: "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n" + get},
	{name: "handler sets Connection: close", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	}},
	{name: "handler sets Connection: keep-alive on 1.0", req: "GET / HTTP/1.0\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		_, _ = io.WriteString(w, "hi")
	}},
	{name: "pipelined GETs", n: 2, req: get + "GET /two HTTP/1.1\r\nHost: example.com\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) }},

	// Request bodies.
	{name: "POST echo", handler: echo, req: post("hello world", "")},
	{name: "chunked request echo", handler: echo,
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
	{name: "small body unread keeps the connection", handler: write("ok"), n: 2, req: post("0123456789", "") + get},
	{name: "large body unread closes", handler: write("ok"), req: post(strings.Repeat("x", 300<<10), "")},
	{name: "Expect 100-continue, body read", handler: echo, n: 2,
		req:  "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
		then: []string{"hello"}},
	// The client waits for 100 Continue and so never sends the body:
	// net/http answers at once (Connection: close). Without a
	// ReadHeaderTimeout, whatever would bound a wait for the body is
	// gone, which shows a server that waits for it. (net/http then never
	// closes the connection itself: its body Close reads on; not compared.)
	{name: "Expect 100-continue, body not read", handler: write("no"), ignoreClose: true,
		cfg: &serverConfig{IdleTimeout: 5 * time.Second, MaxHeaderBytes: 4096},
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"},
	{name: "Expect 100-continue, no body", handler: write("ok"),
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n"},
	// net/http removes the Expect field it has dealt with.
	{name: "Expect 100-continue, handler sees Expect", n: 2, then: []string{"hello"},
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s expect=%q", b, r.Header["Expect"])
		}},
	// curl-style: the body follows the headers without waiting.
	{name: "Expect 100-continue, body sent at once", handler: echo, n: 2,
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"},
	{name: "Expect something else", handler: write("no"),
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\nhello"},
	{name: "Expect 100-continue on HTTP/1.0", handler: echo,
		req: "POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"},

	// Requests refused.
	{name: "malformed request line", handler: write("no"), req: "GARBAGE\r\n\r\n"},
	{name: "missing Host on 1.1", handler: write("no"), req: "GET / HTTP/1.1\r\n\r\n"},
	{name: "invalid header name", handler: write("no"), req: "GET / HTTP/1.1\r\nHost: example.com\r\nBad Name: x\r\n\r\n"},
	{name: "invalid header name (token char)", handler: write("no"), req: "GET / HTTP/1.1\r\nHost: example.com\r\nBad\"Name: x\r\n\r\n"},
	{name: "invalid header value", handler: write("no"), req: "GET / HTTP/1.1\r\nHost: example.com\r\nX: a\x01b\r\n\r\n"},
	{name: "bad Host", handler: write("no"), req: "GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n"},
	{name: "two Host fields", handler: write("no"), req: "GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n"},
	{name: "header block too large", handler: write("no"),
		req: "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"},
	{name: "Transfer-Encoding gzip", handler: write("no"),
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip\r\n\r\n"},
	{name: "HTTP/2.0 request line", handler: write("no"), req: "GET / HTTP/2.0\r\nHost: example.com\r\n\r\n"},
	{name: "Content-Length and chunked", handler: echo,
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	{name: "differing Content-Lengths", handler: echo,
		req: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
	// net/http hands the HTTP/2 preface to the handler as a request (h2c
	// is not served); h1 refuses it as the HTTP/2.0 it is.
	{name: "PRI preface on HTTP/1", handler: write("no"), req: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		h1Differs: func(t *testing.T, std, h1 outcome) {
			if len(std.Answers) != 1 || std.Answers[0].Status != http.StatusOK {
				t.Errorf("net/http was expected to call the handler:\n%v", std)
			}
			if len(h1.Answers) != 1 || h1.Answers[0].Status != http.StatusHTTPVersionNotSupported || !h1.Closed {
				t.Errorf("h1 was expected to answer 505 and close:\n%v", h1)
			}
		}},

	// Trailers. Set after a flush, both servers see them the same way.
	{name: "declared trailer, flushed", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-T")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-T", "t-value")
	}},
	{name: "TrailerPrefix trailer, flushed", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set(http.TrailerPrefix+"X-U", "u-value")
	}},
	// Set after a small body but before the handler returns, they meet
	// the documented difference: net/http froze the header at the implicit
	// WriteHeader, h1 reads it at the handler's return.
	// A declared trailer is sent in the trailer only, though h1 reads the
	// header after the handler set it: the same answer.
	{name: "declared trailer", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-T")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-T", "t-value")
	}},
	{name: "TrailerPrefix trailer", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-U", "u-value")
	}, h1Differs: func(t *testing.T, std, h1 outcome) {
		if len(std.Answers) != 1 || std.Answers[0].Framing != "length" || std.Answers[0].Trailer != nil {
			t.Errorf("net/http was expected to drop the trailer (Content-Length framing):\n%v", std)
		}
		if len(h1.Answers) != 1 || h1.Answers[0].Framing != "chunked" || h1.Answers[0].Trailer.Get("X-U") != "u-value" {
			t.Errorf("h1 was expected to go chunked and send the trailer:\n%v", h1)
		}
	}},

	// Response header values and framing the handler chose.
	{name: "declared Content-Length, short body", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "short")
	}},
	{name: "declared Content-Length, body too long", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "3")
		_, err := io.WriteString(w, "toolong")
		if err != http.ErrContentLength {
			panic(err) // cut: the row fails
		}
	}},
	// An invalid Content-Length is dropped by both; net/http's copy of
	// the header still has it, so it cannot compute one and chunks.
	{name: "invalid Content-Length from handler", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "abc")
		_, _ = io.WriteString(w, "body")
	}, h1Differs: func(t *testing.T, std, h1 outcome) {
		if len(std.Answers) != 1 || std.Answers[0].Framing != "chunked" || string(std.Answers[0].Body) != "body" {
			t.Errorf("net/http was expected to chunk the body:\n%v", std)
		}
		if len(h1.Answers) != 1 || h1.Answers[0].Framing != "length" || h1.Answers[0].Header.Get("Content-Length") != "4" || string(h1.Answers[0].Body) != "body" {
			t.Errorf("h1 was expected to send Content-Length: 4:\n%v", h1)
		}
	}},
	{name: "handler sets Transfer-Encoding chunked", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		_, _ = io.WriteString(w, "body")
	}},
	{name: "header value with line break", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Multi", "a\r\nb")
		w.Header()["Bad Name"] = []string{"x"}
		_, _ = io.WriteString(w, "body")
	}},
	{name: "status code without text", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(599)
	}},

	// What the handler sees of the request.
	{name: "absolute-form target", req: "GET http://a.example/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "host=%s url=%s uri=%s", r.Host, r.URL, r.RequestURI)
		}},
	{name: "chunked request trailer", req: "POST / HTTP/1.1\r\nHost: example.com\r\nTrailer: X-R\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-R: r\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s trailer=%v", b, r.Trailer)
		}},
	{name: "pipelined POST then GET", n: 2, handler: echo, req: post("abc", "") + "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "CRLF after POST body", n: 2, handler: echo, req: post("abc", "") + "\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "request header: obs-fold", handler: write("ok"), req: "GET / HTTP/1.1\r\nHost: example.com\r\nX: a\r\n b\r\n\r\n"},
	{name: "request header: space before colon", handler: write("ok"), req: "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n"},
	{name: "HTTP/1.0 POST keep-alive", n: 2, handler: echo,
		req: "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n"},
	{name: "CONNECT without Host", handler: write("ok"), req: "CONNECT example.com:443 HTTP/1.1\r\n\r\n"},

	// The header limit has net/http's 4096 bytes of slack.
	{name: "header block within the slack", handler: write("ok"),
		req: "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: " + strings.Repeat("a", 6000) + "\r\n\r\n"},
	{name: "header block at the slack's end", handler: write("ok"),
		req: "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: " + strings.Repeat("a", 8100) + "\r\n\r\n"},
	{name: "second pipelined request, large header", handler: write("ok"), n: 2,
		req: get + "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: " + strings.Repeat("a", 7000) + "\r\n\r\n"},
	{name: "chunked request on HTTP/1.0", handler: echo,
		req: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
	{name: "double space in request line", handler: write("ok"), req: "GET  / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{name: "body closed early by handler, large", handler: func(w http.ResponseWriter, r *http.Request) {
		_ = r.Body.Close()
		_, _ = io.WriteString(w, "ok")
	}, req: post(strings.Repeat("x", 300<<10), "")},
	{name: "body read after the response, no full duplex", req: post("hello", ""), handler: func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, big[:3000]) // goes out: past the buffer
		b, err := io.ReadAll(r.Body)
		w.Header().Set("X-Ignored", "") // no effect: the head is out
		_, _ = fmt.Fprintf(w, " read=%q err=%v", b, err)
	}},

	// Panics.
	{name: "ErrAbortHandler mid chunked body", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, big)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}},
	{name: "ErrAbortHandler mid body, not flushed", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, big)
		panic(http.ErrAbortHandler)
	}},
	{name: "panic before writing", req: get, handler: func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}},

	{name: "OPTIONS *", handler: write("handler"), req: "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n"},

	// Hijack: the handler answers 101 itself, then echoes what the client
	// sent right after the request (buffered in the reader it gets).
	{name: "hijack with pipelined bytes", req: get + "ping", handler: func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		buf := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(brw, buf); err == nil {
			_, _ = c.Write(buf)
		}
	}},
}

func TestConformance(t *testing.T) {
	// All exchanges run at once, as most of one's time is the wait for a
	// close that does not come (t.Parallel would run only GOMAXPROCS).
	got := make([]map[string]outcome, len(conformanceCases))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, tc := range conformanceCases {
		got[i] = map[string]outcome{}
		cfg := defaultConfig
		if tc.cfg != nil {
			cfg = *tc.cfg
		}
		n := tc.n
		if n == 0 {
			n = 1
		}
		for _, s := range servers {
			addr := s.start(t, tc.handler, cfg)
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := exchange(addr, tc.req, tc.then, n)
				mu.Lock()
				got[i][s.name] = o
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for i, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			std, h1 := got[i]["net/http"], got[i]["h1"]
			if tc.h1Differs != nil {
				tc.h1Differs(t, std, h1)
				return
			}
			if len(std.Answers) == 0 && std.ReadErr == "" {
				t.Fatalf("net/http gave nothing to compare with:\n%v", std)
			}
			if !reflect.DeepEqual(std.Answers, h1.Answers) || std.ReadErr != h1.ReadErr ||
				std.Rest != h1.Rest || std.Closed != h1.Closed && !tc.ignoreClose {
				t.Errorf("h1 differs from net/http\nnet/http:\n%v\nh1:\n%v", std, h1)
			}
		})
	}
}

// TestConformanceFlush: a flushed part reaches the client while the
// handler still runs. The handler waits for the client to have seen the
// first part, so that a missing flush is a timeout, not a race.
func TestConformanceFlush(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			seen := make(chan struct{})
			addr := s.start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "first")
				w.(http.Flusher).Flush()
				select {
				case <-seen:
				case <-time.After(3 * time.Second):
				}
				_, _ = io.WriteString(w, "second")
			}), defaultConfig)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, get)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if te := resp.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
				t.Errorf("flushed response not chunked: %v", te)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
				t.Fatalf("first part: %q, %v", buf, err)
			}
			close(seen)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "second" {
				t.Fatalf("second part: %q, %v", rest, err)
			}
		})
	}
}
