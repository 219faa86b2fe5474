package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// testTLS is a server TLS config offering HTTP/2 with net/http/httptest's
// certificate (for 127.0.0.1, ::1 and example.com), and a pool that trusts
// it. The proxy's tests use it rather than package certs, which is not the
// proxy's to import.
func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	s := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.StartTLS()
	cert, leaf := s.TLS.Certificates[0], s.Certificate()
	s.Close()
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12}, roots
}

// Serve with a TLS config speaks HTTP/2 and HTTP/1.1, and the app sees
// X-Forwarded-Proto https.
func TestServeTLS(t *testing.T) {
	be := newBackend(t, "app")
	p := newProxy(t, Config{})
	setTarget(t, p, be, 4)
	conf, roots := testTLS(t)
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(ctx, ln, ServerConfig{TLS: conf, ShutdownTimeout: 5 * time.Second})
	}()
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + ln.Addr().String() + "/headers")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := 1
		if h2 {
			want = 2
		}
		if resp.ProtoMajor != want || resp.Header.Get("Echo-X-Forwarded-Proto") != "https" || resp.TLS == nil {
			t.Errorf("h2 %v: %s, X-Forwarded-Proto %q", h2, resp.Proto, resp.Header.Get("Echo-X-Forwarded-Proto"))
		}
		tr.CloseIdleConnections()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
