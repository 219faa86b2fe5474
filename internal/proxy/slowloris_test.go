package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Slowloris: many connections sending their headers a byte at a time are cut
// at the read-header timeout, and bodies that stall at the client body
// timeout; none reaches the app or takes its only worker, and a plain
// request is served meanwhile.
func TestSlowloris(t *testing.T) {
	b := newBufBackend(t)
	p := newProxy(t, Config{QueueTimeout: 2 * time.Second, BufferRequests: true, BufferResponses: true,
		ClientBodyTimeout: 300 * time.Millisecond})
	if _, _, err := p.SetTarget("app", b.Listener.Addr().String(), 1); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(ctx, ln, ServerConfig{ReadHeaderTimeout: 300 * time.Millisecond, ShutdownTimeout: time.Second})
	}()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	const n = 40
	cut := make(chan time.Duration, 2*n)
	var wg sync.WaitGroup
	slow := func(head, drip string) {
		defer wg.Done()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, head)
		for i := 0; i < 200; i++ { // 20 s at most
			if _, err := io.WriteString(c, drip); err != nil {
				break
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(make([]byte, 512)); err != nil && !isTimeout(err) {
				break // closed by the proxy (after a 408 for a body)
			}
		}
		cut <- time.Since(start)
	}
	for i := 0; i < n; i++ {
		wg.Add(2)
		go slow("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", "a") // headers, a byte per 100 ms
		go slow("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", "")
	}
	time.Sleep(100 * time.Millisecond)
	if r := get(context.Background(), "http://"+addr+"/x"); r.status != 200 {
		t.Fatalf("a plain request during the attack: %d %v", r.status, r.err)
	}
	wg.Wait()
	close(cut)
	for d := range cut {
		if d > 5*time.Second {
			t.Errorf("a slow connection lasted %v; the timeouts are 300 ms", d)
		}
	}
	if got := b.served.Load(); got != 1 {
		t.Fatalf("the app served %d requests, want only the plain one", got)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
