package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// Self-signed certificates (AUTO_SSL) are valid this long and made anew
// when less than selfSignedRenewBefore of it is left.
const (
	selfSignedValidity    = 365 * 24 * time.Hour
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// SelfSigned returns a self-signed certificate (ECDSA P-256) for hosts,
// DNS names or IP addresses. It is kept at path (PEM, certificate then key,
// mode 0600) so that clients that pinned it still trust it after a restart:
// the file is reused while it names exactly hosts and is not about to
// expire, and is otherwise replaced atomically.
func SelfSigned(hosts []string, path string) (tls.Certificate, error) {
	cn := commonName(hosts)
	hosts = normalizeCertHosts(hosts)
	if len(hosts) == 0 {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: no host names")
	}
	if cert, err := loadCertificate(path, ""); err == nil &&
		time.Now().Add(selfSignedRenewBefore).Before(cert.Leaf.NotAfter) &&
		slices.Equal(certHosts(cert.Leaf), hosts) {
		return cert, nil
	}
	certPEM, keyPEM, err := newSelfSigned(cn, hosts, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := atomicfile.Write(path, append(certPEM, keyPEM...), 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	return loadCertificate(path, "")
}

// commonName is the first DNS name of hosts, else the first address.
func commonName(hosts []string) string {
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" && net.ParseIP(strings.Trim(h, "[]")) == nil {
			return strings.ToLower(h)
		}
	}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" {
			return h
		}
	}
	return ""
}

func newSelfSigned(cn string, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"switchyard self-signed"}},
		NotBefore:             now.Add(-time.Hour), // clock skew
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// normalizeCertHosts lowercases, drops empty entries and duplicates, and sorts,
// so that two lists naming the same hosts compare equal.
func normalizeCertHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			h = ip.String()
		}
		if h != "" {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func certHosts(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return normalizeCertHosts(names)
}
