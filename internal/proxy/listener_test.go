package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Over the connection limit a plain client gets a short 503; a TLS client
// gets no plaintext inside its TLS stream (which it would report as a
// protocol error) but a quiet close it can retry.
func TestConnectionLimitRefusal(t *testing.T) {
	tests := []struct {
		name string
		tls  bool
		alpn []string
	}{
		{"plain HTTP", false, nil},
		{"TLS, HTTP/1.1", true, []string{"http/1.1"}},
		{"TLS, HTTP/2", true, []string{"h2", "http/1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			p := newProxy(t, Config{})
			setTarget(t, p, b, 1)
			ln, dial := serveLimited(t, p, tt.tls, tt.alpn)
			first, err := dial() // takes the only connection
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			waitFor(t, "the first connection accepted", func() bool { return ln.(*limitListener).open.Load() == 1 })

			second, err := dial()
			if !tt.tls {
				checkPlainRefusal(t, second, err)
				return
			}
			if err == nil {
				second.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = second.Read(make([]byte, 1))
				second.Close()
			}
			if err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				t.Fatalf("TLS refusal: %v, want a quiet close (EOF or reset)", err)
			}
			if ln.(*limitListener).refuse.Load() != 1 {
				t.Fatalf("refused %d connections, want 1", ln.(*limitListener).refuse.Load())
			}
		})
	}
}

// serveLimited serves p on a listener limited to one connection, over TLS
// when useTLS, until the test ends; dial connects to it as a client
// offering alpn.
func serveLimited(t *testing.T, p *Proxy, useTLS bool, alpn []string) (ln net.Listener, dial func() (net.Conn, error)) {
	conf, roots := testTLS(t)
	ln, err := Listen("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	sc := ServerConfig{ShutdownTimeout: time.Second}
	if useTLS {
		sc.TLS = conf
	}
	serveTest(t, p, ln, sc)
	addr := ln.Addr().String()
	return ln, func() (net.Conn, error) {
		if !useTLS {
			return net.Dial("tcp", addr)
		}
		return tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: alpn})
	}
}

// checkPlainRefusal reads the 503 a plain connection over the limit gets.
func checkPlainRefusal(t *testing.T, c net.Conn, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("plain refusal: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many connections") {
		t.Fatalf("plain refusal: %d %q", resp.StatusCode, body)
	}
}
