package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsBackend echoes WebSocket messages prefixed with its name, and answers
// plain requests with its name.
type wsBackend struct {
	*httptest.Server
	name string
	open atomic.Int64 // WebSockets open now
}

func newWSBackend(t *testing.T, name string) *wsBackend {
	b := &wsBackend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			io.WriteString(w, name)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		b.open.Add(1)
		defer b.open.Add(-1)
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+":"), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// echo sends msg and returns the answer.
func echo(c *websocket.Conn, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, b, err := c.Read(ctx)
	return string(b), err
}

// Open WebSockets take no worker slot: with workers=1 and three of them
// open, a plain request is served at once, not queued.
func TestWebSocketsTakeNoWorker(t *testing.T) {
	b := newWSBackend(t, "a")
	p := newProxy(t, Config{QueueTimeout: 200 * time.Millisecond, BufferRequests: true, BufferResponses: true})
	if _, _, err := p.SetTarget("a", b.Listener.Addr().String(), 1); err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, p)
	var socks []*websocket.Conn
	for i := 0; i < 3; i++ {
		c := dialWS(t, url)
		if got, err := echo(c, "hi"+itoa(i)); err != nil || got != "a:hi"+itoa(i) {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
		socks = append(socks, c)
	}
	if r := get(context.Background(), url+"/x"); r.status != 200 || r.body != "a" {
		t.Fatalf("plain request with 3 WebSockets open on workers=1: %d %q", r.status, r.body)
	}
	if n := p.Active().openUpgrades(); n != 3 {
		t.Fatalf("openUpgrades() = %d, want 3", n)
	}
	if cs := p.Connections(); cs.InApp != 3 {
		t.Errorf("connections %+v: want the 3 WebSockets in_app", cs)
	}
	for _, c := range socks { // still echoing both ways
		if got, err := echo(c, "again"); err != nil || got != "a:again" {
			t.Fatalf("echo after: %q %v", got, err)
		}
	}
}

// A WebSocket open during a swap keeps echoing on the old backend while new
// requests go to the new one; the old target's drain waits for it, and its
// log line (101, the duration) is written when it closes.
func TestWebSocketAcrossSwap(t *testing.T) {
	a, b := newWSBackend(t, "a"), newWSBackend(t, "b")
	logs := &syncLog{}
	al, _ := NewAccessLog(logs, "%HU %ST %Ta %B %s")
	p := newProxy(t, Config{AccessLog: al})
	if _, _, err := p.SetTarget("a", a.Listener.Addr().String(), 1); err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, p)
	ws := dialWS(t, url)
	if got, _ := echo(ws, "1"); got != "a:1" {
		t.Fatalf("before the swap: %q", got)
	}

	_, old, err := p.SetTarget("b", b.Listener.Addr().String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := get(context.Background(), url+"/x"); r.body != "b" {
		t.Fatalf("a new request after the swap went to %q", r.body)
	}
	if got, err := echo(ws, "2"); err != nil || got != "a:2" {
		t.Fatalf("the open WebSocket after the swap: %q %v, want a:2 (it stays on the old backend)", got, err)
	}
	ws2 := dialWS(t, url)
	if got, _ := echo(ws2, "3"); got != "b:3" {
		t.Fatalf("a new WebSocket after the swap: %q, want b:3", got)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := old.WaitDrained(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a WebSocket open: %v, want the deadline", err)
	}
	time.Sleep(50 * time.Millisecond)
	ws.Close(websocket.StatusNormalClosure, "bye")
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := old.WaitDrained(dctx); err != nil {
		t.Fatalf("drain after the WebSocket closed: %v", err)
	}
	var line string
	waitFor(t, "the WebSocket's log line", func() bool {
		line = regexp.MustCompile(`(?m)^/ws 101 .* a$`).FindString(logs.String())
		return line != ""
	})
	f := strings.Fields(line)
	if ms, _ := strconv.Atoi(f[2]); ms < 150 {
		t.Errorf("log line %q: duration %d ms, want the WebSocket's whole life", line, ms)
	}
	if n, _ := strconv.Atoi(f[3]); n == 0 {
		t.Errorf("log line %q: no bytes sent counted", line)
	}
}

// CloseUpgraded ends a retired target's WebSockets at once, which lets its
// drain finish.
func TestCloseUpgraded(t *testing.T) {
	a, b := newWSBackend(t, "a"), newWSBackend(t, "b")
	p := newProxy(t, Config{})
	p.SetTarget("a", a.Listener.Addr().String(), 1)
	url := startProxy(t, p)
	ws := dialWS(t, url)
	if got, _ := echo(ws, "1"); got != "a:1" {
		t.Fatalf("%q", got)
	}
	_, old, _ := p.SetTarget("b", b.Listener.Addr().String(), 1)
	if n := old.CloseUpgraded(); n != 1 {
		t.Fatalf("CloseUpgraded closed %d, want 1", n)
	}
	if _, err := echo(ws, "2"); err == nil {
		t.Fatal("the WebSocket still echoes after CloseUpgraded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.WaitDrained(ctx); err != nil {
		t.Fatalf("drain after CloseUpgraded: %v", err)
	}
	waitFor(t, "the backend's side closed", func() bool { return a.open.Load() == 0 })
}

// Only a WebSocket handshake (HTTP/1.1 GET, Connection naming upgrade,
// Upgrade: websocket) is an upgrade; any other is an ordinary request, and
// the app does not see its Upgrade header.
func TestIsUpgrade(t *testing.T) {
	for _, tc := range []struct {
		method, conn, up string
		want             bool
	}{
		{"GET", "Upgrade", "websocket", true},
		{"GET", "keep-alive, Upgrade", "WebSocket", true},
		{"GET", "upgrade", "h2c", false}, // would carry HTTP/2 streams past the queue
		{"GET", "Upgrade", "x", false},
		{"GET", "Upgrade", "websocket, h2c", false},
		{"POST", "Upgrade", "websocket", false},
		{"GET", "keep-alive", "websocket", false},
		{"GET", "Upgrade", "", false},
	} {
		r, _ := http.NewRequest(tc.method, "/", nil)
		r.Header.Set("Connection", tc.conn)
		if tc.up != "" {
			r.Header.Set("Upgrade", tc.up)
		}
		if got := isUpgrade(r); got != tc.want {
			t.Errorf("%s, Connection %q, Upgrade %q: %v, want %v", tc.method, tc.conn, tc.up, got, tc.want)
		}
	}
	b := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, b, 1)
	got := echoHeaders(t, startProxy(t, p), map[string]string{"Connection": "Upgrade", "Upgrade": "h2c"})
	if got.Get("Upgrade") != "" || got.Get("Connection") != "" {
		t.Errorf("the app got Upgrade %q, Connection %q for an h2c request", got.Get("Upgrade"), got.Get("Connection"))
	}
}
