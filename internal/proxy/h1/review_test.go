package h1

// Review findings: each test fails on the code as reviewed.

import (
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// A request body kept past its handler (http.Transport's writeLoop may
// still read req.Body after RoundTrip returned, e.g. when the backend
// answered before the upload ended) must not read the next request's
// body: the connection's reqBody is reused, so the old req.Body becomes
// the new one. net/http answers such a read with ErrBodyReadAfterClose.
// (Here the stale read is done from the second handler, to be
// deterministic; in the proxy it is the Transport's goroutine, and the
// reuse is then also a data race on c.body.)
func TestReviewStaleBodyReadsNextRequest(t *testing.T) {
	for _, first := range []struct {
		name string
		h    func(r *http.Request)
	}{
		{"unread", func(r *http.Request) {}},
		{"read", func(r *http.Request) { _, _ = io.ReadAll(r.Body) }},
		{"closed", func(r *http.Request) { _ = r.Body.Close() }},
	} {
		t.Run(first.name, func(t *testing.T) {
			var stale io.Reader
			type result struct {
				staleN   int
				staleErr error
				own      string
			}
			got := make(chan result, 1)
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/1" {
					stale = r.Body
					first.h(r)
					return
				}
				var res result
				buf := make([]byte, 64)
				res.staleN, res.staleErr = stale.Read(buf)
				b, _ := io.ReadAll(r.Body)
				res.own = string(b)
				got <- res
				_, _ = io.WriteString(w, "ok")
			})}
			addr := serve(t, s)
			c, br := dial(t, addr)
			send(t, c, "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\naaaa")
			readResp(t, br)
			send(t, c, "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nSECRET")
			readResp(t, br)
			res := <-got
			if res.staleN != 0 || res.staleErr == nil || res.own != "SECRET" {
				t.Errorf("stale body of request 1 read (%d, %v); request 2's handler got %q, want SECRET",
					res.staleN, res.staleErr, res.own)
			}
		})
	}
}

// gate wraps the server's connections: the first "100 Continue" write
// blocks until another write comes (or a fallback delay, so that a fixed
// server, whose WriteHeader waits for the 100 Continue, still ends), and
// any write that starts while another is in progress is noted.
type gate struct {
	mu      sync.Mutex
	active  int
	blocked bool
	overlap bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

type gateListener struct {
	net.Listener
	g *gate
}

func (l gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gateConn{Conn: c, g: l.g}, nil
}

type gateConn struct {
	net.Conn
	g *gate
}

func (c *gateConn) Write(p []byte) (int, error) {
	g := c.g
	g.mu.Lock()
	if g.active > 0 {
		g.overlap = true
		g.once.Do(func() { close(g.release) })
	}
	g.active++
	block := !g.blocked && string(p) == "HTTP/1.1 100 Continue\r\n\r\n"
	if block {
		g.blocked = true
	}
	g.mu.Unlock()
	if block {
		close(g.entered)
		select {
		case <-g.release:
		case <-time.After(2 * time.Second): // liveness only
		}
	}
	n, err := c.Conn.Write(p)
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
	return n, err
}

// The 100 Continue, written by whichever goroutine first reads the body
// (the Transport's, in the proxy), must not overlap the handler's own
// response: writeContinue clears canContinue before it writes, and
// disableContinue's fast path then returns without taking continueMu, so
// WriteHeader+Flush write c.out while the 100 Continue is being written
// from it (a data race on c.out.b; the final head can precede the 100).
// Hijack does not disable the 100 Continue either (net/http's Hijack
// calls disableWriteContinue): its flush of c.out overlaps it, and a
// body read after would write "100 Continue" into the hijacked stream.
func TestReviewContinueRaces(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(w http.ResponseWriter)
	}{
		{"WriteHeader+Flush", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "hi")
			w.(http.Flusher).Flush()
		}},
		{"Hijack", func(w http.ResponseWriter) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				_ = c.Close()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testContinueRace(t, tc.respond) })
	}
}

func testContinueRace(t *testing.T, respond func(w http.ResponseWriter)) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	handled := make(chan struct{})
	s := &Server{ErrorLog: quietLog, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handled)
		read := make(chan struct{})
		go func() { defer close(read); _, _ = io.Copy(io.Discard, r.Body) }()
		<-g.entered // the 100 Continue is being written
		respond(w)
		<-read
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(gateListener{ln, g}) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	c, _ := dial(t, ln.Addr().String())
	send(t, c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
	<-handled
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.overlap {
		t.Error("the response was written while the 100 Continue was being written")
	}
}

// Host checks that differ from net/http's (and RFC 9112 3.2): an
// absolute-form request without a Host field must get 400; an empty Host
// field is valid. http.ReadRequest deletes the Host field, so h1 checks
// req.Host, which mixes the two up.
var reviewConformanceCases = []conformanceCase{
	{name: "absolute-form target without Host", handler: write("ok"), req: "GET http://a.example/ HTTP/1.1\r\n\r\n"},
	{name: "empty Host on 1.1", handler: write("ok"), req: "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
}

func TestReviewConformance(t *testing.T) {
	for _, tc := range reviewConformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]outcome{}
			for _, s := range servers {
				got[s.name] = exchange(s.start(t, tc.handler, defaultConfig), tc.req, tc.then, 1)
			}
			std, h1 := got["net/http"], got["h1"]
			if !reflect.DeepEqual(std.Answers, h1.Answers) || std.ReadErr != h1.ReadErr || std.Rest != h1.Rest || std.Closed != h1.Closed {
				t.Errorf("h1 differs from net/http\nnet/http:\n%v\nh1:\n%v", std, h1)
			}
		})
	}
}

// The response's framing must follow one Content-Length, whatever the
// handler does to its header after WriteHeader (the documented h1
// difference — the header is read when the response goes out — must not
// reach the framing): w.cl is parsed at WriteHeader, the head is written
// from the map at commit, so a Content-Length set late is sent next to
// the computed one (two, differing: a desync for whatever sits between),
// and one deleted late leaves a keep-alive response with no framing at
// all (the client reads until a close that does not come).
func TestReviewLateContentLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"set after WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "abc")
		}},
		{"deleted after WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusOK)
			w.Header().Del("Content-Length")
			_, _ = io.WriteString(w, "abc")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, &Server{Handler: tc.h})
			c, br := dial(t, addr)
			send(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			var cls, tes int
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading head: %v (so far %q)", err, head.String())
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
				name, _, _ := strings.Cut(line, ":")
				switch http.CanonicalHeaderKey(name) {
				case "Content-Length":
					cls++
				case "Transfer-Encoding":
					tes++
				}
			}
			if cls+tes != 1 || cls > 1 {
				t.Errorf("want exactly one framing field, got:\n%s", head.String())
			}
		})
	}
}
