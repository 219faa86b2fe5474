package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// intermediateCipherSuites are the TLS 1.2 cipher suites of Mozilla's
// "intermediate" profile that Go implements (its DHE suites are not), in
// Mozilla's order: ECDHE key exchange and AEAD ciphers only. TLS 1.3 suites
// are not configurable in Go and are all of them fine.
var intermediateCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// intermediateCurves are the key exchange groups: Mozilla intermediate's
// X25519, P-256 and P-384, after Go's default hybrid post-quantum group
// (TLS 1.3 only; clients that lack it fall back to X25519).
var intermediateCurves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}

// TLSConfig returns a server TLS config with Mozilla's "intermediate"
// profile (TLS 1.2 and 1.3, intermediateCipherSuites, intermediateCurves)
// that takes its certificate from get on every handshake, so that a
// reloaded certificate is served to new connections at once. Its NextProtos
// offer HTTP/2 then HTTP/1.1: given as ServerConfig.TLS it makes Serve speak
// both (net/http configures HTTP/2 when the TLSConfig names "h2").
func TLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     slices.Clone(intermediateCipherSuites),
		CurvePreferences: slices.Clone(intermediateCurves),
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate:   get,
	}
}

// loadCertificate reads a certificate chain and its private key in PEM.
// With keyPath empty (or equal to certPath) both are in certPath, as
// HAProxy's `crt` takes them; other PEM blocks in the file (DH parameters)
// are ignored. The leaf is parsed into the result's Leaf.
func loadCertificate(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := certPEM
	if keyPath != "" && keyPath != certPath {
		if keyPEM, err = os.ReadFile(keyPath); err != nil {
			return tls.Certificate{}, err
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if keyPath == "" || keyPath == certPath {
			return tls.Certificate{}, fmt.Errorf("%s: %w (want the certificate chain and its private key, PEM)", certPath, err)
		}
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	if cert.Leaf == nil { // GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%s: %w", certPath, err)
		}
	}
	return cert, nil
}

// Reloader serves a certificate from files and re-reads them on
// Reload, for a certificate renewed on disk (certbot, a secret mount):
// connections already open keep theirs, new handshakes get the new one.
type Reloader struct {
	certPath, keyPath string
	cert              atomic.Pointer[tls.Certificate]
}

// NewReloader loads the certificate as loadCertificate does (keyPath
// empty: one PEM file with both) and fails if it cannot.
func NewReloader(certPath, keyPath string) (*Reloader, error) {
	r := &Reloader{certPath: certPath, keyPath: keyPath}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the files. On an error the certificate served so far stays.
func (r *Reloader) Reload() error {
	cert, err := loadCertificate(r.certPath, r.keyPath)
	if err != nil {
		return err
	}
	r.cert.Store(&cert)
	return nil
}

// Certificate is the certificate being served.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate is the tls.Config hook.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// acmeChallengePath is where ACME's HTTP-01 challenges are fetched.
const acmeChallengePath = "/.well-known/acme-challenge/"

// RedirectHandler answers plain-HTTP requests with a 308 to the same host,
// path and query over HTTPS on httpsPort (left out of the URL when it is
// "443" or empty). 308, unlike 301, keeps the method and body of a POST.
// ACME challenge paths get a 404 instead: a CA must not be sent elsewhere
// (put the ACME handler in front to answer them).
func RedirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, acmeChallengePath) {
			http.NotFound(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // "[::1]" without a port
		}
		if host == "" {
			http.Error(w, "400 a Host header is needed to redirect to HTTPS", http.StatusBadRequest)
			return
		}
		if httpsPort != "" && httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		uri := r.URL.EscapedPath()
		if uri == "" || uri[0] != '/' {
			uri = "/" + uri
		}
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			uri += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", "https://"+host+uri)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusPermanentRedirect)
		if r.Method != http.MethodHead {
			fmt.Fprintln(w, "308 use HTTPS")
		}
	})
}
