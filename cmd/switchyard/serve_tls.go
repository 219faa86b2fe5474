package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/certs"
	"github.com/switchyard/switchyard/internal/proxy"
)

// tlsSettings are the TLS settings of serve: one certificate source (a PEM
// file, a certificate and key pair, a self-signed certificate, or ACME), and
// the plain-HTTP listeners beside the TLS one (HTTPS redirect, HTTP-01).
type tlsSettings struct {
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

// start returns the proxy listener's TLS config (nil: plain HTTP) and runs
// in g, until ctx ends, what TLS needs beside it: the plain-HTTP listeners
// for the HTTPS redirect and ACME's HTTP-01 challenges, the SIGHUP watcher
// that reloads the certificate, and ACME's first certificates.
func (t *tlsSettings) start(ctx context.Context, g *errgroup.Group, stateDir string, logger zerolog.Logger) (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	log := logger.With().Str("part", "tls").Logger()
	conf, reload, acme, err := t.certificates(stateDir, log)
	if err != nil {
		return nil, err
	}
	lns, handler, err := t.listenPlain(acme)
	if err != nil {
		return nil, err
	}
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: proxy.DefaultReadHeaderTimeout,
			IdleTimeout:       proxy.DefaultIdleTimeout,
			MaxHeaderBytes:    64 << 10,
		}
		log.Info().Str("listen", ln.Addr().String()).Msg("plain HTTP listening: HTTPS redirect and ACME challenges")
		g.Go(func() error { return proxy.ServeUntil(ctx, srv, ln, plainShutdownTimeout) })
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // from here SIGHUP no longer stops the process
	g.Go(func() error { watchSIGHUP(ctx, hup, reload, log); return nil })
	if acme != nil {
		g.Go(func() error { obtainACME(ctx, acme, log); return nil })
	}
	return conf, nil
}

// obtainACME obtains the certificates now rather than in a first client's
// handshake (the challenge listeners are up). autocert takes no context and
// bounds its work to 5 minutes itself: when ctx ends first, obtainACME
// returns without waiting for the CA, whose answer lands in the cache
// directory (written atomically) for the next start.
func obtainACME(ctx context.Context, acme *certs.ACME, log zerolog.Logger) {
	done := make(chan struct{}, len(acme.Domains()))
	for _, d := range acme.Domains() {
		go func() {
			defer func() { done <- struct{}{} }()
			start := time.Now()
			cert, err := acme.Obtain(d)
			if err != nil {
				log.Error().Err(err).Str("domain", d).Msg("ACME: no certificate yet; retried on the next handshake for it")
				return
			}
			logCertificate(log.Info(), cert).Str("domain", d).Dur("took", time.Since(start)).Msg("ACME certificate ready")
		}()
	}
	for range acme.Domains() {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// certificates sets up the certificate source: the TLS config, what SIGHUP
// does (nil for ACME, which renews by itself), and the ACME source if it is
// the one.
func (t *tlsSettings) certificates(stateDir string, log zerolog.Logger) (*tls.Config, func() (*tls.Certificate, error), *certs.ACME, error) {
	switch {
	case t.pem != "" || t.cert != "":
		certPath, keyPath, what := t.pem, "", "tls-pem"
		if t.cert != "" {
			certPath, keyPath, what = t.cert, t.key, "tls-cert/tls-key"
		}
		r, err := certs.NewReloader(certPath, keyPath)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		logCertificate(log.Info(), r.Certificate()).Str("file", certPath).Msg("TLS certificate loaded")
		reload := func() (*tls.Certificate, error) { err := r.Reload(); return r.Certificate(), err }
		return certs.TLSConfig(r.GetCertificate), reload, nil, nil
	case t.auto:
		hosts := t.hosts
		if len(hosts) == 0 {
			hosts = defaultTLSHosts()
		}
		path := filepath.Join(stateDir, "tls", "selfsigned.pem")
		if _, err := certs.SelfSigned(hosts, path); err != nil {
			return nil, nil, nil, fmt.Errorf("auto-tls: %w", err)
		}
		r, err := certs.NewReloader(path, "")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("auto-tls: %w", err)
		}
		logCertificate(log.Info(), r.Certificate()).Str("file", path).Msg("TLS self-signed certificate ready")
		reload := func() (*tls.Certificate, error) {
			// Made anew if it is about to expire.
			if _, err := certs.SelfSigned(hosts, path); err != nil {
				return r.Certificate(), err
			}
			err := r.Reload()
			return r.Certificate(), err
		}
		return certs.TLSConfig(r.GetCertificate), reload, nil, nil
	default:
		acme, err := t.newACME(stateDir)
		if err != nil {
			return nil, nil, nil, err
		}
		return acme.TLSConfig(), nil, acme, nil
	}
}

// listenPlain opens the plain-HTTP listeners: the HTTPS redirect and, with
// ACME, the HTTP-01 challenges (one listener when both have one address).
// All are opened before any serves, so that a bad address fails the start
// with nothing left running.
func (t *tlsSettings) listenPlain(acme *certs.ACME) ([]net.Listener, http.Handler, error) {
	type listen struct{ addr, setting string }
	var want []listen
	if acme != nil && t.acmeHTTP != acmeHTTPOff {
		want = append(want, listen{t.acmeHTTP, "acme-http-listen"})
	}
	if t.redirectListen != "" && (len(want) == 0 || want[0].addr != t.redirectListen) {
		want = append(want, listen{t.redirectListen, "https-redirect-listen"})
	}
	handler := certs.RedirectHandler(t.redirectPort())
	if acme != nil && len(want) > 0 {
		// HTTP-01 is tried (after TLS-ALPN-01) only with a listener for it.
		handler = acme.HTTPHandler(handler)
	}
	var lns []net.Listener
	for _, l := range want {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, nil, fmt.Errorf("%s: %w", l.setting, err)
		}
		lns = append(lns, ln)
	}
	return lns, handler, nil
}

