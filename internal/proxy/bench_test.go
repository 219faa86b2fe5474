package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/logsink"
)

// The benchmarks drive the proxy's handler through a real loopback client
// and backend, next to a plain httputil.ReverseProxy measured in the same
// run. Compare ns/op and allocs/op between them:
//
//	go test -run '^$' -bench . -benchmem ./internal/proxy
func benchBackend(b *testing.B) *httptest.Server {
	body := []byte("hello from the app, a small response body of about a hundred bytes .......................\n")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s
}

func runBench(b *testing.B, h http.Handler) {
	front := httptest.NewServer(h)
	defer front.Close()
	runBenchURL(b, front.URL)
}

func runBenchURL(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url + "/bench?x=1")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

func BenchmarkPlainReverseProxy(b *testing.B) {
	be := benchBackend(b)
	u, _ := url.Parse(be.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	rp.BufferPool = copyBuffers
	runBench(b, rp)
}

func benchProxy(b *testing.B, format string) {
	be := benchBackend(b)
	cfg := Config{QueueTimeout: 10 * time.Second}
	if format != "" {
		sink, err := logsink.Open(filepath.Join(b.TempDir(), "access.log"), "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer sink.Close()
		al, err := NewAccessLog(sink, format)
		if err != nil {
			b.Fatal(err)
		}
		cfg.AccessLog = al
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SetTarget("bench", be.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	runBench(b, p)
}

// BenchmarkStats is the cost of the stats: counters, histograms, request
// phases and connection states (the windows' sampler runs off the request
// path, every 5 s). The proxy is served by Serve on Listen's listener, as in
// production, so that the ConnState hook runs; compare off with on:
//
//	go test -run '^$' -bench Stats -benchmem -count 5 ./internal/proxy
func BenchmarkStats(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			be := benchBackend(b)
			p := newProxy(b, Config{QueueTimeout: 10 * time.Second, DisableStats: !on})
			defer p.Close()
			if _, _, err := p.SetTarget("bench", be.Listener.Addr().String(), 256); err != nil {
				b.Fatal(err)
			}
			runBenchURL(b, startProxy(b, p))
			b.StopTimer()
		})
	}
}

// BenchmarkStatsRecord is the counters alone: one request's record, on the
// proxy's and the target's Stats as finish does.
func BenchmarkStatsRecord(b *testing.B) {
	var ps, ts Stats
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ps.record(200, refusedNot, false, 120, 5120, time.Millisecond, 30*time.Millisecond, 33*time.Millisecond, true)
			ts.record(200, refusedNot, false, 120, 5120, time.Millisecond, 30*time.Millisecond, 33*time.Millisecond, true)
		}
	})
}

// BenchmarkWindowsSample and BenchmarkWindowsReport are the sampler's tick
// for one Stats and a report: off the request path, for scale.
func BenchmarkWindowsSample(b *testing.B) {
	var s Stats
	fillStats(&s)
	w := newWindows(&s, 0, time.Now)
	b.ReportAllocs()
	for b.Loop() {
		w.sample()
	}
}

func BenchmarkWindowsReport(b *testing.B) {
	var s Stats
	fillStats(&s)
	w := newWindows(&s, 0, time.Now)
	for range 200 {
		w.sample()
	}
	b.ReportAllocs()
	for b.Loop() {
		w.report()
	}
}

// fillStats records latencies from 50 µs to 5 s and a few status codes.
func fillStats(s *Stats) {
	for d := 50 * time.Microsecond; d < 5*time.Second; d = d * 11 / 10 {
		for _, code := range []int{200, 201, 304, 404, 499, 502, 503} {
			s.record(code, shedIf(code == 503), code == 502, 100, 1000, d/4, d/2, d, true)
		}
	}
}

func BenchmarkSwitchyardNoLog(b *testing.B)   { benchProxy(b, "") }
func BenchmarkSwitchyardTextLog(b *testing.B) { benchProxy(b, LogFormatText) }
func BenchmarkSwitchyardJSONLog(b *testing.B) { benchProxy(b, LogFormatJSON) }

// BenchmarkAdmission is the queue alone: acquire and release of a free slot.
func BenchmarkAdmission(b *testing.B) {
	p, _ := New(Config{})
	p.SetTarget("t", "127.0.0.1:1", 1<<20)
	ctx := httptest.NewRequest("GET", "/", nil).Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t, since, err := p.adm.acquire(ctx, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			p.adm.release(t, since)
		}
	})
}

// BenchmarkAccessLogLine is formatting one text line into a discarded writer.
func BenchmarkAccessLogLine(b *testing.B) {
	for _, f := range []string{LogFormatText, LogFormatJSON} {
		b.Run(f, func(b *testing.B) {
			al, _ := NewAccessLog(io.Discard, f)
			e := &entry{start: time.Now(), client: "203.0.113.7", method: "GET", uri: "/some/path?q=1", proto: "HTTP/1.1",
				id: "abcdef012345-1k", target: "c0ffee", status: 200, read: time.Millisecond, queue: 2 * time.Millisecond,
				app: 30 * time.Millisecond, all: 33 * time.Millisecond, queued: true, gotApp: true, in: 120, out: 5120}
			b.ReportAllocs()
			for b.Loop() {
				al.write(e)
			}
		})
	}
}

// BenchmarkHandlerStats is the handler alone, off and on, without sockets:
// the target's transport answers from memory and the ConnState hook is
// called as net/http calls it for a keep-alive request (active, then idle).
// On a loaded machine the loopback benchmarks' noise hides the difference;
// this one shows it.
func BenchmarkHandlerStats(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			p := memoryProxy(b, Config{QueueTimeout: 10 * time.Second, DisableStats: !on})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				tc := &trackedConn{}
				if on {
					p.connState(tc, http.StateNew)
				}
				req := httptest.NewRequest("GET", "http://bench/bench?x=1", nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					if on {
						p.connState(tc, http.StateActive)
					}
					req.Header.Del("X-Request-Id")
					clear(w.h)
					p.ServeHTTP(w, req)
					if on {
						p.connState(tc, http.StateIdle)
					}
				}
			})
		})
	}
}

var memoryBody = []byte("hello from the app, a small response body of about a hundred bytes .......................\n")

type memoryTransport struct{}

func (memoryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: int64(len(memoryBody)),
		Body: io.NopCloser(bytes.NewReader(memoryBody)), Request: r}, nil
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func shedIf(b bool) refusalKind {
	if b {
		return refusedQueueTimeout
	}
	return refusedNot
}

// memoryProxy is a proxy made with cfg whose one target (1<<20 workers)
// answers from memory, for benchmarks of the handler alone.
func memoryProxy(b *testing.B, cfg Config) *Proxy {
	b.Helper()
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	tg, _, err := p.SetTarget("bench", "127.0.0.1:1", 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	tg.rp.Transport = memoryTransport{}
	return p
}
