package main

// What TLS runs beside the proxy's listener: the certificate source, the
// plain-HTTP listeners (HTTPS redirect, ACME HTTP-01), the SIGHUP reload
// and ACME's first certificates. The settings are in serve_tls.go.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/certs"
	"github.com/switchyard/switchyard/internal/proxy"
)

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
		listen := t.listenTCP
		if listen == nil {
			listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
		}
		ln, err := listen(l.addr)
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
		pool, err := certs.LoadRootCAs(t.acmeCACert)
		if err != nil {
			return nil, fmt.Errorf("acme-ca-cert: %w", err)
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
