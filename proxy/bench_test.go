package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/logsink"
)

// The benchmarks drive the proxy's handler through a real loopback client
// and backend, next to a plain httputil.ReverseProxy measured in the same
// run. Compare ns/op and allocs/op between them:
//
//	go test -run '^$' -bench . -benchmem ./proxy
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
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(front.URL + "/bench?x=1")
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
	if _, _, err := p.SetTarget("bench", be.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	runBench(b, p)
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
			t, err := p.adm.acquire(ctx, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			p.adm.release(t)
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
