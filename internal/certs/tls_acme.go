package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = autocert.DefaultACMEDirectory

// ACMEConfig sets up NewACME.
type ACMEConfig struct {
	// Domains are the names to obtain certificates for. Handshakes for
	// other names are refused, so that nobody can make us ask the CA for
	// arbitrary names (and exhaust its rate limits). Required.
	Domains []string
	// DirectoryURL is the CA's ACME directory. Default DefaultACMEDirectory.
	DirectoryURL string
	// Email is the account's contact for the CA's notices. Optional.
	Email string
	// CacheDir keeps the account key and the certificates across restarts
	// (autocert.DirCache). Empty: memory only, a new certificate per start,
	// which a public CA's rate limits soon refuse.
	CacheDir string
	// RootCAs verify the directory's HTTPS. Default: the system's roots.
	RootCAs *x509.CertPool
}

// ACME obtains and renews certificates from an ACME CA (Let's Encrypt) with
// golang.org/x/crypto/acme/autocert. It answers TLS-ALPN-01 challenges
// through TLSConfig and HTTP-01 challenges through HTTPHandler.
type ACME struct {
	m       *autocert.Manager
	domains []string
}

// NewACME checks c and returns the ACME certificate source.
func NewACME(c ACMEConfig) (*ACME, error) {
	if len(c.Domains) == 0 {
		return nil, errors.New("ACME: no domain")
	}
	a := &ACME{}
	allowed := map[string]bool{}
	for _, d := range c.Domains {
		name, err := idna.Lookup.ToASCII(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if err != nil || !strings.Contains(name, ".") || net.ParseIP(name) != nil {
			return nil, fmt.Errorf("ACME: domain %q: want a DNS name such as www.example.com", d)
		}
		if !allowed[name] {
			allowed[name] = true
			a.domains = append(a.domains, name)
		}
	}
	dir := c.DirectoryURL
	if dir == "" {
		dir = DefaultACMEDirectory
	}
	client := &acme.Client{DirectoryURL: dir, UserAgent: "switchyard"}
	if c.RootCAs != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr}
	}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: hostPolicy(allowed),
		Client:     client,
		Email:      c.Email,
	}
	if c.CacheDir != "" {
		a.m.Cache = autocert.DirCache(c.CacheDir)
	}
	return a, nil
}

// hostPolicy admits the configured names. Unlike autocert.HostWhitelist it
// drops a port: the HTTP-01 handler checks the Host header, which carries
// one when the challenge listener is not on port 80.
func hostPolicy(allowed map[string]bool) autocert.HostPolicy {
	return func(_ context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if !allowed[host] {
			return fmt.Errorf("acme: host %q is not one of the ACME domains", host)
		}
		return nil
	}
}

// Domains are the configured names, normalized.
func (a *ACME) Domains() []string { return a.domains }

// GetCertificate is the tls.Config hook. A handshake without SNI (a
// client dialing the IP address) gets the first domain's certificate.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = a.domains[0]
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// TLSConfig is TLSConfig(a.GetCertificate) that also offers the
// "acme-tls/1" protocol of TLS-ALPN-01 challenges.
func (a *ACME) TLSConfig() *tls.Config {
	c := TLSConfig(a.GetCertificate)
	c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	return c
}

// HTTPHandler answers HTTP-01 challenges and passes every other request to
// fallback (e.g. RedirectHandler). Calling it enables HTTP-01, tried after
// TLS-ALPN-01.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	return a.m.HTTPHandler(fallback)
}

// Obtain returns the certificate for domain from the cache, or obtains it
// from the CA now (autocert bounds that to 5 minutes). Calling it at start
// spares the first client a handshake that waits for the CA.
func (a *ACME) Obtain(domain string) (*tls.Certificate, error) {
	return a.m.GetCertificate(&tls.ClientHelloInfo{
		ServerName:   domain,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, // an ECDSA certificate
	})
}

// LoadRootCAs is the system's root CAs plus the PEM certificates in file:
// a private or test CA to trust for an ACME directory.
func LoadRootCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}
