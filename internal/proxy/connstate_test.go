package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawConn is a client connection the test drives byte by byte.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, url string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// roundTrip sends a whole GET and reads its whole response.
func (c *rawConn) roundTrip(t *testing.T, path string) {
	t.Helper()
	c.send(t, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}

// Connections in every state at once, through a real server: each state is
// held by one connection and the counts say so; then all end and the counts
// return to zero.
func TestConnectionStates(t *testing.T) {
	hold := make(chan struct{})
	chunk := make([]byte, 64<<10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold": // in the app until released
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		case "/big": // an endless response, for a client that does not read
			w.WriteHeader(200)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	tg, _, err := p.SetTarget("app", app.Listener.Addr().String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, p)

	inApp := dialRaw(t, url)
	inApp.send(t, "GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
	writing := dialRaw(t, url) // never reads: the proxy blocks writing to it
	writing.send(t, "GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
	waitFor(t, "both workers busy", func() bool { return tg.InFlight() == 2 })
	queued := dialRaw(t, url)
	queued.send(t, "GET /x HTTP/1.1\r\nHost: test\r\n\r\n")
	waitFor(t, "a request queued", func() bool { return p.Queued() == 1 })
	idle := dialRaw(t, url)
	idle.roundTrip(t, "/healthcheck") // the health path skips the queue
	reading := dialRaw(t, url)
	reading.send(t, "GET /x HTTP/1.1\r\nHost: te") // half the headers
	again := dialRaw(t, url)
	again.roundTrip(t, "/healthcheck")
	again.send(t, "GET /x HTTP/1.1\r\n") // a keep-alive connection's next request, begun

	want := ConnStates{Reading: 2, Queued: 1, InApp: 1, Writing: 1, Idle: 1, Open: 6}
	var got ConnStates
	waitFor(t, "the connection states", func() bool { got = p.Connections(); return got == want })
	if n := tg.InFlight(); int64(got.InApp+got.Writing) != n {
		t.Errorf("in_app %d + writing %d, but %d requests in flight on the target", got.InApp, got.Writing, n)
	}
	if rc := p.Report().Connections; rc != want {
		t.Errorf("Report().Connections = %+v, want %+v", rc, want)
	}
	b, _ := json.Marshal(got)
	if s := string(b); s != `{"reading":2,"queued":1,"in_app":1,"writing":1,"idle":1,"open":6}` {
		t.Errorf("JSON %s", s)
	}

	// The half-sent request completes: reading → queued (both workers busy).
	reading.send(t, "st\r\n\r\n")
	waitFor(t, "the completed request to queue", func() bool {
		got = p.Connections()
		return got == ConnStates{Reading: 1, Queued: 2, InApp: 1, Writing: 1, Idle: 1, Open: 6}
	})

	// Everything ends: the counts go back to zero.
	close(hold)
	for _, c := range []*rawConn{inApp, writing, queued, idle, reading, again} {
		c.Close()
	}
	waitFor(t, "no connections", func() bool { got = p.Connections(); return got == ConnStates{} })
	if ph := p.phases.Load(); ph != 0 {
		t.Errorf("phase counters %#x after every request ended", ph)
	}
}

// The packed connection counts decode the transient -1 of a race without
// garbling the other fields.
func TestConnCountsSigned(t *testing.T) {
	var c connCounts
	c.move(connNone, connActive)
	c.move(connNone, connIdle)
	c.move(connReading, connGone) // before its connNone → connReading lands
	if r, a, i := c.load(); r != 0 || a != 1 || i != 1 {
		t.Errorf("transient: reading %d active %d idle %d, want 0 1 1", r, a, i)
	}
	c.move(connNone, connReading)
	if r, a, i := c.load(); r != 0 || a != 1 || i != 1 {
		t.Errorf("settled: reading %d active %d idle %d, want 0 1 1", r, a, i)
	}
}
