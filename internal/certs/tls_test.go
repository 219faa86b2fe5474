package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a new self-signed certificate for hosts to path
// (one PEM file) and returns its leaf.
func writeSelfSigned(t testing.TB, path string, now time.Time, hosts ...string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := newSelfSigned(hosts[0], normalizeCertHosts(hosts), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := loadCertificate(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf
}

// tlsServer accepts TLS connections with conf on loopback, completes their
// handshakes and echoes what they send, until the test ends.
func tlsServer(t testing.TB, conf *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dialTLS(addr string, conf *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, nil
}

func TestTLSConfigProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cert.pem")
	leaf := writeSelfSigned(t, path, time.Now(), "localhost")
	r, err := NewReloader(path, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, TLSConfig(r.GetCertificate))
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	client := func(f func(c *tls.Config)) *tls.Config {
		c := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		f(c)
		return c
	}

	// Old protocol versions: the server refuses them (the client offers them).
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := dialTLS(addr, client(func(c *tls.Config) { c.MinVersion, c.MaxVersion = v, v }))
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s handshake: %v, want a protocol version alert", tls.VersionName(v), err)
		}
	}
	// TLS 1.2 with suites outside the profile: CBC, and RSA key exchange.
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256} {
		_, err := dialTLS(addr, client(func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{s} }))
		if err == nil {
			t.Errorf("TLS 1.2 with %s: handshake succeeded", tls.CipherSuiteName(s))
		}
	}
	// Each ECDSA suite of the profile negotiates under TLS 1.2 (the RSA
	// ones need an RSA certificate).
	for _, s := range intermediateCipherSuites {
		if !strings.Contains(tls.CipherSuiteName(s), "ECDSA") {
			continue
		}
		c, err := dialTLS(addr, client(func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{s} }))
		if err != nil {
			t.Errorf("TLS 1.2 with %s: %v", tls.CipherSuiteName(s), err)
			continue
		}
		if got := c.ConnectionState().CipherSuite; got != s {
			t.Errorf("negotiated %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(s))
		}
		c.Close()
	}
	// A client with a curve outside the profile only: no common group.
	if _, err := dialTLS(addr, client(func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP521} })); err == nil {
		t.Error("P-521 only: handshake succeeded")
	}
	// A default client: TLS 1.3, and h2 chosen by ALPN.
	c, err := dialTLS(addr, client(func(c *tls.Config) { c.NextProtos = []string{"h2", "http/1.1"} }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.ConnectionState(); st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "h2" {
		t.Fatalf("default client: %s, ALPN %q", tls.VersionName(st.Version), st.NegotiatedProtocol)
	}
}

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tls", "selfsigned.pem")
	cert, err := SelfSigned([]string{"LocalHost", "127.0.0.1", "::1", "localhost"}, path)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost"}) || len(leaf.IPAddresses) != 2 || leaf.Subject.CommonName != "localhost" {
		t.Errorf("names %v %v CN %q", leaf.DNSNames, leaf.IPAddresses, leaf.Subject.CommonName)
	}
	if leaf.NotAfter.Before(time.Now().Add(300*24*time.Hour)) || leaf.NotBefore.After(time.Now()) {
		t.Errorf("validity %v – %v", leaf.NotBefore, leaf.NotAfter)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	// The same names (in any order and case): the file is reused.
	again, err := SelfSigned([]string{"127.0.0.1", "localhost", "::1"}, path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatal("same hosts: the certificate was made anew, want it reused from disk")
	}
	// Other names: a new certificate for them.
	other, err := SelfSigned([]string{"localhost", "app.internal"}, path)
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !slices.Equal(other.Leaf.DNSNames, []string{"app.internal", "localhost"}) {
		t.Fatalf("new hosts: serial %x names %v", other.Leaf.SerialNumber, other.Leaf.DNSNames)
	}
	// About to expire: replaced.
	old := writeSelfSigned(t, path, time.Now().Add(-selfSignedValidity+time.Hour), "localhost")
	fresh, err := SelfSigned([]string{"localhost"}, path)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Leaf.SerialNumber.Cmp(old.SerialNumber) == 0 || time.Until(fresh.Leaf.NotAfter) < 300*24*time.Hour {
		t.Fatalf("expiring certificate kept: not after %v", fresh.Leaf.NotAfter)
	}
	// Garbage in the file: replaced too.
	os.WriteFile(path, []byte("not a certificate"), 0o600)
	if _, err := SelfSigned([]string{"localhost"}, path); err != nil {
		t.Fatal(err)
	}
	if _, err := SelfSigned(nil, path); err == nil {
		t.Fatal("no hosts: no error")
	}
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "site.pem")
	first := writeSelfSigned(t, path, time.Now(), "localhost")
	r, err := NewReloader(path, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, TLSConfig(r.GetCertificate))
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	insecure := &tls.Config{InsecureSkipVerify: true}

	open, err := dialTLS(addr, insecure)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if serial(open) != first.SerialNumber.String() {
		t.Fatal("first handshake: not the file's certificate")
	}

	second := writeSelfSigned(t, path, time.Now(), "localhost")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(addr, insecure)
	if err != nil {
		t.Fatal(err)
	}
	if serial(c) != second.SerialNumber.String() {
		t.Fatal("after Reload: a new handshake does not see the new certificate")
	}
	c.Close()
	// The connection opened before the reload still works.
	if _, err := open.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(open, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("old connection after reload: %q %v", buf, err)
	}

	// A bad file: Reload fails and the served certificate stays.
	os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600)
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("reload of a bad file: %v, want an error naming it", err)
	}
	os.Remove(path)
	if err := r.Reload(); err == nil {
		t.Fatal("reload of a missing file: no error")
	}
	c, err = dialTLS(addr, insecure)
	if err != nil {
		t.Fatal(err)
	}
	if serial(c) != second.SerialNumber.String() {
		t.Fatal("after a failed reload the certificate changed")
	}
	c.Close()
}

