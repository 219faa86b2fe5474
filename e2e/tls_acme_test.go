package e2e

// ACME end to end: switchyard obtains its certificate from pebble, Let's
// Encrypt's test CA, run on 127.0.0.1 with a DNS answer of our own.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// ACME against pebble: once through TLS-ALPN-01 on the proxy's own TLS
// listener (no plain-HTTP listener at all), once through HTTP-01 on
// --acme-http-listen (pebble's TLS-ALPN-01 port pointed at nothing, so
// autocert falls back to HTTP-01).
func TestTLSACMEPebble(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) { testACME(t, challenge) })
	}
}

const acmeDomain = "test.example"

func testACME(t *testing.T, challenge string) {
	pebbleBin, err := testservers.FindBinary("pebble")
	if err != nil {
		testservers.Missing(t, "pebble (go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1)", err)
	}
	upstream := echoUpstream(t)
	dir, state := t.TempDir(), t.TempDir()

	// Pebble's own HTTPS: a certificate for 127.0.0.1 from a CA that
	// switchyard is told to trust with --acme-ca-cert.
	ca := newTestCA(t)
	_, chain, key := ca.issue(t, "127.0.0.1", "localhost")
	caFile := filepath.Join(dir, "acme-ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	os.WriteFile(filepath.Join(dir, "pebble-cert.pem"), chain, 0o644)
	os.WriteFile(filepath.Join(dir, "pebble-key.pem"), key, 0o600)

	listen, httpListen, nobody := testservers.FreeAddr(t), testservers.FreeAddr(t), testservers.FreeAddr(t)
	tlsPort, httpPort, acmeHTTP := portOf(listen), portOf(nobody), "off"
	if challenge == "http-01" {
		tlsPort, httpPort, acmeHTTP = portOf(nobody), portOf(httpListen), httpListen
	}
	acmeAddr, mgmtAddr := testservers.FreeAddr(t), testservers.FreeAddr(t)
	config := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q, "httpPort": %s, "tlsPort": %s, "ocspResponderURL": "",
		"externalAccountBindingRequired": false, "retryAfter": {"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": {"default": {"description": "e2e", "validityPeriod": 7776000}}}}`,
		acmeAddr, mgmtAddr, filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem"), httpPort, tlsPort)
	configFile := filepath.Join(dir, "pebble.json")
	os.WriteFile(configFile, []byte(config), 0o644)
	pebble := testservers.StartProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0"},
		pebbleBin, "-config", configFile, "-dnsserver", dnsServer(t, acmeDomain))
	pebbleClient := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	eventually(t, "pebble's directory", 20*time.Second, func() error {
		r, err := fetch(pebbleClient, "https://"+acmeAddr+"/dir")
		if err == nil && r.resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", r.resp.StatusCode)
		}
		return err
	})
	r, err := fetch(pebbleClient, "https://"+mgmtAddr+"/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(r.body)) {
		t.Fatalf("pebble's root: %q", r.body)
	}

	s := startServe(t, listen, nil, "--state-dir", state, "--acme-domain", acmeDomain,
		"--acme-directory", "https://"+acmeAddr+"/dir", "--acme-ca-cert", caFile, "--acme-email", "ops@"+acmeDomain,
		"--acme-http-listen", acmeHTTP, upstream, "2")
	client := &tls.Config{RootCAs: roots, ServerName: acmeDomain}
	var leaf *x509.Certificate
	eventually(t, "a certificate for "+acmeDomain+" issued by pebble", 90*time.Second, func() error {
		leaf, err = handshake(s.addr, client)
		return err
	})
	eventually(t, "\"ACME certificate ready\" in the log", 10*time.Second, func() error {
		if !strings.Contains(s.logs.String(), "ACME certificate ready") {
			return errors.New("not yet")
		}
		return nil
	})
	tr := &http.Transport{TLSClientConfig: client, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	r, err = fetch(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+s.addr+"/acme")
	if err != nil || r.resp.ProtoMajor != 2 || !strings.Contains(r.body, "xfp=https uri=/acme") {
		t.Fatalf("through the ACME certificate: %v %+v", err, r)
	}
	if _, err := os.Stat(filepath.Join(state, "acme", acmeDomain)); err != nil {
		t.Errorf("certificate cache: %v", err)
	}

	if challenge == "http-01" {
		// The challenge listener redirects everything else to HTTPS.
		req, _ := http.NewRequest("GET", "http://"+httpListen+"/x?y=1", nil)
		req.Host = acmeDomain
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://" + acmeDomain + ":" + s.port() + "/x?y=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Fatalf("redirect: %d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		return
	}
	// A restart with the CA gone serves the certificate from the cache.
	s.stop()
	pebble.Process.Kill()
	s = startServe(t, testservers.FreeAddr(t), nil, "--state-dir", state, "--acme-domain", acmeDomain,
		"--acme-directory", "https://"+acmeAddr+"/dir", "--acme-ca-cert", caFile, "--acme-http-listen", "off", upstream, "2")
	again, err := handshake(s.addr, client)
	if err != nil || again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("after a restart without the CA: %v (same certificate: %v)", err, again != nil && again.SerialNumber.Cmp(leaf.SerialNumber) == 0)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// dnsServer answers A queries for name with 127.0.0.1, over UDP and TCP
// (pebble's validation authority asks over TCP) on one 127.0.0.1 port,
// until the test ends: other names get NXDOMAIN, other types for name an
// empty answer. That is all the DNS pebble needs to find switchyard.
func dnsServer(t *testing.T, name string) string {
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatalf("DNS server: no port free for both UDP and TCP: %v", err)
			}
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], name); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for { // messages with a 2-byte length before each (RFC 1035, 4.2.2)
					var size [2]byte
					if _, err := io.ReadFull(c, size[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(size[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					resp := dnsAnswer(q, name)
					if resp == nil {
						return
					}
					if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return pc.LocalAddr().String()
}

// dnsAnswer is the response to query q (RFC 1035, section 4), or nil.
func dnsAnswer(q []byte, name string) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil // not a query with one question
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	resp := make([]byte, 12, 64)
	copy(resp, q[:2])                 // ID
	resp[2] = 0x80 | 0x04 | q[2]&0x79 // response, authoritative, the query's opcode and RD
	binary.BigEndian.PutUint16(resp[4:], 1)
	resp = append(resp, q[12:i+4]...) // the question
	switch {
	case !strings.EqualFold(strings.Join(labels, "."), name):
		resp[3] = 3 // NXDOMAIN
	case qtype == 1: // A
		binary.BigEndian.PutUint16(resp[6:], 1)
		resp = append(resp, 0xc0, 12, // the name: a pointer to the question's
			0, 1, 0, 1, // type A, class IN
			0, 0, 0, 60, // TTL
			0, 4, 127, 0, 0, 1)
	}
	return resp
}
