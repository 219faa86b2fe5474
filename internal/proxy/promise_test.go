package proxy

// The queue's promise against any client: whatever an anonymous client
// sends, however it behaves, the app never holds more than workers
// queued-path requests. Each test counts the app's own peak concurrency.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawExchange sends req on a new connection and reads the response status
// (0 when there is none within 10 s).
func rawExchange(t *testing.T, url, req string) int {
	c := dialRaw(t, url)
	if _, err := io.WriteString(c, req); err != nil {
		return 0
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Requests that carry upgrade headers but are no real upgrade (an unknown
// token, h2c, a POST, a WebSocket handshake the app answers with 200) wait
// for a worker as any request does: twelve at once never put more than two
// in a two-worker app. A stalled body with upgrade headers is held to the
// body timeout when requests are buffered, and to a worker slot when not.
func TestUpgradeHeadersTakeASlot(t *testing.T) {
	const workers, clients = 2, 12
	wsHeaders := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	tests := []struct {
		name    string
		cfg     Config
		request string
		want    int // every client's status; 0: any
		reached bool
	}{
		{"unknown token", Config{},
			"GET /sleep?d=300ms HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", 200, true},
		{"h2c", Config{},
			"GET /sleep?d=300ms HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 200, true},
		{"websocket answered with 200", Config{},
			"GET /sleep?d=300ms HTTP/1.1\r\nHost: t\r\n" + wsHeaders + "\r\n", 200, true},
		{"POST with upgrade headers, stalled body, buffered", Config{BufferRequests: true, ClientBodyTimeout: 300 * time.Millisecond},
			"POST /sleep?d=300ms HTTP/1.1\r\nHost: t\r\n" + wsHeaders + "Content-Length: 100\r\n\r\nabc", http.StatusRequestTimeout, false},
		{"POST with upgrade headers, stalled body, streamed", Config{},
			"POST /sleep?d=300ms HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 100\r\n\r\nabc", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			tt.cfg.QueueTimeout = 10 * time.Second
			p := newProxy(t, tt.cfg)
			setTarget(t, p, b, workers)
			url := startProxy(t, p)
			codes := make(chan int, clients)
			for i := 0; i < clients; i++ {
				go func() { codes <- rawExchange(t, url, tt.request) }()
			}
			for i := 0; i < clients; i++ {
				if got := <-codes; tt.want != 0 && got != tt.want {
					t.Errorf("client %d: status %d, want %d", i, got, tt.want)
				}
			}
			if got := b.peak.Load(); got > workers {
				t.Fatalf("the app held %d requests at once, workers is %d", got, workers)
			}
			if tt.reached && b.peak.Load() == 0 {
				t.Fatalf("no request reached the app")
			}
			if !tt.reached && b.served.Load() != 0 {
				t.Fatalf("a stalled body reached the app")
			}
		})
	}
}

// Clients that give up after 100 ms on a 400 ms endpoint, 10 ms apart, do
// not hand their slots to the next waiters while the app (which does not
// notice a client leaving, as a gunicorn sync worker) still works on them.
func TestAbandonedRequestsKeepTheirSlots(t *testing.T) {
	const workers = 2
	b := newBackend(t, "app")
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second})
	tg := setTarget(t, p, b, workers)
	url := startProxy(t, p)
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			get(ctx, url+"/sleep?d=400ms")
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	waitFor(t, "the app to finish", func() bool { return b.inflight.Load() == 0 && tg.InFlight() == 0 })
	if got := b.peak.Load(); got > workers {
		t.Fatalf("the app held %d requests at once, workers is %d", got, workers)
	}
	if p.Queued() != 0 {
		t.Fatalf("%d left in the queue", p.Queued())
	}
}

// An abandoned request keeps its slot, and the target its in-flight count,
// until the app has answered; the answer is discarded (logged 499) and the
// slot goes to the next waiter, which is then served.
func TestAbandonedSlotGoesToNextWaiter(t *testing.T) {
	b := newBackend(t, "app")
	b.block = make(chan struct{})
	unblock := sync.OnceFunc(func() { close(b.block) })
	defer unblock()
	logs := &syncLog{}
	al, _ := NewAccessLog(logs, "%HU %ST")
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second, AccessLog: al})
	tg := setTarget(t, p, b, 1)
	url := startProxy(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan result, 1)
	go func() { first <- get(ctx, url+"/block?n=A") }()
	waitFor(t, "the app to take A", func() bool { return b.inflight.Load() == 1 })
	second := make(chan result, 1)
	go func() { second <- get(context.Background(), url+"/x?n=B") }()
	waitFor(t, "B to queue", func() bool { return p.Queued() == 1 })
	cancel()
	if r := <-first; r.err == nil {
		t.Fatalf("A's client was cancelled but got %d", r.status)
	}
	time.Sleep(100 * time.Millisecond) // time for a wrongly freed slot to go to B
	for _, n := range b.arrivals() {
		if n == "B" {
			t.Fatal("B reached the app while it still worked on A, whose client had left")
		}
	}
	if p.Queued() != 1 || tg.InFlight() != 1 {
		t.Fatalf("queued %d, in flight %d: want B waiting and A still in the app", p.Queued(), tg.InFlight())
	}
	unblock()
	if r := <-second; r.status != 200 || r.body != "app" {
		t.Fatalf("B after A finished: %d %q %v", r.status, r.body, r.err)
	}
	if got := b.peak.Load(); got != 1 {
		t.Fatalf("app peak %d, workers is 1", got)
	}
	waitFor(t, "A's log line", func() bool { return strings.Contains(logs.String(), "/block?n=A 499\n") })
	waitFor(t, "the target idle", func() bool { return tg.InFlight() == 0 })
}

