package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/h1"
)

// ServerConfig sets the client-facing side of Serve.
type ServerConfig struct {
	// Handler serves the requests. Default: the Proxy itself; callers put
	// handlers in front of it (static files, compression) here.
	Handler http.Handler
	// TLS, when set, terminates TLS on the listener; with "h2" in its
	// NextProtos, HTTP/2 is served too.
	TLS *tls.Config
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	// Default DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// ShutdownTimeout is how long a graceful stop waits for in-flight
	// requests. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// StdHTTP1 serves plain HTTP/1 with net/http's server instead of the
	// proxy's own (h1): the same behaviour at a higher CPU cost per
	// request; for comparison, or should h1 misbehave.
	StdHTTP1 bool
}

// Serve serves the proxy on ln until ctx ends, then stops accepting and
// waits for in-flight requests up to the shutdown timeout. It returns nil
// after a clean stop.
//
// Plain HTTP/1 is served by the proxy's own server (package h1), unless
// sc.StdHTTP1; TLS, and HTTP/2 over it, by net/http's.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, sc ServerConfig) error {
	sc = sc.withDefaults(p)
	var stopping atomic.Int64 // when the graceful stop began (unix ns)
	onShutdown := func() {
		stopping.Store(time.Now().UnixNano())
		p.log.Info().Str("addr", ln.Addr().String()).Dur("timeout", sc.ShutdownTimeout).
			Msg("proxy stopping: finishing in-flight requests")
	}
	var err error
	if sc.TLS == nil && !sc.StdHTTP1 {
		err = p.serveH1(ctx, ln, sc, onShutdown)
	} else {
		err = p.serveStd(ctx, ln, sc, onShutdown)
	}
	if err == nil && stopping.Load() != 0 {
		// The WebSockets too get the rest of the shutdown timeout.
		wctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, stopping.Load()).Add(sc.ShutdownTimeout))
		if n := p.targets.awaitUpgrades(wctx); n > 0 {
			p.log.Warn().Int("websockets", n).Msg("proxy stopping: shutdown timeout passed; closed the WebSockets still open")
		}
		cancel()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The graceful stop ran out of time and the client connections are
		// closed: give up on the requests still waiting for the app too.
		p.targets.abort()
	}
	return err
}

// serveH1 serves plain HTTP/1 with package h1.
func (p *Proxy) serveH1(ctx context.Context, ln net.Listener, sc ServerConfig, onShutdown func()) error {
	srv := &h1.Server{
		Handler:           sc.Handler,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          p.errLog,
	}
	if !p.cfg.DisableStats {
		srv.ConnState = p.connState // for Connections
	}
	srv.RegisterOnShutdown(onShutdown)
	var fresh freshConns
	srv.ConnState = fresh.wrap(srv.ConnState)
	return serveUntil(ctx, srv, ln, sc.ShutdownTimeout, &fresh)
}

// serveStd serves with net/http: TLS (with HTTP/2), or plain HTTP/1 when
// asked.
func (p *Proxy) serveStd(ctx context.Context, ln net.Listener, sc ServerConfig, onShutdown func()) error {
	if sc.TLS != nil {
		if l := limitOf(ln); l != nil {
			l.quiet.Store(true)
		}
		ln = tls.NewListener(ln, sc.TLS)
	}
	srv := &http.Server{
		Handler:           sc.Handler,
		TLSConfig:         sc.TLS,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          p.errLog,
		// One HTTP/2 connection holds at most this many requests (Go's
		// server also runs at most this many handlers per connection and
		// closes a connection that resets streams faster than they end).
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: p.cfg.HTTP2MaxStreams},
	}
	if !p.cfg.DisableStats {
		srv.ConnState = p.connState // for Connections
	}
	srv.RegisterOnShutdown(onShutdown)
	return ServeUntil(ctx, srv, ln, sc.ShutdownTimeout)
}

// server is what ServeUntil needs of net/http's server and of h1's.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// ServeUntil serves srv on ln until ctx ends, then shuts it down gracefully:
// it stops accepting and waits up to timeout for the requests in flight
// (net/http's Shutdown; past the timeout the rest are closed). It returns
// only once srv.Serve has returned and Shutdown is done, so that the caller
// may release what the handlers use, and nil after a clean stop. Every
// server of switchyard runs this way, each owned by the one goroutine that
// called ServeUntil.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	var fresh freshConns
	srv.ConnState = fresh.wrap(srv.ConnState)
	return serveUntil(ctx, srv, ln, timeout, &fresh)
}

func serveUntil(ctx context.Context, srv server, ln net.Listener, timeout time.Duration, fresh *freshConns) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Stop accepting first, and let the connections just accepted send
	// their request before Shutdown, which would drop it.
	ln.Close()
	fresh.await(min(acceptGrace, timeout))
	err := srv.Shutdown(sctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener closed above
	}
	// Serve returns (ErrServerClosed, or the closed listener's error) as
	// soon as the listener closes; Shutdown returns when the requests in
	// flight are done.
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), serr)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("graceful stop on %s: %w", ln.Addr(), err) // err wraps context.DeadlineExceeded
	}
	return nil
}
