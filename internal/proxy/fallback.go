package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/upstream"
)

// DefaultFallbackHeader marks a request one proxy forwarded to a peer
// because its own app could not take it; its value names the origin host.
const DefaultFallbackHeader = "X-Switchyard-Fallback"

// Fallback sends a request the local app cannot take — no target, the
// target down or being brought back, the app refusing the connection, or
// (for a safe method) the app's connection breaking before any of its
// answer — once to a peer's proxy, marked with Header so that the peer
// never forwards it again. Only requests whose body is buffered or empty
// go; never the health path or a protocol upgrade.
type Fallback struct {
	// Origin names this host in the mark (its host id). Required.
	Origin string
	// Peers returns the peers' proxy addresses (host:port, plain HTTP)
	// that may take a fallback now; called per fallback, it must be cheap.
	// Required.
	Peers func() []string
	// Header is the mark. Default DefaultFallbackHeader. A marked request
	// is never forwarded again, whoever sent it (a client forging the mark
	// only gives up its own fallback; and no loop can form between hosts
	// that do not know each other's source addresses). The mark is
	// honoured — counted as received, logged with its origin and passed to
	// the app — only from TrustedProxies or a peer's address; from anyone
	// else it is removed.
	Header string
}

// FallbackCounts are the fallbacks since the proxy started.
type FallbackCounts struct {
	// Sent went to a peer; Failed of them the peer could not be reached,
	// or it answered 502, 503 or 504 itself.
	Sent   uint64 `json:"sent"`
	Failed uint64 `json:"failed"`
	// Received came marked from a peer.
	Received uint64 `json:"received"`
}

// fallback is the proxy's side of Fallback.
type fallback struct {
	cfg                    Fallback
	client                 *http.Client
	sent, failed, received atomic.Uint64
}

func newFallback(cfg *Fallback, connect, upstream time.Duration) *fallback {
	if cfg == nil {
		return nil
	}
	fb := &fallback{cfg: *cfg}
	if fb.cfg.Header == "" {
		fb.cfg.Header = DefaultFallbackHeader
	}
	fb.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: connect}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       DefaultIdleTimeout,
			ResponseHeaderTimeout: upstream,
			DisableCompression:    true,
		},
		// The peer's redirects are the client's to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return fb
}

// Fallbacks returns the fallback counts (zero without Config.Fallback).
func (p *Proxy) Fallbacks() FallbackCounts {
	if p.fb == nil {
		return FallbackCounts{}
	}
	return FallbackCounts{Sent: p.fb.sent.Load(), Failed: p.fb.failed.Load(), Received: p.fb.received.Load()}
}

// errPaused: the target is being brought back; with peers to go to, the
// request goes there rather than waiting in the queue.
var errPaused = errors.New("the app is being restarted")

// takeMark honours a fallback mark from a peer (or a trusted proxy), and
// removes one from anyone else; either way the request stays here.
func (p *Proxy) takeMark(rec *recorder, r *http.Request) {
	fb := p.fb
	origin := r.Header.Get(fb.cfg.Header)
	if origin == "" {
		return
	}
	rec.fbMarked = true
	if !p.fwd.isTrusted(r.RemoteAddr) && !fb.fromPeer(r.RemoteAddr) {
		r.Header.Del(fb.cfg.Header)
		return
	}
	rec.fbFrom = origin
	fb.received.Add(1)
}