// A WebSocket handshake is an ordinary request until the app answers 101:
// with the only worker busy it waits in the queue, and gets through once
// the worker is free; once upgraded it holds no slot.
func TestWebSocketHandshakeQueues(t *testing.T) {
	b := newWSBackend(t, "a")
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second})
	tg, _, err := p.SetTarget("a", b.Listener.Addr().String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, p)
	first := dialWS(t, url) // holds no slot once upgraded
	if got, err := echo(first, "1"); err != nil || got != "a:1" {
		t.Fatalf("echo: %q %v", got, err)
	}
	if n := busySlots(p, tg); n != 0 {
		t.Fatalf("an upgraded WebSocket holds %d worker slots", n)
	}
	// Take the only worker (as a request would), then dial.
	held, since, err := p.adm.acquire(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
		if err == nil {
			c.CloseNow()
		}
		done <- err
	}()
	waitFor(t, "the handshake to queue", func() bool { return p.Queued() == 1 })
	p.adm.release(held, since)
	if err := <-done; err != nil {
		t.Fatalf("handshake after the worker came free: %v", err)
	}
}

// busySlots is the number of t's worker slots in use.
func busySlots(p *Proxy, t *Target) int {
	p.adm.mu.Lock()
	defer p.adm.mu.Unlock()
	return t.busy
}

// When the graceful stop runs out of time, the proxy gives up on the
// requests still waiting for the app: it closes their upstream connections,
// so that their slots and references come back and the handlers end,
// rather than waiting on an app that may never answer.
func TestShutdownGivesUpOnTheApp(t *testing.T) {
	b := newBackend(t, "app")
	b.block = make(chan struct{})
	defer close(b.block)
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second})
	tg := setTarget(t, p, b, 1)
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := serveTest(t, p, ln, ServerConfig{ShutdownTimeout: 200 * time.Millisecond})
	got := make(chan result, 1)
	go func() { got <- get(context.Background(), "http://"+ln.Addr().String()+"/block") }()
	waitFor(t, "the app to take the request", func() bool { return b.inflight.Load() == 1 })
	if err := stop(); err == nil || !strings.Contains(err.Error(), "graceful stop") {
		t.Fatalf("Serve after the shutdown timeout: %v, want the graceful stop's error", err)
	}
	<-got
	waitFor(t, "the request to give back its slot", func() bool { return tg.InFlight() == 0 && busySlots(p, tg) == 0 })
	if b.inflight.Load() != 1 {
		t.Fatal("the app is no longer blocked: the test proves nothing")
	}
}
