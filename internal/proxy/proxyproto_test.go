package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// serveProxyProto serves p behind Listen(maxConns) and the PROXY protocol,
// trusting senders in from.
func serveProxyProto(t *testing.T, p *Proxy, maxConns int, from string) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", maxConns)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := ProxyProtocolListener(ln, []netip.Prefix{netip.MustParsePrefix(from)}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, pl, ServerConfig{ShutdownTimeout: 2 * time.Second}) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func v2Header(t *testing.T, src, dst string) string {
	h := &proxyproto.Header{
		Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		DestinationAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)),
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The client address in a v1 or v2 header becomes the request's: it is in
// X-Forwarded-For and the access log. Connection tracking still works
// under the PROXY protocol connection.
func TestProxyProtocol(t *testing.T) {
	tests := []struct{ name, header string }{
		{"v1", "PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n"},
		{"v2", v2Header(t, "203.0.113.7:56324", "10.0.0.1:443")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			logs := &syncLog{}
			al, _ := NewAccessLog(logs, "%ci %ST")
			p := newProxy(t, Config{AccessLog: al})
			setTarget(t, p, b, 1)
			addr := serveProxyProto(t, p, 0, "127.0.0.0/8")

			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.header+"GET /headers HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			c.SetDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Echo-X-Forwarded-For"); got != "203.0.113.7" {
				t.Fatalf("X-Forwarded-For %q, want the PROXY header's client 203.0.113.7", got)
			}
			waitFor(t, "the log line", func() bool { return strings.Contains(logs.String(), "203.0.113.7 200") })
			waitFor(t, "the connection counted idle", func() bool {
				cs := p.Connections()
				return cs.Idle == 1 && cs.Open == 1
			})
		})
	}
}

// Connections from addresses not trusted to send PROXY headers are closed
// unanswered; a trusted one without a header gets net/http's 400 for an
// unreadable request and is closed. The app sees none of them.
func TestProxyProtocolRefused(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, b, 1)
	untrusted := serveProxyProto(t, p, 0, "10.0.0.0/8")
	trusted := serveProxyProto(t, p, 0, "127.0.0.0/8")
	for _, tc := range []struct{ name, addr, send string }{
		{"untrusted sender", untrusted, "PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"no header", trusted, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		c, err := net.Dial("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.send)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if errors.Is(err, syscall.ECONNRESET) {
			// Closed with our request unread in its buffer: the kernel
			// resets rather than ends the connection. Closed all the same.
			err = nil
		}
		if err != nil || (len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400 ")) {
			t.Errorf("%s: got %q, %v: want the connection closed (after a 400 at most)", tc.name, got, err)
		}
	}
	if b.served.Load() != 0 {
		t.Fatalf("the app served %d refused requests", b.served.Load())
	}
}

// The connection limit applies under the PROXY protocol: past it a
// connection gets the quick 503.
func TestProxyProtocolConnectionLimit(t *testing.T) {
	b := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, b, 1)
	addr := serveProxyProto(t, p, 1, "127.0.0.0/8")
	c1, _ := net.Dial("tcp", addr)
	defer c1.Close()
	io.WriteString(c1, "PROXY TCP4 203.0.113.7 10.0.0.1 1 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c1), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v %v", resp, err)
	}
	c2, _ := net.Dial("tcp", addr)
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("connection over the limit: %v %v, want 503", resp, err)
	}
}
