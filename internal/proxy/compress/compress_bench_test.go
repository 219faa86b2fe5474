package compress

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/proxy/compress/compresstest"
)

// What compression costs per request, on a 16 KiB JSON response:
//
//	go test -run '^$' -bench 'Compress' -benchmem ./internal/proxy/compress ./internal/proxy
//
// BenchmarkCompress goes client → Handler → Proxy → app over loopback,
// as in production; "off" has no Handler, "identity" has one but the
// client accepts no coding. cpu-ns/op is the process's CPU time (user +
// system, client and app included) per request: the difference between
// the variants is what compression costs. wire-B/op is the body sent.
// BenchmarkCompressHandler is the Handler alone, writing to a discarding
// ResponseWriter: the encoder's cost without the network around it.

// czDiscard is a ResponseWriter that counts and drops the body.
type czDiscard struct {
	h http.Header
	n int64
}

func (d *czDiscard) Header() http.Header         { return d.h }
func (d *czDiscard) WriteHeader(int)             {}
func (d *czDiscard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

func BenchmarkCompressHandler(b *testing.B) {
	body := compresstest.JSON(16 << 10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	c, err := New(Config{}, app)
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
