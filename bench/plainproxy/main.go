// Command plainproxy is the reference the benchmarks hold switchyard to: the
// standard library's httputil.ReverseProxy in front of one upstream, with
// nothing added — no queue, no access log — but tuned the way a careful user
// would: a BufferPool of 32 KiB buffers and a keep-alive Transport with
// plenty of idle connections.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (p *bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

func newProxy(target *url.URL) *httputil.ReverseProxy {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // pass Accept-Encoding through untouched
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host // keep Host, as HAProxy and nginx (Host $http_host) do
		},
		Transport:  transport,
		BufferPool: newBufferPool(),
		ErrorLog:   log.New(io.Discard, "", 0),
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:8081", "upstream host:port")
	flag.Parse()

	target, err := url.Parse("http://" + *upstream)
	if err != nil {
		log.Fatalf("plainproxy: -upstream %q: %v", *upstream, err)
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newProxy(target),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	launch.ServeUntilSignal("plainproxy", srv)
}
