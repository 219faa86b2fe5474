package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// startTLSProxy serves p over TLS (HTTP/2 and HTTP/1.1) on a loopback
// listener limited to maxConns connections (0: none) for the test's
// lifetime.
func startTLSProxy(t testing.TB, p *Proxy, maxConns int) (string, *x509.CertPool) {
	t.Helper()
	conf, roots := testTLS(t)
	ln, err := Listen("127.0.0.1:0", maxConns)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, p, ln, ServerConfig{TLS: conf, ShutdownTimeout: 5 * time.Second})
	return ln.Addr().String(), roots
}

// h2Framer is an HTTP/2 client over one TLS connection whose frames the
// test writes itself, as an attacker would.
type h2Framer struct {
	conn *tls.Conn
	fr   *http2.Framer
	mu   sync.Mutex // serializes writes
	hbuf bytes.Buffer
	enc  *hpack.Encoder

	maxStreams atomic.Uint32 // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	settings   chan struct{} // closed at the server's first SETTINGS
	goAway     atomic.Bool
	done       chan struct{} // closed when the read loop ends
}

func dialH2(t testing.TB, addr string, roots *x509.CertPool) *h2Framer {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	c := &h2Framer{conn: conn, fr: http2.NewFramer(conn, conn), settings: make(chan struct{}), done: make(chan struct{})}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	t.Cleanup(func() { conn.Close(); <-c.done })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go c.readLoop()
	select {
	case <-c.settings:
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	return c
}

func (c *h2Framer) readLoop() {
	defer close(c.done)
	var once sync.Once
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				c.maxStreams.Store(v)
			}
			c.mu.Lock()
			c.fr.WriteSettingsAck()
			c.mu.Unlock()
			once.Do(func() { close(c.settings) })
		case *http2.GoAwayFrame:
			c.goAway.Store(true)
		}
	}
}

// get opens stream id with a GET of path (no body).
func (c *h2Framer) get(id uint32, path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "test"}, {":path", path}} {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

func (c *h2Framer) reset(id uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
}

// peaks samples values every millisecond and keeps each one's highest.
type peaks struct {
	max  []atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func samplePeaks(values ...func() int64) *peaks {
	s := &peaks{max: make([]atomic.Int64, len(values)), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			for i, v := range values {
				if n := v(); n > s.max[i].Load() {
					s.max[i].Store(n)
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return s
}

// end stops the sampling and returns the peaks, in the order of values.
func (s *peaks) end() []int64 {
	close(s.stop)
	<-s.done
	out := make([]int64, len(s.max))
	for i := range s.max {
		out[i] = s.max[i].Load()
	}
	return out
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func goroutines() int64 { return int64(runtime.NumGoroutine()) }

// Rapid reset (CVE-2023-44487) on one TLS connection: thousands of HEADERS
// each followed at once by its RST_STREAM. The app never holds more than
// workers requests, the server advertises a bounded stream count, and the
// proxy's goroutines and heap stay bounded.
func TestRapidReset(t *testing.T) {
	const workers, pairs = 2, 3000
	b := newBackend(t, "app")
	p := newProxy(t, Config{QueueTimeout: 5 * time.Second})
	tg := setTarget(t, p, b, workers)
	addr, roots := startTLSProxy(t, p, 0)

	runtime.GC()
	baseHeap, baseG := heapInUse(), goroutines()
	sampled := samplePeaks(heapInUse, goroutines)
	c := dialH2(t, addr, roots)
	if got := c.maxStreams.Load(); got == 0 || got > DefaultHTTP2MaxStreams {
		t.Errorf("server allows %d concurrent streams per connection, want at most %d", got, DefaultHTTP2MaxStreams)
	}
	// In batches, each reset a moment after its HEADERS: on loopback a
	// reset right behind its HEADERS is read before the handler runs, where
	// over a real network the request would already be on its way.
	const batch = 20
	sent := 0
attack:
	for i := 0; i < pairs; i += batch {
		for j := i; j < i+batch; j++ {
			if c.get(uint32(2*j+1), "/sleep?d=200ms") != nil {
				break attack // the server closed the connection: fine
			}
		}
		time.Sleep(2 * time.Millisecond)
		for j := i; j < i+batch; j++ {
			if c.reset(uint32(2*j+1)) != nil {
				break attack
			}
			sent++
		}
	}
	waitFor(t, "the app and the proxy to be idle", func() bool {
		return b.inflight.Load() == 0 && tg.InFlight() == 0 && p.Queued() == 0
	})
	pk := sampled.end()
	heap, g := pk[0]-baseHeap, pk[1]-baseG
	t.Logf("%d pairs sent (GOAWAY %v); app peak %d, served %d; heap +%d KiB, goroutines +%d",
		sent, c.goAway.Load(), b.peak.Load(), b.served.Load(), heap>>10, g)
	if got := b.peak.Load(); got > workers {
		t.Errorf("the app held %d requests at once, workers is %d", got, workers)
	}
	if g > 4*DefaultHTTP2MaxStreams {
		t.Errorf("%d more goroutines at the peak: not bounded by the stream limit", g)
	}
	if heap > 64<<20 {
		t.Errorf("heap in use grew by %d MiB", heap>>20)
	}
}

// --max-connections bounds HTTP/2 streams too: one connection cannot queue
// more requests than the limit, the ones past it get a 503 at once.
func TestMaxConnectionsBoundsHTTP2Streams(t *testing.T) {
	const maxConns, clients = 10, 40
	b := newBackend(t, "app")
	b.block = make(chan struct{})
	unblock := sync.OnceFunc(func() { close(b.block) })
	defer unblock()
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second})
	setTarget(t, p, b, 1)
	addr, roots := startTLSProxy(t, p, maxConns)
	hc := sharedH2Client(t, addr, roots)
	answers := make(chan h2Answer, clients)
	for i := 0; i < clients; i++ {
		go func() { answers <- h2Do(hc, http.MethodGet, "https://"+addr+"/block", nil) }()
	}
	var refused []h2Answer
	waitFor(t, "every request to be queued, in the app or refused", func() bool {
		for {
			select {
			case a := <-answers:
				refused = append(refused, a)
				continue
			default:
			}
			break
		}
		return len(refused)+p.Queued()+int(b.inflight.Load()) == clients
	})
	if held := p.Queued() + int(b.inflight.Load()); held > maxConns {
		t.Errorf("%d requests queued or in the app over one connection, --max-connections is %d", held, maxConns)
	}
	for _, a := range refused {
		if a.status != http.StatusServiceUnavailable || a.retry == "" || !strings.Contains(a.body, "too many") || a.proto != 2 {
			t.Errorf("refused stream: HTTP/%d %d, Retry-After %q, body %q", a.proto, a.status, a.retry, a.body)
		}
	}
	unblock()
	for i := len(refused); i < clients; i++ {
		if a := <-answers; a.status != 200 {
			t.Errorf("admitted stream: %d %q", a.status, a.body)
		}
	}
}

// sharedH2Client is a client whose requests share one HTTP/2 connection to addr,
// made before it is returned.
func sharedH2Client(t testing.TB, addr string, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := hc.Get("https://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("first request over %s, want HTTP/2", resp.Proto)
	}
	return hc
}

// h2Answer is what a client got (body: the error when it got nothing).
type h2Answer struct {
	status int
	retry  string
	body   string
	proto  int
}

func h2Do(hc *http.Client, method, url string, body []byte) h2Answer {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		return h2Answer{body: err.Error()}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return h2Answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), resp.ProtoMajor}
}
