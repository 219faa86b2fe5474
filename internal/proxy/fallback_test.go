package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// peers is a list of peer addresses the test changes while proxies run.
type peers struct {
	mu    sync.Mutex
	addrs []string
}

func (p *peers) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.addrs...)
}

func (p *peers) set(a ...string) {
	p.mu.Lock()
	p.addrs = a
	p.mu.Unlock()
}

// fallbackPair is two proxies that are each other's peer: a, whose app
// the test breaks, and b, whose app answers "b".
type fallbackPair struct {
	a, b           *Proxy
	aURL, bURL     string
	aPeers, bPeers *peers
	bApp           *backend
	lw             *lockedWriter
}

func (fp *fallbackPair) log() string {
	fp.lw.mu.Lock()
	defer fp.lw.mu.Unlock()
	return fp.lw.w.(*strings.Builder).String()
}

func newFallbackPair(t *testing.T, bufferRequests bool) *fallbackPair {
	fp := &fallbackPair{aPeers: &peers{}, bPeers: &peers{}, lw: &lockedWriter{w: &strings.Builder{}}}
	al, _ := NewAccessLog(fp.lw, "%ST %s %FB %E")
	fp.a = newProxy(t, Config{BufferRequests: bufferRequests, AccessLog: al,
		Fallback: &Fallback{Origin: "host-a", Peers: fp.aPeers.get}})
	fp.b = newProxy(t, Config{BufferRequests: true, Fallback: &Fallback{Origin: "host-b", Peers: fp.bPeers.get}})
	fp.aURL, fp.bURL = startProxy(t, fp.a), startProxy(t, fp.b)
	fp.bApp = newBackend(t, "b")
	setTarget(t, fp.b, fp.bApp, 4)
	fp.aPeers.set(strings.TrimPrefix(fp.bURL, "http://"))
	fp.bPeers.set(strings.TrimPrefix(fp.aURL, "http://"))
	return fp
}

func send(t *testing.T, from, method, url, body string, h map[string]string) result {
	t.Helper()
	c := client
	if from != "" { // a client on another loopback address
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		buffer   bool
		setup    func(t *testing.T, fp *fallbackPair)
		method   string
		path     string
		body     string
		header   map[string]string
		from     string // the client's address, when not 127.0.0.1
		want     int
		wantBody string
		sent     uint64
		failed   uint64
		received uint64 // at b
		log      string // in a's access log
	}{
		{name: "no target: the peer answers", want: 200, wantBody: "b", sent: 1, received: 1, log: "200 peer to:127.0.0.1"},
		{name: "target down", setup: func(t *testing.T, fp *fallbackPair) {
			setTarget(t, fp.a, newBackend(t, "a"), 1).SetDown(true)
		}, want: 200, wantBody: "b", sent: 1, received: 1},
		{name: "the target is being brought back: the peer answers at once", setup: func(t *testing.T, fp *fallbackPair) {
			setTarget(t, fp.a, newBackend(t, "a"), 1).SetPaused(true)
		}, want: 200, wantBody: "b", sent: 1, received: 1},
		{name: "connection refused", setup: func(t *testing.T, fp *fallbackPair) {
			fp.a.SetTarget("gone", closedAddr(t), 1)
		}, want: 200, wantBody: "b", sent: 1, received: 1},
		{name: "a buffered POST body goes whole", buffer: true, setup: func(t *testing.T, fp *fallbackPair) {
			fp.a.SetTarget("gone", closedAddr(t), 1)
		}, method: "POST", path: "/headers", body: "payload", want: 200, wantBody: "b", sent: 1, received: 1},
		{name: "an unbuffered body is not retried", setup: func(t *testing.T, fp *fallbackPair) {
			fp.a.SetTarget("gone", closedAddr(t), 1)
		}, method: "POST", body: "payload", want: 502},
		{name: "the health path is never forwarded", path: "/healthcheck", want: 503},
		{name: "the app answers: nothing forwarded", setup: func(t *testing.T, fp *fallbackPair) {
			setTarget(t, fp.a, newBackend(t, "a"), 1)
		}, want: 200, wantBody: "a"},
		{name: "a marked request from a peer is not forwarded again",
			setup: func(t *testing.T, fp *fallbackPair) {
				fp.aPeers.set(strings.TrimPrefix(fp.bURL, "http://"), "127.0.0.1:1")
			},
			header: map[string]string{DefaultFallbackHeader: "host-c"}, want: 503, log: "503 - from:host-c"},
		{name: "a mark from anyone else is removed, and the request stays", from: "127.0.0.3", setup: func(t *testing.T, fp *fallbackPair) {
			setTarget(t, fp.a, newBackend(t, "a"), 1)
		}, path: "/headers", header: map[string]string{DefaultFallbackHeader: "host-c"}, want: 200, wantBody: "a", log: "200 a - -"},
		{name: "a forged mark is never forwarded", from: "127.0.0.3", header: map[string]string{DefaultFallbackHeader: "host-c"}, want: 503},
		{name: "the peer is unreachable: the local answer, counted failed", setup: func(t *testing.T, fp *fallbackPair) {
			fp.aPeers.set(closedAddr(t))
		}, want: 503, sent: 1, failed: 1, log: "fallback to peer"},
		{name: "no peers", setup: func(t *testing.T, fp *fallbackPair) { fp.aPeers.set() }, want: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := newFallbackPair(t, tc.buffer)
			if tc.setup != nil {
				tc.setup(t, fp)
			}
			path, method := tc.path, tc.method
			if path == "" {
				path = "/"
			}
			if method == "" {
				method = "GET"
			}
			res := send(t, tc.from, method, fp.aURL+path, tc.body, tc.header)
			if res.err != nil || res.status != tc.want || (tc.wantBody != "" && res.body != tc.wantBody) {
				t.Fatalf("got %d %q %v, want %d %q", res.status, res.body, res.err, tc.want, tc.wantBody)
			}
			if tc.method == "POST" && tc.want == 200 && res.header.Get("Echo-"+DefaultFallbackHeader) != "host-a" {
				t.Errorf("the peer's app did not see the mark: %v", res.header)
			}
			if tc.from != "" && res.header.Get("Echo-"+DefaultFallbackHeader) != "" {
				t.Errorf("the app saw a forged mark: %v", res.header)
			}
			fa, fb := fp.a.Fallbacks(), fp.b.Fallbacks()
			if fa.Sent != tc.sent || fa.Failed != tc.failed || fb.Received != tc.received {
				t.Errorf("counts: a %+v, b %+v; want sent %d failed %d received %d", fa, fb, tc.sent, tc.failed, tc.received)
			}
			waitFor(t, "the access log line", func() bool { return strings.Contains(fp.log(), "\n") })
			if !strings.Contains(fp.log(), tc.log) {
				t.Errorf("access log %q lacks %q", fp.log(), tc.log)
			}
		})
	}
}