// fromPeer says whether remote is one of the peers' addresses.
func (fb *fallback) fromPeer(remote string) bool {
	ip, err := netip.ParseAddr(hostOnly(remote))
	if err != nil {
		return false
	}
	for _, peer := range fb.cfg.Peers() {
		host, _, err := net.SplitHostPort(peer)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil && a.Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// fallbackCause says whether err means the local app could not take the
// request at all, so that a peer may.
func fallbackCause(rec *recorder, r *http.Request, err error) bool {
	switch {
	case errors.Is(err, errNoTarget), errors.Is(err, errTargetDown), errors.Is(err, errPaused),
		errors.Is(err, errUnreachable):
		return true
	case errors.Is(err, errUpstream) && rec.headerAt.IsZero():
		// The app's connection broke before any of its answer: the app may
		// have seen the request, so only a safe one goes again.
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			return false
		}
		return safeMethod(r.Method)
	}
	return false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// canFallback says whether r may go to a peer at all.
func (p *Proxy) canFallback(rec *recorder, r *http.Request, health bool) bool {
	return p.fb != nil && !health && !rec.fbMarked && rec.fbTo == "" && rec.status == 0 && !isUpgrade(r) &&
		(rec.body != nil || !hasBody(r))
}

// orFallback sends r to a peer when err says the local app could not take
// it; it returns nil when the peer answered, else err (with why the peer
// did not) for the caller to answer.
func (p *Proxy) orFallback(rec *recorder, r *http.Request, health bool, err error) error {
	if err == nil || !p.canFallback(rec, r, health) || !fallbackCause(rec, r, err) {
		return err
	}
	peers := p.fb.cfg.Peers()
	if len(peers) == 0 {
		return err
	}
	peer := peers[rand.IntN(len(peers))]
	rec.lease.release() // the local slot is not needed
	rec.target = nil
	p.fb.sent.Add(1)
	rec.fbTo = peer
	status, ferr := p.sendToPeer(rec, r, peer)
	if ferr != nil || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		p.fb.failed.Add(1)
	}
	if ferr != nil {
		p.log.Warn().Err(ferr).Str("peer", peer).Str("request_id", r.Header.Get("X-Request-Id")).Msg("fallback to a peer failed")
		if rec.status != 0 {
			return nil // the peer's answer broke off: the client has part of it
		}
		return fmt.Errorf("%w (fallback to peer %s failed: %v)", err, peer, ferr)
	}
	return nil
}

// sendToPeer forwards r to peer's proxy, marked, and copies its answer.
func (p *Proxy) sendToPeer(rec *recorder, r *http.Request, peer string) (int, error) {
	body := io.ReadCloser(http.NoBody)
	if rec.body != nil {
		b, err := r.GetBody()
		if err != nil {
			return 0, err
		}
		body = b
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+peer+r.URL.RequestURI(), body)
	if err != nil {
		body.Close()
		return 0, err
	}
	out.ContentLength, out.Host = r.ContentLength, r.Host
	if rec.body == nil {
		out.ContentLength = 0
	}
	v := p.fwd.values(r)
	out.Header = outHeader(r.Header, p.fwd.dropFunc(v.trusted))
	if id := r.Header["X-Request-Id"]; len(id) > 0 {
		out.Header["X-Request-Id"] = id[:1] // one request, one id on every host
	}
	v.each(func(name, value string) {
		if name != "X-Forwarded-Prefix" { // the peer strips its own prefix
			out.Header[name] = []string{value}
		}
	})
	out.Header.Set(p.fb.cfg.Header, p.fb.cfg.Origin)
	resp, err := p.fb.client.Do(out)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := rec.Header()
	clear(h)
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if k == "Content-Length" || !upstream.HopByHop(k, conn) {
			h[k] = vs
		}
	}
	rec.bufferable = false
	rec.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(rec, resp.Body); err != nil && !errors.Is(err, context.Canceled) {
		return resp.StatusCode, fmt.Errorf("copy the peer's answer: %w", err)
	}
	return resp.StatusCode, nil
}

// outHeader is the client's header as a peer gets it: the same rule as the
// app's (upstream.HopByHop, the client-IP fields the proxy does not trust
// from this client); the X-Forwarded-* fields are set after.
func outHeader(in http.Header, drop func(string) bool) http.Header {
	conn := in["Connection"]
	out := make(http.Header, len(in))
	for k, vs := range in {
		if !upstream.HopByHop(k, conn) && !drop(k) {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}
