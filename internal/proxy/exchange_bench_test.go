package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/logsink"
)

// BenchmarkForward is the forwarding path alone, as switchyard serve runs
// it (buffering both ways, stats, the access log to a file), without the
// client side's sockets: the handler is called directly, and the app is a
// raw-TCP loop that allocates nothing, and the request is reused, so that
// allocs/op are the proxy's.
// "lean" is the lean client (exchange.go), "transport" the same request
// through httputil.ReverseProxy and an http.Transport, the path every
// request took before it:
//
//	go test -run '^$' -bench Forward -benchmem ./internal/proxy
func BenchmarkForward(b *testing.B) {
	for _, path := range []string{"lean", "transport"} {
		for _, post := range []bool{false, true} {
			name := path + "/GET"
			if post {
				name = path + "/POST4k"
			}
			b.Run(name, func(b *testing.B) { benchForward(b, path == "lean", post) })
		}
	}
}

func benchForward(b *testing.B, lean, post bool) {
	addr := fastApp(b)
	sink, err := logsink.Open(filepath.Join(b.TempDir(), "access.log"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	al, _ := NewAccessLog(sink, LogFormatText)
	p := newProxy(b, Config{QueueTimeout: 10 * time.Second, BufferRequests: true, BufferResponses: true, AccessLog: al})
	tg, _, err := p.SetTarget("bench", addr, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	if !lean {
		tg.rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	}
	body := bytes.Repeat([]byte("b"), 4096)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &deadlineWriter{discardWriter{h: http.Header{}}}
		req := httptest.NewRequest("GET", "http://bench/bench?x=1", nil)
		rd := bytes.NewReader(body)
		rc := io.NopCloser(rd)
		if post {
			req.Method = "POST"
		}
		for pb.Next() {
			req.Header.Del("X-Request-Id")
			if post { // takeBody replaced the last one with its buffer
				rd.Reset(body)
				req.Body, req.ContentLength, req.GetBody = rc, int64(len(body)), nil
			}
			clear(w.h)
			p.ServeHTTP(w, req)
		}
	})
}

// fastApp answers every request with the same 100-byte body, allocating
// nothing per request.
func fastApp(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go serveFast(c)
		}
	}()
	return ln.Addr().String()
}

var fastResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
	strconv.Itoa(len(memoryBody)) + "\r\n\r\n" + string(memoryBody))

func serveFast(c net.Conn) {
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		n := int64(0)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n, _ = strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return
		}
		if _, err := c.Write(fastResponse); err != nil {
			return
		}
	}
}
