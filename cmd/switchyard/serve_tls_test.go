package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/certs"
)

func TestParseServeTLS(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, c *tlsSettings)
	}{
		{"off by default", nil, nil, func(t *testing.T, c *tlsSettings) {
			if c.on() || c.acmeDirectory != certs.DefaultACMEDirectory || c.acmeHTTP != ":80" || c.redirectListen != "" || c.redirectPort() != "8000" {
				t.Fatalf("%+v", c)
			}
		}},
		{"SSL is the PEM file", []string{"--listen", ":8443"}, []string{"SSL=/etc/ssl/site.pem"}, func(t *testing.T, c *tlsSettings) {
			if c.pem != "/etc/ssl/site.pem" || c.redirectPort() != "8443" {
				t.Fatalf("%+v", c)
			}
		}},
		{"AUTO_SSL with hosts", []string{"--tls-hosts", "a.internal,10.0.0.5", "--https-redirect-listen", ":80", "--https-port", "443"},
			[]string{"AUTO_SSL=1"}, func(t *testing.T, c *tlsSettings) {
				if !c.auto || !slices.Equal(c.hosts, []string{"a.internal", "10.0.0.5"}) || c.redirectListen != ":80" || c.redirectPort() != "443" {
					t.Fatalf("%+v", c)
				}
			}},
		{"cert and key", []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, nil, func(t *testing.T, c *tlsSettings) {
			if c.cert != "c.pem" || c.key != "k.pem" || !c.on() {
				t.Fatalf("%+v", c)
			}
		}},
		{"ACME domains repeat and split", []string{"--acme-domain", "a.example", "--acme-domain", "b.example, c.example", "--acme-http-listen", "off"},
			[]string{"SWITCHYARD_ACME_EMAIL=ops@example.com"}, func(t *testing.T, c *tlsSettings) {
				if !slices.Equal(c.acmeDomains, []string{"a.example", "b.example", "c.example"}) || c.acmeEmail != "ops@example.com" || c.acmeHTTP != "off" {
					t.Fatalf("%+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(append(tt.args, "127.0.0.1:9000"), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c.tls)
		})
	}
}

func TestParseServeTLSErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // what the one-line error must name
	}{
		{"two sources", []string{"--auto-tls"}, []string{"SSL=x.pem"}, []string{"--tls-pem (SSL)", "--auto-tls (AUTO_SSL)"}},
		{"ACME and a file", []string{"--acme-domain", "a.example", "--tls-cert", "c", "--tls-key", "k"}, nil, []string{"--tls-cert/--tls-key", "--acme-domain"}},
		{"cert without key", []string{"--tls-cert", "c.pem"}, nil, []string{"tls-cert", "tls-key"}},
		{"key without cert", nil, []string{"SWITCHYARD_TLS_KEY=k.pem"}, []string{"tls-cert", "tls-key"}},
		{"hosts without auto", []string{"--tls-hosts", "a"}, nil, []string{"tls-hosts", "auto-tls"}},
		{"email without domain", []string{"--acme-email", "a@b.c"}, nil, []string{"acme-email", "--acme-domain"}},
		{"CA without domain", []string{"--acme-ca-cert", "ca.pem"}, nil, []string{"acme-ca-cert"}},
		{"bad directory", []string{"--acme-domain", "a.example", "--acme-directory", "letsencrypt"}, nil, []string{"acme-directory"}},
		{"bad challenge listen", []string{"--acme-domain", "a.example", "--acme-http-listen", "80"}, nil, []string{"acme-http-listen"}},
		{"redirect without TLS", []string{"--https-redirect-listen", ":80"}, nil, []string{"https-redirect-listen", "--tls-pem"}},
		{"bad redirect listen", []string{"--auto-tls", "--https-redirect-listen", "80"}, nil, []string{"https-redirect-listen"}},
		{"bad https port", []string{"--auto-tls", "--https-port", "99999"}, nil, []string{"https-port"}},
		{"bad AUTO_SSL", nil, []string{"AUTO_SSL=maybe"}, []string{"AUTO_SSL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(append(tt.args, "127.0.0.1:9000"), tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) || strings.Contains(msg, "\n") {
					t.Fatalf("error %q: want one line naming %q", msg, w)
				}
			}
		})
	}
}