func TestLoadCertificateSeparateFiles(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := newSelfSigned("a.example", []string{"a.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := newSelfSigned("b.example", []string{"b.example"}, time.Now())
	certPath, keyPath, otherPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "o.pem")
	os.WriteFile(certPath, certPEM, 0o600)
	os.WriteFile(keyPath, keyPEM, 0o600)
	os.WriteFile(otherPath, otherKey, 0o600)
	cert, err := loadCertificate(certPath, keyPath)
	if err != nil || cert.Leaf.DNSNames[0] != "a.example" {
		t.Fatalf("cert and key: %v", err)
	}
	if _, err := loadCertificate(certPath, otherPath); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := loadCertificate(certPath, ""); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("PEM without its key: %v", err)
	}
}

func TestRedirectHandler(t *testing.T) {
	tests := []struct {
		port, method, target, host string
		status                     int
		location                   string
	}{
		{"443", "GET", "/a/b?x=1&y=%20", "example.com", 308, "https://example.com/a/b?x=1&y=%20"},
		{"", "GET", "/", "example.com:80", 308, "https://example.com/"},
		{"8443", "GET", "/p?q", "example.com:8080", 308, "https://example.com:8443/p?q"},
		{"8443", "POST", "/form", "example.com", 308, "https://example.com:8443/form"},
		{"8443", "HEAD", "/a%20b/c", "example.com", 308, "https://example.com:8443/a%20b/c"},
		{"8443", "GET", "/x?", "[::1]:8080", 308, "https://[::1]:8443/x?"},
		{"443", "GET", "/x", "[::1]", 308, "https://[::1]/x"},
		{"443", "GET", "/.well-known/acme-challenge/token", "example.com", 404, ""},
		{"443", "GET", "/", "", 400, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.target, strings.NewReader("body"))
		req.Host = tt.host
		w := httptest.NewRecorder()
		RedirectHandler(tt.port).ServeHTTP(w, req)
		if w.Code != tt.status || w.Header().Get("Location") != tt.location {
			t.Errorf("%s %s Host %q port %q: %d %q, want %d %q", tt.method, tt.target, tt.host, tt.port,
				w.Code, w.Header().Get("Location"), tt.status, tt.location)
		}
	}
}

func TestACMEHostPolicy(t *testing.T) {
	a, err := NewACME(ACMEConfig{Domains: []string{"WWW.Example.com.", "www.example.com", "api.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Domains(), []string{"www.example.com", "api.example.com"}) {
		t.Fatalf("domains %v", a.Domains())
	}
	policy := hostPolicy(map[string]bool{"www.example.com": true})
	for host, ok := range map[string]bool{"www.example.com": true, "www.example.com:5002": true, "WWW.example.com.": true, "evil.example.com": false, "127.0.0.1": false} {
		if err := policy(context.Background(), host); (err == nil) != ok {
			t.Errorf("host %q: %v", host, err)
		}
	}
	for _, bad := range [][]string{nil, {"localhost"}, {"10.0.0.1"}, {"bad name.example"}} {
		if _, err := NewACME(ACMEConfig{Domains: bad}); err == nil {
			t.Errorf("domains %q: no error", bad)
		}
	}
	conf := a.TLSConfig()
	if !slices.Equal(conf.NextProtos, []string{"h2", "http/1.1", "acme-tls/1"}) || conf.MinVersion != tls.VersionTLS12 {
		t.Fatalf("ACME TLS config: %v", conf.NextProtos)
	}
}
