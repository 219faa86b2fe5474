package e2e

// TLS end to end, through the real binary in front of a static upstream:
// Go's HTTP/1.1 and HTTP/2 clients and curl over the PEM file's certificate,
// a reload on SIGHUP under an open keep-alive connection, the plain-HTTP
// redirect and AUTO_SSL's certificate across restarts; ACME is in
// tls_acme_test.go. No Docker needed.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// tlsServe is one `switchyard serve` with TLS.
type tlsServe struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *syncBuffer
	addr string // the TLS listener, 127.0.0.1:port
	done chan struct{}
}

// startServe runs switchyard serve listening on addr with args (ending
// with the upstream) and env, and stops it when the test ends.
func startServe(t *testing.T, addr string, env []string, args ...string) *tlsServe {
	t.Helper()
	s := &tlsServe{t: t, logs: &syncBuffer{}, addr: addr, done: make(chan struct{})}
	s.cmd = exec.Command(switchyardBinary(t), append([]string{"serve", "--listen", addr, "--log-address", "stderr",
		"--log-level", "debug", "--shutdown-timeout", "5s"}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("switchyard serve %v output:\n%s", args, tail(s.logs.String(), 8000))
		}
	})
	eventually(t, "switchyard to accept TCP connections on "+addr, 30*time.Second, func() error {
		if s.exited() {
			return fmt.Errorf("switchyard exited: %v\n%s", s.cmd.ProcessState, s.logs.String())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return s
}

func (s *tlsServe) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (bounded) for the exit; it reports a
// non-zero exit.
func (s *tlsServe) stop() {
	if s.exited() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if !s.cmd.ProcessState.Success() {
			s.t.Errorf("switchyard exit after SIGTERM: %v", s.cmd.ProcessState)
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Error("switchyard did not stop within 20s of SIGTERM")
	}
}

func (s *tlsServe) port() string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

// eventually polls f every 50 ms until it returns nil, or fails the test
// with its last error after timeout.
func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echoUpstream is the static upstream: it answers with what the proxy told it.
func echoUpstream(t *testing.T) string {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s xfp=%s uri=%s\n", r.Proto, r.Header.Get("X-Forwarded-Proto"), r.URL.RequestURI())
	}))
	t.Cleanup(app.Close)
	return app.Listener.Addr().String()
}

// testCA issues certificates for the tests.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	pool   *x509.CertPool
	serial int64
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool: x509.NewCertPool(), serial: 100}
	ca.pool.AddCert(cert)
	return ca
}

// issue returns a new leaf for hosts: its serial, the chain (leaf, CA) in
// PEM and the key in PEM.
func (ca *testCA) issue(t *testing.T, hosts ...string) (serial string, chain, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	chain = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	return big.NewInt(ca.serial).String(), chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// writeAtomic replaces path as a deploy tool would: a new file renamed over it.
func writeAtomic(t *testing.T, path string, data []byte) {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// handshake dials addr with conf and returns the leaf's serial.
func handshake(addr string, conf *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

type reply struct {
	resp   *http.Response
	body   string
	serial string
	reused bool
}

func fetch(c *http.Client, url string) (reply, error) {
	var r reply
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { r.reused = i.Reused }})
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.resp, r.body = resp, string(b)
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.serial = resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	return r, err
}

var noRedirect = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func curlBinary(t *testing.T) string {
	p, err := exec.LookPath("curl")
	if err != nil {
		testservers.Missing(t, "curl", err)
	}
	return p
}

// curl fetches url with the CA file over httpVersion ("--http2" or
// "--http1.1") and returns the body and the HTTP version curl used.
func curl(t *testing.T, caFile, httpVersion, url string, extra ...string) (body, version string) {
	t.Helper()
	args := append([]string{"-sS", "--max-time", "10", "--cacert", caFile, httpVersion, "-w", "\n%{http_version}"}, extra...)
	out, err := exec.Command(curlBinary(t), append(args, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s %s: %v\n%s", httpVersion, url, err, out)
	}
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, '\n')
	return s[:i+1], s[i+1:]
}

// The PEM file (SSL, as gunicorn-proxy's HAProxy takes it): HTTP/1.1 and
// HTTP/2 from Go and curl, the redirect, and a reload on SIGHUP.
func TestTLSPEMFile(t *testing.T) {
	curlBinary(t)
	upstream := echoUpstream(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile, pemFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "site.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	serial1, chain, key := ca.issue(t, "localhost", "127.0.0.1")
	writeAtomic(t, pemFile, append(chain, key...))
	redirect := testservers.FreeAddr(t)
	s := startServe(t, testservers.FreeAddr(t), []string{"SSL=" + pemFile}, "--https-redirect-listen", redirect, upstream, "4")
	base := "https://" + s.addr

	// Go's HTTP/1.1 client, kept open across the reload below.
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, MaxIdleConnsPerHost: 1}
	defer h1.CloseIdleConnections()
	keep := &http.Client{Transport: h1, Timeout: 10 * time.Second}
	r, err := fetch(keep, base+"/one?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if r.resp.Proto != "HTTP/1.1" || !strings.Contains(r.body, "xfp=https uri=/one?x=1") || r.serial != serial1 {
		t.Fatalf("HTTP/1.1: %s %q serial %s", r.resp.Proto, r.body, r.serial)
	}
	// Go's HTTP/2 client.
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	r, err = fetch(&http.Client{Transport: h2, Timeout: 10 * time.Second}, base+"/two")
	if err != nil {
		t.Fatal(err)
	}
	if r.resp.ProtoMajor != 2 || !strings.Contains(r.body, "xfp=https") {
		t.Fatalf("HTTP/2: %s %q", r.resp.Proto, r.body)
	}
	// curl (OpenSSL, nghttp2), both protocols.
	for flag, want := range map[string]string{"--http2": "2", "--http1.1": "1.1"} {
		body, version := curl(t, caFile, flag, base+"/curl")
		if version != want || !strings.Contains(body, "xfp=https uri=/curl") {
			t.Fatalf("curl %s: HTTP version %q, body %q", flag, version, body)
		}
	}
	// The plain-HTTP listener redirects to the TLS listener's port.
	resp, err := noRedirect.Post("http://"+redirect+"/form?a=b", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1:" + s.port() + "/form?a=b"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// SIGHUP with a new certificate in the file: new handshakes get it, the
	// keep-alive connection stays open with the old one.
	serial2, chain, key := ca.issue(t, "localhost", "127.0.0.1")
	writeAtomic(t, pemFile, append(chain, key...))
	s.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "a new handshake to see the new certificate", 10*time.Second, func() error {
		leaf, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
		if err == nil && leaf.SerialNumber.String() != serial2 {
			err = fmt.Errorf("serial %s, want %s", leaf.SerialNumber, serial2)
		}
		return err
	})
	r, err = fetch(keep, base+"/three")
	if err != nil {
		t.Fatal(err)
	}
	if !r.reused || r.serial != serial1 || r.resp.StatusCode != 200 {
		t.Fatalf("keep-alive connection after the reload: reused %v, serial %s (want %s), status %d", r.reused, r.serial, serial1, r.resp.StatusCode)
	}
	curlBody, _ := curl(t, caFile, "--http2", base+"/after-reload")
	if !strings.Contains(curlBody, "uri=/after-reload") {
		t.Fatalf("curl after reload: %q", curlBody)
	}

	// A broken file and SIGHUP: an error in the log, the certificate stays.
	writeAtomic(t, pemFile, chain) // no key
	s.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the failed reload in the log", 10*time.Second, func() error {
		if !strings.Contains(s.logs.String(), "reload failed") {
			return errors.New("not yet")
		}
		return nil
	})
	leaf, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
	if err != nil || leaf.SerialNumber.String() != serial2 || s.exited() {
		t.Fatalf("after a failed reload: %v, serial %v, exited %v", err, leaf, s.exited())
	}
}

