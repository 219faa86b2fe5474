package main

import (
	"context"
	"fmt"
	"net"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/logsink"
	"github.com/switchyard/switchyard/internal/proxy"
)

// serve runs what c describes until ctx ends or one part fails: the proxy's
// listener; the plain-HTTP listeners and the certificate reload TLS may
// bring (serve_tls.go); in managed mode the deploy manager and its API
// (serve_managed.go). Each runs in one goroutine of one errgroup, its only
// owner: the first to fail ends ctx for all, and serve returns its error
// once every one has stopped. Each server is served by proxy.ServeUntil,
// which returns only when its graceful shutdown is over, so what its
// handlers use is closed after it (the proxy, the access log, the manager).
func serve(ctx context.Context, c *serveConfig, log zerolog.Logger, connect func(context.Context) (dockerClient, error)) error {
	access, closeLog, err := openAccessLog(c)
	if err != nil {
		return err
	}
	defer closeLog()
	p, err := c.newProxy(access, &log)
	if err != nil {
		return err
	}
	defer p.Close()
	if c.upstream != "" {
		if _, _, err := p.SetTarget("static", c.upstream, c.workers); err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
	}
	ln, apiLn, err := c.openListeners()
	if err != nil {
		return err
	}
	closeListeners := func() {
		ln.Close()
		if apiLn != nil {
			apiLn.Close()
		}
	}
	handler, err := c.edge.wrap(p, log)
	if err != nil {
		closeListeners()
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	c.tls.listenTCP = c.upgrade.listenTCP
	tlsConf, err := c.tls.start(ctx, g, c.stateDir, log)
	if err != nil {
		closeListeners()
		return err
	}
	log.Info().Str("listen", ln.Addr().String()).Str("upstream", c.upstream).Int("workers", c.workers).
		Dur("queue_timeout", c.queueTimeout).Int("max_connections", c.maxConns).Msg("proxy listening")
	// In managed mode the proxy accepts only once the start-up adopted the
	// running app: connections wait in the listen queue meanwhile, rather
	// than getting "503 no app is running yet" from an app that runs.
	adopted := make(chan struct{})
	g.Go(func() error {
		select {
		case <-adopted:
			// Every listener is open: an upgrade's predecessor may stop.
			c.upgrade.ready(log)
		case <-ctx.Done():
		}
		return p.Serve(ctx, ln, proxy.ServerConfig{Handler: handler, TLS: tlsConf, ReadHeaderTimeout: c.readHeader,
			IdleTimeout: c.idleTimeout, ShutdownTimeout: c.shutdownTimeout, StdHTTP1: c.stdHTTP1})
	})
	if c.upstream != "" {
		close(adopted)
	}
	c.startAPI(ctx, g, p, log, connect, adopted, apiLn)
	return g.Wait()
}

// startAPI runs, in g, the deploy manager and its API, or a static
// upstream's read-only API on apiLn, or nothing (said why).
func (c *serveConfig) startAPI(ctx context.Context, g *errgroup.Group, p *proxy.Proxy, log zerolog.Logger,
	connect func(context.Context) (dockerClient, error), adopted chan<- struct{}, apiLn net.Listener) {
	switch {
	case c.upstream == "":
		g.Go(func() error { return runManaged(ctx, c, p, log, connect, adopted) })
	case c.apiGiven:
		g.Go(func() error { return runDropInAPI(ctx, c, p, log, apiLn) })
	case c.apiSkipped != "":
		log.Warn().Str("reason", c.apiSkipped).Msg("no read-only API for this upstream: SWITCHYARD_API needs SWITCHYARD_API_TOKEN")
	default:
		log.Info().Msg("no API: set --api to serve /status, /metrics and the status page for this upstream")
	}
}

// openListeners opens the proxy's listener and a static upstream's API
// listener (nil without one), inherited from an upgrade's predecessor when
// there is one.
func (c *serveConfig) openListeners() (ln, apiLn net.Listener, err error) {
	tcp, err := c.upgrade.listenTCP(c.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	raw := proxy.LimitListener(tcp, c.maxConns)
	if ln, err = c.http.wrapListener(raw); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("proxy-protocol: %w", err)
	}
	if c.upstream != "" && c.apiGiven {
		if apiLn, err = c.upgrade.listenTCP(c.apiAddr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("API listen on %s: %w", c.apiAddr, err)
		}
	}
	return ln, apiLn, nil
}

// openAccessLog opens the access log's destination (nil: --log-address
// off); closeLog flushes and closes it.
func openAccessLog(c *serveConfig) (access *proxy.AccessLog, closeLog func(), err error) {
	if c.logAddress == "off" {
		return nil, func() {}, nil
	}
	sink, err := logsink.Open(c.logAddress, "switchyard")
	if err != nil {
		return nil, nil, fmt.Errorf("log-address: %w", err)
	}
	if access, err = proxy.NewAccessLog(sink, c.logFormat); err != nil {
		sink.Close()
		return nil, nil, fmt.Errorf("log-format: %w", err)
	}
	return access, func() { sink.Close() }, nil
}
