package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// echoHeaders asks the backend to echo the request headers it got.
func echoHeaders(t *testing.T, url string, h map[string]string) http.Header {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/headers", nil)
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := http.Header{}
	for k, v := range resp.Header {
		if name, ok := strings.CutPrefix(k, "Echo-"); ok {
			got[name] = v
		}
	}
	return got
}

func TestForwardedHeaders(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		scheme  string
		in      map[string]string
		want    map[string]string // "" means absent
	}{
		{
			name: "untrusted client: its X-Forwarded-* are replaced",
			in: map[string]string{"Host": "shop.example:8443", "X-Forwarded-For": "6.6.6.6",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/evil"},
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": "shop.example:8443", "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": ""},
		},
		{
			name:    "trusted proxy: kept and For appended",
			trusted: loopback,
			in: map[string]string{"Host": "internal:8000", "X-Forwarded-For": "203.0.113.9, 10.0.0.2",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example", "X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/shop"},
			want: map[string]string{"X-Forwarded-For": "203.0.113.9, 10.0.0.2, 127.0.0.1", "X-Forwarded-Proto": "https",
				"X-Forwarded-Host": "shop.example", "X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/shop"},
		},
		{
			name: "trusted proxy without headers: set from the connection", trusted: loopback,
			in:   map[string]string{"Host": "shop.example"},
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Port": "80"},
		},
		{
			name: "SCHEME sets the proto and the default port", scheme: "https",
			in:   map[string]string{"Host": "shop.example"},
			want: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443", "X-Forwarded-Host": "shop.example"},
		},
		{
			name: "request id kept when present",
			in:   map[string]string{"X-Request-Id": "abc-123"},
			want: map[string]string{"X-Request-Id": "abc-123"},
		},
		{
			name: "hop-by-hop headers are removed",
			in:   map[string]string{"Connection": "X-Secret", "X-Secret": "1", "Keep-Alive": "timeout=5", "Proxy-Authorization": "x", "X-Kept": "yes"},
			want: map[string]string{"X-Secret": "", "Keep-Alive": "", "Proxy-Authorization": "", "X-Kept": "yes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			p := newProxy(t, Config{TrustedProxies: tt.trusted, Scheme: tt.scheme})
			setTarget(t, p, b, 2)
			got := echoHeaders(t, startProxy(t, p), tt.in)
			for k, want := range tt.want {
				if g := got.Get(k); g != want {
					t.Errorf("%s = %q, want %q", k, g, want)
				}
			}
			if got.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id sent to the app")
			}
		})
	}
}

func TestRequestIDsUnique(t *testing.T) {
	g := newRequestIDs()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := g.next()
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestResponseHeaders(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{QueueTimeout: 50 * time.Millisecond, ResponseHeaders: []Header{
		{Name: "X-Frame-Options", Value: "DENY"}, {Name: "X-Backend", Value: "hidden"}}})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	r := get(context.Background(), url+"/")
	if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Backend") != "hidden" {
		t.Fatalf("configured headers not set (and replacing the app's): %v", r.header)
	}
	p.ClearTarget()
	r = get(context.Background(), url+"/")
	if r.status != 503 || r.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("proxy-made response lacks configured headers: %d %v", r.status, r.header)
	}
}

func TestUpstreamErrors(t *testing.T) {
	// A port with nothing listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()

	slow := newBackend(t, "slow")
	tests := []struct {
		name   string
		addr   string
		path   string
		status int
		reason string
	}{
		{"unreachable", dead, "/", 502, "upstream unreachable"},
		{"too slow", slow.addr(), "/sleep?d=2s", 504, "upstream timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			al, _ := NewAccessLog(&lockedWriter{w: &logs}, "%ST %E")
			p := newProxy(t, Config{UpstreamTimeout: 100 * time.Millisecond, AccessLog: al})
			if _, _, err := p.SetTarget("t", tt.addr, 1); err != nil {
				t.Fatal(err)
			}
			r := get(context.Background(), startProxy(t, p)+tt.path)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%q)", r.status, tt.status, r.body)
			}
			if !strings.Contains(logs.String(), tt.reason) {
				t.Fatalf("access log %q does not give the reason %q", logs.String(), tt.reason)
			}
			if p.Stats().Snapshot().Failed != 1 {
				t.Fatalf("failed count %d", p.Stats().Snapshot().Failed)
			}
			// The slot came back: a second request is answered too.
			if r := get(context.Background(), startProxy(t, p)+tt.path); r.status != tt.status {
				t.Fatalf("second request: %d", r.status)
			}
		})
	}
}

