package proxy

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Serving a 16 KiB file from disk in front of the proxy, against proxying
// the same file from an app (http.FileServer) over loopback; compression
// off in both:
//
//	go test -run '^$' -bench StaticVsProxy -benchmem ./proxy
func BenchmarkStaticVsProxy(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.json"), czJSON(16<<10), 0o644); err != nil {
		b.Fatal(err)
	}
	app := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer app.Close()
	p, err := New(Config{QueueTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	st, err := NewStatic(StaticConfig{Dir: dir}, p)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	zst, err := NewCompressor(CompressConfig{}, st)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, ae string
		h        http.Handler
	}{
		{"proxy", "", p},
		{"static", "", st},
		{"static+compressor-identity", "", zst},
		{"static+zstd", "zstd", zst},
	} {
		b.Run(v.name, func(b *testing.B) {
			front := httptest.NewServer(v.h)
			defer front.Close()
			czRun(b, front.URL+"/data.json", v.ae)
		})
	}
}
