package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/certs"
)

// tlsSettings are the TLS settings of serve: one certificate source (a PEM
// file, a certificate and key pair, a self-signed certificate, or ACME), and
// the plain-HTTP listeners beside the TLS one (HTTPS redirect, HTTP-01).
type tlsSettings struct {
	// listenTCP opens the plain-HTTP listeners (an upgrade passes them on).
	listenTCP      func(addr string) (net.Listener, error)
	pem, cert, key string
	auto           bool
	hosts          []string
	acmeDomains    []string
	acmeDirectory  string
	acmeEmail      string
	acmeCACert     string
	acmeHTTP       string
	redirectListen string
	httpsPort      string

	listen string // serve's --listen, for the redirect's default port
}

const (
	// defaultACMEHTTPListen is where HTTP-01 challenges arrive: port 80.
	defaultACMEHTTPListen = ":80"
	// acmeHTTPOff turns the HTTP-01 challenge listener off.
	acmeHTTPOff = "off"
	// plainShutdownTimeout is how long the plain-HTTP listeners' requests
	// (redirects, challenges: all short) may finish at shutdown.
	plainShutdownTimeout = 5 * time.Second
)

// addTLSSettings declares the TLS flags and environment variables.
func addTLSSettings(s *settings, t *tlsSettings) {
	s.str(&t.pem, "tls-pem", []string{"SWITCHYARD_TLS_PEM", "SSL"}, "", "PEM file with the certificate chain and its private key (as HAProxy's crt); re-read on SIGHUP")
	s.str(&t.cert, "tls-cert", []string{"SWITCHYARD_TLS_CERT"}, "", "PEM certificate chain file (with --tls-key); re-read on SIGHUP")
	s.str(&t.key, "tls-key", []string{"SWITCHYARD_TLS_KEY"}, "", "PEM private key file of --tls-cert")
	s.boolean(&t.auto, "auto-tls", []string{"SWITCHYARD_AUTO_TLS", "AUTO_SSL"}, "false", "serve TLS with a self-signed ECDSA certificate kept in <state-dir>/tls/selfsigned.pem (made anew when expiring or when --tls-hosts change)")
	s.add("tls-hosts", []string{"SWITCHYARD_TLS_HOSTS"}, "", "names and IPs of the --auto-tls certificate, comma-separated (default: localhost, the hostname, 127.0.0.1, ::1)", func(v string) error {
		t.hosts = append(t.hosts, splitList(v)...)
		return nil
	})
	s.add("acme-domain", []string{"SWITCHYARD_ACME_DOMAIN"}, "", "domain to obtain a certificate for from an ACME CA such as Let's Encrypt (repeatable or comma-separated)", func(v string) error {
		t.acmeDomains = append(t.acmeDomains, splitList(v)...)
		return nil
	})
	s.str(&t.acmeDirectory, "acme-directory", []string{"SWITCHYARD_ACME_DIRECTORY"}, certs.DefaultACMEDirectory, "ACME directory URL (default: Let's Encrypt production)")
	s.str(&t.acmeEmail, "acme-email", []string{"SWITCHYARD_ACME_EMAIL"}, "", "contact email of the ACME account, for the CA's expiry notices")
	s.str(&t.acmeCACert, "acme-ca-cert", []string{"SWITCHYARD_ACME_CA_CERT"}, "", "PEM file of an extra root CA to trust for the ACME directory (a private or test CA)")
	s.str(&t.acmeHTTP, "acme-http-listen", []string{"SWITCHYARD_ACME_HTTP_LISTEN"}, defaultACMEHTTPListen, "with ACME, plain-HTTP address for HTTP-01 challenges and the HTTPS redirect (off: TLS-ALPN-01 only)")
	s.str(&t.redirectListen, "https-redirect-listen", []string{"SWITCHYARD_HTTPS_REDIRECT_LISTEN"}, "", "plain-HTTP address whose requests get a 308 to the same URL over HTTPS (empty: none)")
	s.str(&t.httpsPort, "https-port", []string{"SWITCHYARD_HTTPS_PORT"}, "", "port the HTTPS redirect points to (default: the port of --listen; 443 is left out of the URL)")
	// The redirect's default port is the TLS listener's: remember --listen
	// as it is parsed.
	listen := s.lookup("listen")
	set := listen.set
	listen.set = func(v string) error { t.listen = v; return set(v) }
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// sources names the certificate sources that are set.
func (t *tlsSettings) sources() []string {
	var s []string
	if t.pem != "" {
		s = append(s, "--tls-pem (SSL)")
	}
	if t.cert != "" || t.key != "" {
		s = append(s, "--tls-cert/--tls-key")
	}
	if t.auto {
		s = append(s, "--auto-tls (AUTO_SSL)")
	}
	if len(t.acmeDomains) > 0 {
		s = append(s, "--acme-domain")
	}
	return s
}

func (t *tlsSettings) on() bool { return len(t.sources()) > 0 }

// validate checks the TLS settings after parsing.
func (t *tlsSettings) validate() error {
	if src := t.sources(); len(src) > 1 {
		return fmt.Errorf("TLS: %s are all set: choose one certificate source", strings.Join(src, " and "))
	}
	if (t.cert == "") != (t.key == "") {
		return errors.New("tls-cert and tls-key go together (or put both in one file with --tls-pem)")
	}
	if len(t.hosts) > 0 && !t.auto {
		return errors.New("tls-hosts names the --auto-tls certificate's hosts: set --auto-tls (AUTO_SSL) too")
	}
	if err := t.validateACME(); err != nil {
		return err
	}
	return t.validatePlain()
}

// validateACME checks the ACME settings: they need a domain, the directory
// a URL, the HTTP-01 listener an address.
func (t *tlsSettings) validateACME() error {
	if len(t.acmeDomains) == 0 {
		if t.acmeEmail != "" || t.acmeCACert != "" || t.acmeDirectory != certs.DefaultACMEDirectory {
			return errors.New("acme-email, acme-ca-cert and acme-directory need --acme-domain")
		}
		return nil
	}
	u, err := url.Parse(t.acmeDirectory)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("acme-directory %q: want an https:// URL", t.acmeDirectory)
	}
	if t.acmeHTTP != acmeHTTPOff {
		if _, _, err := net.SplitHostPort(t.acmeHTTP); err != nil {
			return fmt.Errorf("acme-http-listen %q: want host:port, :port or off", t.acmeHTTP)
		}
	}
	return nil
}

// validatePlain checks the HTTPS redirect's settings.
func (t *tlsSettings) validatePlain() error {
	if t.redirectListen != "" {
		if !t.on() {
			return errors.New("https-redirect-listen needs a certificate: --tls-pem, --tls-cert/--tls-key, --auto-tls or --acme-domain")
		}
		if _, _, err := net.SplitHostPort(t.redirectListen); err != nil {
			return fmt.Errorf("https-redirect-listen %q: want host:port or :port", t.redirectListen)
		}
	}
	if t.httpsPort != "" {
		if n, err := strconv.Atoi(t.httpsPort); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("https-port %q: want a port number", t.httpsPort)
		}
	}
	return nil
}

// redirectPort is the port in the HTTPS redirect's Location.
func (t *tlsSettings) redirectPort() string {
	if t.httpsPort != "" {
		return t.httpsPort
	}
	if _, port, err := net.SplitHostPort(t.listen); err == nil {
		return port
	}
	return "443"
}
