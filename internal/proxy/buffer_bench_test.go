package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBuffering is the CPU cost of buffering for slow clients: the same
// request path, through Serve on Listen's listener and a real loopback
// backend, with request and response buffering off and on. Each request
// POSTs a body of the size and gets a response of the same size back (the
// 256 KiB one spills nothing: it is under the 1 MiB memory default).
// Besides ns/op (wall time with 2 clients) it reports cpu-ns/op: the
// process's CPU time per request (client, proxy and app together, the same
// in both modes but for the proxy).
//
//	go test -run '^$' -bench Buffering -benchmem -count 5 ./internal/proxy
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
				p := newProxy(b, Config{QueueTimeout: 10 * time.Second, BufferRequests: on, BufferResponses: on})
				defer p.Close()
				if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
					b.Fatal(err)
				}
				url := startProxy(b, p) + "/bench"
				c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				b.SetBytes(int64(2 * size))
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := benchCPU()
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
				b.ReportMetric(float64(benchCPU()-cpu0)/float64(b.N), "cpu-ns/op")
				c.CloseIdleConnections()
			})
		}
		app.Close()
	}
}

// benchCPU is the CPU time the process has used (user and system).
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