// Past MAX_CONNECTIONS a new connection gets a quick 503 and is closed,
// rather than hanging in the backlog.
func TestMaxConnections(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, b, 1)
	ln, err := Listen("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, ServerConfig{ShutdownTimeout: time.Second}) }()
	defer func() { cancel(); <-done }()

	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// Make sure the server accepted it before the next dial.
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection %d: %v", i, err)
		}
		resp.Body.Close()
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("connection over the limit: %v %v", resp, err)
	}
	c.Close()
	held[0].Close()
	waitFor(t, "the freed connection to count", func() bool {
		r := get(context.Background(), "http://"+ln.Addr().String()+"/")
		return r.status == 200
	})
	held[1].Close()
}

// A graceful stop lets an in-flight request finish, then Serve returns nil.
func TestGracefulStop(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, b, 1)
	ln, _ := Listen("127.0.0.1:0", 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, ServerConfig{ShutdownTimeout: 5 * time.Second}) }()
	res := make(chan result, 1)
	go func() { res <- get(context.Background(), "http://"+ln.Addr().String()+"/sleep?d=300ms") }()
	waitFor(t, "request in the app", func() bool { return b.inflight.Load() == 1 })
	cancel()
	if r := <-res; r.status != 200 {
		t.Fatalf("in-flight request during stop: %d %v", r.status, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after graceful stop: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after stop")
	}
}

// Client-IP and scheme headers other than X-Forwarded-* (read by chi's
// RealIP, Rack, Rails, gunicorn, Symfony...) reach the app only from a
// trusted proxy; from anyone else they are dropped.
func TestClientIPHeadersStripped(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	in := map[string]string{}
	for _, h := range untrustedOnly {
		in[h] = "forged"
	}
	if len(in) < 15 {
		t.Fatalf("only %d headers in the list", len(in))
	}
	for _, name := range []string{"X-Real-Ip", "True-Client-Ip", "Client-Ip", "X-Forwarded-Scheme",
		"X-Forwarded-Ssl", "X-Original-Url", "X-Forwarded-Protocol", "X-Forwarded-Server", "X-Rewrite-Url"} {
		if _, ok := in[name]; !ok {
			t.Fatalf("%s is not in the list", name)
		}
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		kept    bool
	}{
		{"untrusted client", nil, false},
		{"trusted proxy", loopback, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			p := newProxy(t, Config{TrustedProxies: tt.trusted})
			setTarget(t, p, b, 2)
			got := echoHeaders(t, startProxy(t, p), in)
			for name := range in {
				if kept := got.Get(name) == "forged"; kept != tt.kept {
					t.Errorf("%s: reached the app %v, want %v", name, kept, tt.kept)
				}
			}
			if got.Get("Forwarded") != "" {
				t.Errorf("Forwarded reached the app: %q", got.Get("Forwarded"))
			}
		})
	}
}

// Naming a header in Connection drops it on the way (hop-by-hop), but
// never one the proxy sets itself: the request id and X-Forwarded-* reach
// the app, and the id is the one in the access log.
func TestConnectionHeaderKeepsOurs(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]string
		wantID string // "": any, but the logged one
	}{
		{"client id named in Connection", map[string]string{"X-Request-Id": "abc-1", "Connection": "X-Request-Id"}, "abc-1"},
		{"generated id named in Connection", map[string]string{"Connection": "X-Request-Id"}, ""},
		{"forwarded headers named in Connection", map[string]string{"Connection": "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			logs := &syncLog{}
			al, _ := NewAccessLog(logs, "%ID")
			p := newProxy(t, Config{AccessLog: al})
			setTarget(t, p, b, 2)
			got := echoHeaders(t, startProxy(t, p), tt.in)
			id := got.Get("X-Request-Id")
			if id == "" || (tt.wantID != "" && id != tt.wantID) {
				t.Errorf("the app got request id %q, want %q", id, tt.wantID)
			}
			waitFor(t, "the log line", func() bool { return logs.String() != "" })
			if logged := strings.TrimSpace(logs.String()); logged != id {
				t.Errorf("logged id %q, the app got %q", logged, id)
			}
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port"} {
				if got.Get(h) == "" {
					t.Errorf("%s did not reach the app", h)
				}
			}
		})
	}
}