// A request that goes to a peer loses what the app would not get either:
// the connection's fields (those named in Connection too) and the
// client-IP fields of a client the proxy does not trust, even when the
// peer trusts the proxy (as a fleet's hosts may, for X-Forwarded-For).
func TestFallbackHeaders(t *testing.T) {
	fp := &fallbackPair{aPeers: &peers{}, bPeers: &peers{}}
	fp.a = newProxy(t, Config{BufferRequests: true, Fallback: &Fallback{Origin: "host-a", Peers: fp.aPeers.get}})
	fp.b = newProxy(t, Config{BufferRequests: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Fallback: &Fallback{Origin: "host-b", Peers: fp.bPeers.get}})
	fp.aURL, fp.bURL = startProxy(t, fp.a), startProxy(t, fp.b)
	setTarget(t, fp.b, newBackend(t, "b"), 4)
	fp.aPeers.set(strings.TrimPrefix(fp.bURL, "http://"))
	fp.a.SetTarget("gone", closedAddr(t), 1)
	res := send(t, "127.0.0.3", "GET", fp.aURL+"/headers", "", map[string]string{
		"X-Real-Ip": "6.6.6.6", "True-Client-Ip": "6.6.6.6", "Connection": "X-Secret", "X-Secret": "s", "X-Kept": "k", "X-Request-Id": "rid-1"})
	if res.err != nil || res.status != 200 || res.body != "b" {
		t.Fatalf("got %d %q %v, want b's 200", res.status, res.body, res.err)
	}
	for _, name := range []string{"X-Real-Ip", "True-Client-Ip", "X-Secret"} {
		if v := res.header.Get("Echo-" + name); v != "" {
			t.Errorf("the peer's app got %s: %q", name, v)
		}
	}
	if res.header.Get("Echo-X-Kept") != "k" || res.header.Get("Echo-X-Request-Id") != "rid-1" {
		t.Errorf("an end-to-end field was lost: %v", res.header)
	}
	if got := res.header.Get("Echo-X-Forwarded-For"); !strings.HasPrefix(got, "127.0.0.3") {
		t.Errorf("X-Forwarded-For at the peer's app %q, want the client first", got)
	}
}

// Both apps down: the request goes to the peer once and comes back with
// the peer's clear 503, not around in a loop.
func TestFallbackNoLoop(t *testing.T) {
	fp := newFallbackPair(t, true)
	fp.b.ClearTarget()
	res := send(t, "", "GET", fp.aURL+"/", "", nil)
	if res.status != 503 || !strings.Contains(res.body, "no app") {
		t.Fatalf("both down: %d %q", res.status, res.body)
	}
	fa, fb := fp.a.Fallbacks(), fp.b.Fallbacks()
	if fa.Sent != 1 || fa.Failed != 1 || fb.Received != 1 || fb.Sent != 0 {
		t.Fatalf("counts: a %+v, b %+v", fa, fb)
	}
}

// BenchmarkHandlerFallback is BenchmarkHandlerStats/on with the fallback
// hook set (peers known, the app answering): what a fleet host pays per
// request for being able to fall back.
func BenchmarkHandlerFallback(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var fb *Fallback
		if on {
			name, fb = "on", &Fallback{Origin: "h1", Peers: func() []string { return []string{"127.0.0.2:8000"} }}
		}
		b.Run(name, func(b *testing.B) {
			p := memoryProxy(b, Config{QueueTimeout: 10 * time.Second, Fallback: fb})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://bench/bench?x=1", nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					req.Header.Del("X-Request-Id")
					clear(w.h)
					p.ServeHTTP(w, req)
				}
			})
		})
	}
}
