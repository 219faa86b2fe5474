package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// bufferPool gives ReverseProxy reusable 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v := b.p.Get(); v != nil {
		return *(v.(*[]byte))
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var copyBuffers = &bufferPool{}

// newTarget builds a target with its own keep-alive pool, so that draining
// it can close exactly its idle connections.
func (p *Proxy) newTarget(id, addr string, workers int) *Target {
	tr := &http.Transport{
		Proxy: nil, // never an HTTP proxy from the environment: we are the proxy
		DialContext: (&net.Dialer{
			Timeout:   p.cfg.ConnectTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   max(workers+16, 64),
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: p.cfg.UpstreamTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass the client's Accept-Encoding through and the app's encoding back.
		DisableCompression: true,
	}
	t := &Target{
		id:      id,
		addr:    addr,
		workers: workers,
		drained: make(chan struct{}),
		tr:      tr,
		stats:   &Stats{},
		since:   time.Now(),
	}
	t.windows = newWindows(t.stats, p.interval, p.clock)
	if p.sampler != nil {
		p.sampler.add(t.windows, t)
	}
	prefix := p.cfg.Prefix
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			if prefix != "" {
				stripURL(pr.Out.URL, prefix)
			}
			p.fwd.rewrite(pr)
		},
		Transport:    tr,
		BufferPool:   copyBuffers,
		ErrorHandler: p.upstreamError,
		ErrorLog:     p.errLog,
	}
	if len(p.cfg.ResponseHeaders) > 0 {
		hs := p.cfg.ResponseHeaders
		rp.ModifyResponse = func(resp *http.Response) error {
			setResponseHeaders(resp.Header, hs)
			return nil
		}
	}
	t.rp = rp
	return t
}

// upstreamError turns a failed round trip into 502 (unreachable, broken
// response) or 504 (no response headers within the upstream timeout).
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	rec, _ := w.(*recorder)
	code, reason := classify(r, err)
	if rec == nil {
		w.WriteHeader(code)
		return
	}
	if rec.limited != nil && rec.limited.over.Load() {
		rec.Header().Set("Connection", "close")
		rec.fail(http.StatusRequestEntityTooLarge, errBodyTooLarge.Error(),
			"413 Request Entity Too Large: the body is over the limit\n", p.cfg.ResponseHeaders)
		return
	}
	if code == statusClientClosed || rec.up != nil {
		// Nobody is listening, or the connection is no longer HTTP (a
		// protocol switch failed after the hijack): record it, write nothing.
		rec.reason = reason
		rec.status = code
		return
	}
	body := "502 Bad Gateway: the app did not answer\n"
	if code == http.StatusGatewayTimeout {
		body = "504 Gateway Timeout: the app did not answer in time\n"
	}
	rec.fail(code, reason, body, p.cfg.ResponseHeaders)
}

// statusClientClosed is nginx's 499: the client left before the answer.
const statusClientClosed = 499

func classify(r *http.Request, err error) (int, string) {
	if r.Context().Err() != nil {
		return statusClientClosed, "client closed request"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return http.StatusBadGateway, "upstream unreachable: " + err.Error()
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return http.StatusGatewayTimeout, "upstream timeout: " + err.Error()
	}
	return http.StatusBadGateway, "upstream error: " + err.Error()
}
