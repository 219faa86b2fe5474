package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a real HTTP server that counts how many requests are inside it
// at once, so tests can check the proxy's worker limit from the app's side.
type backend struct {
	*httptest.Server
	name     string
	inflight atomic.Int64
	peak     atomic.Int64
	served   atomic.Int64
	hold     chan struct{} // when non-nil, /hold requests wait for a receive
	// /block requests wait for a receive from block and nothing else: a
	// gunicorn sync worker, which never notices that its client left.
	block chan struct{}
	mu    sync.Mutex
	order []string // values of ?n= in arrival order
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	n := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	for {
		p := b.peak.Load()
		if n <= p || b.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if v := r.URL.Query().Get("n"); v != "" {
		b.mu.Lock()
		b.order = append(b.order, v)
		b.mu.Unlock()
	}
	switch r.URL.Path {
	case "/hold":
		select {
		case <-b.hold:
		case <-r.Context().Done():
		}
	case "/block":
		<-b.block
	case "/sleep": // ignores its client too
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
	case "/read": // reads the whole body, then sleeps ?d
		io.Copy(io.Discard, r.Body)
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
	case "/headers":
		for k, v := range r.Header {
			w.Header()["Echo-"+k] = v
		}
	}
	b.served.Add(1)
	w.Header().Set("X-Backend", b.name)
	io.WriteString(w, b.name)
}

func (b *backend) addr() string { return b.Listener.Addr().String() }

func (b *backend) arrivals() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...)
}

// startProxy serves p on a loopback listener for the test's lifetime.
func startProxy(t testing.TB, p *Proxy) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, p, ln, ServerConfig{ShutdownTimeout: 5 * time.Second})
	// Runs before serveTest's: spare connections the client dialed but never
	// used count as busy for 5 s in http.Server.Shutdown.
	t.Cleanup(client.CloseIdleConnections)
	return "http://" + ln.Addr().String()
}

// serveTest serves p on ln until stop is called, which returns Serve's
// error; otherwise the test's cleanup stops it and reports an error.
func serveTest(t testing.TB, p *Proxy, ln net.Listener, sc ServerConfig) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, sc) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		var first bool
		once.Do(func() { first = true; cancel(); err = <-done })
		if first && err != nil {
			var buf [1 << 20]byte
			n := runtime.Stack(buf[:], true)
			t.Errorf("proxy Serve: %v\n%s", err, buf[:n])
		}
	})
	return stop
}

func newProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func setTarget(t testing.TB, p *Proxy, b *backend, workers int) *Target {
	t.Helper()
	nt, _, err := p.SetTarget(b.name, b.addr(), workers)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// client has enough idle connections for the concurrency the tests use.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}

type result struct {
	status int
	body   string
	header http.Header
	err    error
}

func get(ctx context.Context, url string) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(body), header: resp.Header, err: err}
}

// waitFor polls cond for up to 5 s; tests use it to reach a state (e.g.
// "3 requests queued"), never to assert a speed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
