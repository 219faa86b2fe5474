package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/upstream"
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

// newTarget builds a target with its own keep-alive pools, so that draining
// it can close exactly its idle connections: the lean client's (exchange.go)
// for requests, and a Transport for WebSocket handshakes (upgrade.go).
func (p *Proxy) newTarget(id, addr string, workers int) *Target {
	t := &Target{
		id:      id,
		addr:    addr,
		workers: workers,
		drained: make(chan struct{}),
		stats:   &Stats{excludeShedCodes: true},
		adm:     &p.adm,
	}
	dial := t.conns.dialer(&net.Dialer{
		Timeout:   p.cfg.ConnectTimeout,
		KeepAlive: 30 * time.Second,
	})
	t.up = upstream.New(upstream.Config{
		Addr:          addr,
		Dial:          dial,
		HeaderTimeout: p.cfg.UpstreamTimeout,
		MaxIdle:       max(workers+16, 64),
		IdleTimeout:   90 * time.Second,
	})
	t.tr = &http.Transport{
		Proxy:                 nil, // never an HTTP proxy from the environment: we are the proxy
		DialContext:           dial,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: p.cfg.UpstreamTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass the client's Accept-Encoding through and the app's encoding back.
		DisableCompression: true,
	}
	t.rp = p.reverseProxy(addr, t.tr)
	p.targets.add(t)
	t.windows = newWindows(t.stats, p.interval, p.clock)
	if p.sampler != nil {
		p.sampler.add(t.windows, t)
	}
	return t
}

// reverseProxy is a target's path for WebSocket handshakes.
func (p *Proxy) reverseProxy(addr string, tr *http.Transport) *httputil.ReverseProxy {
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
	return rp
}

// upstreamConns are a target's connections to the app, so that the proxy
// can give up on its requests in flight at once (Serve, when the graceful
// stop runs out of time): their round trips fail, their slots come back.
type upstreamConns struct{ set connSet[*upstreamConn] }

var errUpstreamClosed = errors.New("the proxy stopped its upstream connections")

// dialer wraps d's DialContext to track the connections it makes.
func (s *upstreamConns) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		uc := &upstreamConn{Conn: c, set: &s.set}
		if !s.set.add(uc) {
			return nil, errUpstreamClosed
		}
		return uc, nil
	}
}

// closeAll closes every connection, and those made later at once.
func (s *upstreamConns) closeAll() { s.set.closeAll(true) }

type upstreamConn struct {
	net.Conn
	set  *connSet[*upstreamConn]
	once sync.Once
}

func (c *upstreamConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}

// SyscallConn lets the lean client peek at an idle connection
// (upstream's liveness probe).
func (c *upstreamConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// targetSet is every target made that may still have requests in flight.
type targetSet struct {
	mu   sync.Mutex
	list []*Target
}

// add remembers t, forgetting the targets whose drain is over.
func (s *targetSet) add(t *Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.list[:0]
	for _, o := range s.list {
		select {
		case <-o.drained:
		default:
			live = append(live, o)
		}
	}
	s.list = append(live, t)
}

// abort closes the upstream connections of every target.
func (s *targetSet) abort() {
	s.mu.Lock()
	list := append([]*Target(nil), s.list...)
	s.mu.Unlock()
	for _, t := range list {
		t.conns.closeAll()
	}
}
