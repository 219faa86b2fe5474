package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// What compression costs per request, on a 16 KiB JSON response:
//
//	go test -run '^$' -bench 'Compress|StaticVsProxy' -benchmem ./proxy
//
// BenchmarkCompress goes client → Compressor → Proxy → app over loopback,
// as in production; "off" has no Compressor, "identity" has one but the
// client accepts no coding. cpu-ns/op is the process's CPU time (user +
// system, client and app included) per request: the difference between
// the variants is what compression costs. wire-B/op is the body sent.
// BenchmarkCompressHandler is the Compressor alone, writing to a discarding
// ResponseWriter: the encoder's cost without the network around it.

// czCPU is the CPU time the process has used.
func czCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// czRun sends GETs to url in parallel with Accept-Encoding ae and reports
// CPU time and wire bytes per request.
func czRun(b *testing.B, url, ae string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var wire atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := czCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if ae != "" {
				req.Header.Set("Accept-Encoding", ae)
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			wire.Add(n)
		}
	})
	b.ReportMetric(float64(czCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B/op")
}

func BenchmarkCompress(b *testing.B) {
	body := czJSON(16 << 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer app.Close()
	p, err := New(Config{QueueTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	c, err := NewCompressor(CompressConfig{}, p)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, ae string
		h        http.Handler
	}{
		{"off", "gzip, zstd", p},
		{"identity", "", c},
		{"gzip", "gzip", c},
		{"zstd", "gzip, zstd", c},
	} {
		b.Run(v.name, func(b *testing.B) {
			front := httptest.NewServer(v.h)
			defer front.Close()
			czRun(b, front.URL+"/data", v.ae)
		})
	}
}

// czDiscard is a ResponseWriter that counts and drops the body.
type czDiscard struct {
	h http.Header
	n int64
}

func (d *czDiscard) Header() http.Header         { return d.h }
func (d *czDiscard) WriteHeader(int)             {}
func (d *czDiscard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

func BenchmarkCompressHandler(b *testing.B) {
	body := czJSON(16 << 10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	c, err := NewCompressor(CompressConfig{}, app)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, ae string
		h        http.Handler
	}{
		{"off", "", app},
		{"identity", "", c},
		{"gzip", "gzip", c},
		{"zstd", "zstd", c},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var out atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/data", nil)
				if v.ae != "" {
					req.Header.Set("Accept-Encoding", v.ae)
				}
				w := &czDiscard{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					w.n = 0
					v.h.ServeHTTP(w, req)
					out.Add(w.n)
				}
			})
			b.ReportMetric(float64(out.Load())/float64(b.N)/float64(len(body)), "size-ratio")
		})
	}
}
