package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// The cost of TLS per request: the same proxy, backend and keep-alive
// client, served by Serve on a loopback listener with and without TLS.
// Client, proxy and backend share the process, so cpu-ns/op (the process's
// CPU time per request) counts TLS on both ends of the client connection.
// Plain is served by h1, PlainStd by net/http's server (--std-http1):
//
//	go test -run '^$' -bench '^Benchmark(Plain|PlainStd|TLS|TLSHTTP2|TLSHandshake)$' -benchmem ./internal/proxy
func BenchmarkPlain(b *testing.B) { benchServe(b, false, false) }
func BenchmarkPlainStd(b *testing.B) {
	stdHTTP1 = true
	defer func() { stdHTTP1 = false }()
	benchServe(b, false, false)
}
func BenchmarkTLS(b *testing.B)      { benchServe(b, true, false) }
func BenchmarkTLSHTTP2(b *testing.B) { benchServe(b, true, true) }

// stdHTTP1 makes benchServer serve plain HTTP/1 with net/http.
var stdHTTP1 bool

// benchServer serves a proxy to a benchBackend, with TLS when conf is set,
// and returns its address.
func benchServer(b *testing.B, conf *tls.Config) string {
	be := benchBackend(b)
	p, err := New(Config{QueueTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	if _, _, err := p.SetTarget("bench", be.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		b.Fatal(err)
	}
	serveTest(b, p, ln, ServerConfig{TLS: conf, ShutdownTimeout: 5 * time.Second, StdHTTP1: stdHTTP1})
	return ln.Addr().String()
}

func benchTLSConfig(b *testing.B) *tls.Config {
	conf, _ := testTLS(b)
	return conf
}

func benchServe(b *testing.B, useTLS, h2 bool) {
	var conf *tls.Config
	scheme := "http://"
	if useTLS {
		conf, scheme = benchTLSConfig(b), "https://"
	}
	url := scheme + benchServer(b, conf) + "/bench?x=1"
	tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: h2,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	c := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || (h2 && resp.ProtoMajor != 2) {
				b.Errorf("%s %d", resp.Proto, resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkTLSHandshake is a full handshake (no session resumption) per
// op: client and server side of TLS 1.3 with an ECDSA P-256 certificate and
// X25519MLKEM768, then one request on the new connection.
func BenchmarkTLSHandshake(b *testing.B) {
	url := "https://" + benchServer(b, benchTLSConfig(b)) + "/bench?x=1"
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr := &http.Transport{DisableKeepAlives: true,
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ClientSessionCache: nil}}
			resp, err := (&http.Client{Transport: tr}).Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tr.CloseIdleConnections()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