func (t *tlsSettings) newACME(stateDir string) (*certs.ACME, error) {
	c := certs.ACMEConfig{
		Domains:      t.acmeDomains,
		DirectoryURL: t.acmeDirectory,
		Email:        t.acmeEmail,
		CacheDir:     filepath.Join(stateDir, "acme"),
	}
	if t.acmeCACert != "" {
		b, err := os.ReadFile(t.acmeCACert)
		if err != nil {
			return nil, fmt.Errorf("acme-ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("acme-ca-cert %s: no PEM certificate in it", t.acmeCACert)
		}
		c.RootCAs = pool
	}
	a, err := certs.NewACME(c)
	if err != nil {
		return nil, fmt.Errorf("acme-domain: %w", err)
	}
	return a, nil
}

// defaultTLSHosts are the self-signed certificate's names by default.
func defaultTLSHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// watchSIGHUP reloads the certificate on each SIGHUP on hup until ctx
// ends (nil reload: only logs). A reload that fails leaves the served
// certificate as it was.
func watchSIGHUP(ctx context.Context, hup chan os.Signal, reload func() (*tls.Certificate, error), log zerolog.Logger) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if reload == nil {
			log.Info().Msg("SIGHUP: ACME certificates renew by themselves; nothing to reload")
			continue
		}
		cert, err := reload()
		if err != nil {
			logCertificate(log.Error().Err(err), cert).Msg("SIGHUP: TLS certificate reload failed; still serving the previous one")
			continue
		}
		logCertificate(log.Info(), cert).Msg("SIGHUP: TLS certificate reloaded")
	}
}

func logCertificate(e *zerolog.Event, c *tls.Certificate) *zerolog.Event {
	if c == nil || c.Leaf == nil {
		return e
	}
	names := c.Leaf.DNSNames
	for _, ip := range c.Leaf.IPAddresses {
		names = append(names[:len(names):len(names)], ip.String())
	}
	return e.Strs("names", names).Str("serial", c.Leaf.SerialNumber.Text(16)).
		Time("not_after", c.Leaf.NotAfter).Str("issuer", c.Leaf.Issuer.CommonName)
}