// --tls-cert and --tls-key: two files, reloaded together.
func TestTLSCertAndKeyFiles(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	serial, chain, key := ca.issue(t, "localhost")
	writeAtomic(t, certFile, chain)
	writeAtomic(t, keyFile, key)
	s := startServe(t, testservers.FreeAddr(t), nil, "--tls-cert", certFile, "--tls-key", keyFile, echoUpstream(t), "1")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	r, err := fetch(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+s.addr+"/")
	if err != nil || r.serial != serial || r.resp.ProtoMajor != 2 {
		t.Fatalf("%v %+v", err, r)
	}
}

// AUTO_SSL: a self-signed certificate kept in the state directory, the
// same after a restart, made anew when its hosts change.
func TestTLSAutoSelfSigned(t *testing.T) {
	upstream := echoUpstream(t)
	state := t.TempDir()
	pemFile := filepath.Join(state, "tls", "selfsigned.pem")
	s := startServe(t, testservers.FreeAddr(t), []string{"AUTO_SSL=true"}, "--state-dir", state, upstream, "2")
	// The port accepts as soon as it is bound, a moment before the
	// certificate is made: one handshake waits until the proxy serves.
	if _, err := handshake(s.addr, &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(pemFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", pemFile, fi, err)
	}
	b, _ := os.ReadFile(pemFile)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in " + pemFile)
	}
	// Trusting the file is enough for Go and for curl.
	first, err := handshake(s.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if first.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key %v, want ECDSA", first.PublicKeyAlgorithm)
	}
	body, version := curl(t, pemFile, "--http2", "https://localhost:"+s.port()+"/auto",
		"--resolve", "localhost:"+s.port()+":127.0.0.1")
	if version != "2" || !strings.Contains(body, "xfp=https") {
		t.Fatalf("curl: %s %q", version, body)
	}
	s.stop()

	s = startServe(t, testservers.FreeAddr(t), []string{"AUTO_SSL=1"}, "--state-dir", state, upstream, "2")
	again, err := handshake(s.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("after a restart: a new self-signed certificate, want the one kept in the state directory")
	}
	s.stop()

	s = startServe(t, testservers.FreeAddr(t), nil, "--auto-tls", "--tls-hosts", "app.test", "--state-dir", state, upstream, "2")
	other, err := handshake(s.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if other.SerialNumber.Cmp(first.SerialNumber) == 0 || len(other.DNSNames) != 1 || other.DNSNames[0] != "app.test" {
		t.Fatalf("other hosts: names %v, same serial %v", other.DNSNames, other.SerialNumber.Cmp(first.SerialNumber) == 0)
	}
}
