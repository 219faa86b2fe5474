package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBuffering is the CPU cost of buffering for slow clients: the same
// request path, through Serve on Listen's listener and a real loopback
// backend, with request and response buffering off and on. Each request
// POSTs a body of the size and gets a response of the same size back (the
// 256 KiB one spills nothing: it is under the 1 MiB memory default).
//
//	go test -run '^$' -bench Buffering -benchmem -count 5 ./proxy
func BenchmarkBuffering(b *testing.B) {
	for _, size := range []int{100, 256 << 10} {
		name := "small"
		if size > 1000 {
			name = "256KiB"
		}
		payload := bytes.Repeat([]byte("p"), size)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(payload)
		}))
		for _, on := range []bool{false, true} {
			mode := "off"
			if on {
				mode = "on"
			}
			b.Run(name+"/"+mode, func(b *testing.B) {
				p, err := New(Config{QueueTimeout: 10 * time.Second, BufferRequests: on, BufferResponses: on})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
					b.Fatal(err)
				}
				ln, err := Listen("127.0.0.1:0", 0)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- p.Serve(ctx, ln, ServerConfig{ShutdownTimeout: 5 * time.Second}) }()
				url := "http://" + ln.Addr().String() + "/bench"
				c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				b.SetBytes(int64(2 * size))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(payload))
						if err != nil {
							b.Error(err)
							return
						}
						n, cerr := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n != int64(size) {
							b.Errorf("status %d, %d bytes, %v", resp.StatusCode, n, cerr)
							return
						}
					}
				})
				b.StopTimer()
				c.CloseIdleConnections()
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			})
		}
		app.Close()
	}
}