// setupTLS parses args and runs what TLS starts until the test ends.
func setupTLS(t *testing.T, args ...string) (*tls.Config, *tlsSettings) {
	t.Helper()
	c, err := parseServe(append(args, "127.0.0.1:9000"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	conf, err := c.tls.start(gctx, g, t.TempDir(), zerolog.New(io.Discard))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan error, 1)
		go func() { done <- g.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the goroutines TLS started did not stop within 10s of the context's end")
		}
	})
	return conf, &c.tls
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var noFollow = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestTLSSetupOff(t *testing.T) {
	if conf, _ := setupTLS(t); conf != nil {
		t.Fatal("TLS config without a certificate source")
	}
}

// The PEM file is re-read on SIGHUP; a bad one leaves the certificate be.
func TestTLSSetupPEMReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "site.pem")
	first, err := certs.SelfSigned([]string{"localhost"}, pem)
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := setupTLS(t, "--tls-pem", pem)
	if !slices.Equal(conf.NextProtos, []string{"h2", "http/1.1"}) || conf.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config: %v %x", conf.NextProtos, conf.MinVersion)
	}
	serial := func() string {
		c, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	if serial() != first.Leaf.SerialNumber.String() {
		t.Fatal("not the PEM file's certificate")
	}
	second, err := certs.SelfSigned([]string{"localhost", "www.localhost"}, pem)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP) // start's watcher catches it
	deadline := time.Now().Add(5 * time.Second)
	for serial() != second.Leaf.SerialNumber.String() {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the certificate within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.WriteFile(pem, []byte("garbage"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if serial() != second.Leaf.SerialNumber.String() {
		t.Fatal("a failed reload changed the certificate")
	}
}

func TestTLSSetupAutoAndRedirect(t *testing.T) {
	redirect := freeAddr(t)
	conf, _ := setupTLS(t, "--auto-tls", "--tls-hosts", "localhost,127.0.0.1", "--listen", "127.0.0.1:8443", "--https-redirect-listen", redirect)
	cert, err := conf.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || !slices.Equal(cert.Leaf.DNSNames, []string{"localhost"}) {
		t.Fatalf("self-signed: %v %v", cert, err)
	}
	resp, err := noFollow.Get("http://" + redirect + "/a?b=c")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1:8443/a?b=c"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

func TestTLSSetupACMEListeners(t *testing.T) {
	challenge, redirect := freeAddr(t), freeAddr(t)
	// A directory nobody answers: the certificate is not obtained, the
	// listeners are up regardless.
	conf, _ := setupTLS(t, "--acme-domain", "www.example.com", "--acme-directory", "http://127.0.0.1:1/directory",
		"--acme-http-listen", challenge, "--https-redirect-listen", redirect, "--https-port", "443")
	if !slices.Contains(conf.NextProtos, "acme-tls/1") || !slices.Contains(conf.NextProtos, "h2") {
		t.Fatalf("NextProtos %v", conf.NextProtos)
	}
	if _, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.com"}); err == nil {
		t.Fatal("a certificate for a name that is not an ACME domain")
	}
	for _, addr := range []string{challenge, redirect} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/x?y", nil)
		req.Host = "www.example.com"
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://www.example.com/x?y" {
			t.Fatalf("%s: %d %q", addr, resp.StatusCode, resp.Header.Get("Location"))
		}
		// An unknown challenge token: autocert's 404, not a redirect.
		req, _ = http.NewRequest("GET", "http://"+addr+"/.well-known/acme-challenge/nope", nil)
		req.Host = "www.example.com:80"
		resp, err = noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s: unknown challenge token: %d", addr, resp.StatusCode)
		}
	}
}

func TestTLSSetupErrors(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("nope"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--tls-pem", filepath.Join(dir, "missing.pem")}, "tls-pem"},
		{[]string{"--tls-pem", filepath.Join(dir, "bad.pem")}, "bad.pem"},
		{[]string{"--tls-cert", filepath.Join(dir, "bad.pem"), "--tls-key", filepath.Join(dir, "bad.pem")}, "tls-cert/tls-key"},
		{[]string{"--acme-domain", "localhost", "--acme-http-listen", "off"}, "acme-domain"},
		{[]string{"--acme-domain", "a.example", "--acme-ca-cert", filepath.Join(dir, "bad.pem"), "--acme-http-listen", "off"}, "acme-ca-cert"},
		{[]string{"--auto-tls", "--https-redirect-listen", busy.Addr().String()}, busy.Addr().String()},
	}
	for _, tt := range tests {
		c, err := parseServe(append(tt.args, "127.0.0.1:9000"), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		_, err = c.tls.start(gctx, g, dir, zerolog.New(io.Discard))
		cancel()
		g.Wait()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one naming %q", tt.args, err, tt.want)
		}
	}
}
