package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bufBackend is an app that counts its own concurrency and says when each
// request reached it.
type bufBackend struct {
	*httptest.Server
	inflight, peak, served atomic.Int64
	arrived                chan string // path of each request as it arrives
	release                chan struct{}
}

func newBufBackend(t *testing.T) *bufBackend {
	b := &bufBackend{arrived: make(chan string, 64), release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.inflight.Add(1)
		defer b.inflight.Add(-1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		b.arrived <- r.URL.Path
		defer b.served.Add(1)
		switch {
		case r.URL.Path == "/upload": // the body's length and hash, and how long reading it took
			t0 := time.Now()
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Read-Ms", strconv.FormatInt(time.Since(t0).Milliseconds(), 10))
			w.Header().Set("X-Chunked", strconv.FormatBool(len(r.TransferEncoding) > 0))
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case r.URL.Path == "/echo":
			io.Copy(w, r.Body)
		case r.URL.Path == "/big": // ?n bytes, with a Content-Length unless &chunked
			io.Copy(io.Discard, r.Body)
			size, _ := strconv.Atoi(r.URL.Query().Get("n"))
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			w.Write(bytes.Repeat([]byte("x"), size))
		case strings.HasPrefix(r.URL.Path, "/stream"): // a part, then the rest once released
			if ct := r.URL.Query().Get("ct"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: second\n\n")
		case r.URL.Path == "/broken": // promises more than it sends
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func bufferingProxy(t *testing.T, b *bufBackend, workers int, cfg Config) (*Proxy, string) {
	t.Helper()
	cfg.BufferRequests, cfg.BufferResponses = true, true
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 10 * time.Second
	}
	p := newProxy(t, cfg)
	if _, _, err := p.SetTarget("app", b.Listener.Addr().String(), workers); err != nil {
		t.Fatal(err)
	}
	return p, startProxy(t, p)
}

// trickle is a request body sent in pieces with a pause before each.
type trickle struct {
	left, piece int
	pause       time.Duration
	pending     int          // left of the current piece
	sentAll     atomic.Int64 // unix nanos of the last piece
}

func (tr *trickle) Read(p []byte) (int, error) {
	if tr.left == 0 {
		return 0, io.EOF
	}
	if tr.pending == 0 {
		time.Sleep(tr.pause)
		tr.pending = tr.piece
	}
	n := min(len(p), tr.pending, tr.left)
	for i := range p[:n] {
		p[i] = 'b'
	}
	tr.left -= n
	tr.pending -= n
	if tr.left == 0 {
		tr.sentAll.Store(time.Now().UnixNano())
	}
	return n, nil
}

// A client trickling a 1 MB body never holds the worker: the app sees the
// request only once the body is complete, and with workers=1 another
// request is served meanwhile. Both with a Content-Length and chunked.
func TestBufferSlowRequestBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			b := newBufBackend(t)
			_, url := bufferingProxy(t, b, 1, Config{})
			const size = 1 << 20
			tr := &trickle{left: size, piece: 64 << 10, pause: 50 * time.Millisecond}
			req, _ := http.NewRequest("POST", url+"/upload", tr)
			if !chunked {
				req.ContentLength = size
			}
			done := make(chan result, 1)
			go func() {
				resp, err := client.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- result{status: resp.StatusCode, body: string(body), header: resp.Header}
			}()
			time.Sleep(150 * time.Millisecond) // the upload is under way
			if r := get(context.Background(), url+"/x"); r.status != 200 {
				t.Fatalf("a request during the slow upload: %d %v", r.status, r.err)
			}
			if got := <-b.arrived; got != "/x" {
				t.Fatalf("the app saw %s first, want /x (the upload is still trickling)", got)
			}
			r := <-done
			arrivedAt := time.Now()
			if got := <-b.arrived; got != "/upload" {
				t.Fatalf("the app saw %s", got)
			}
			if r.err != nil || r.status != 200 {
				t.Fatalf("upload: %d %v", r.status, r.err)
			}
			want := fmt.Sprintf("%d %x", size, sha256.Sum256(bytes.Repeat([]byte("b"), size)))
			if r.body != want {
				t.Fatalf("the app got %q, want %q", r.body, want)
			}
			if ms, _ := strconv.Atoi(r.header.Get("X-Read-Ms")); ms > 100 {
				t.Errorf("the app spent %d ms reading the body: it was not buffered", ms)
			}
			if r.header.Get("X-Chunked") != "false" {
				t.Errorf("the app got a chunked body; a buffered one goes with its Content-Length")
			}
			if sent := time.Unix(0, tr.sentAll.Load()); sent.IsZero() || arrivedAt.Before(sent) {
				t.Errorf("the response came before the body was all sent")
			}
			if b.peak.Load() != 1 {
				t.Errorf("the app saw %d requests at once, workers is 1", b.peak.Load())
			}
		})
	}
}

// A client that does not read a 5 MB response does not keep the worker:
// the app's concurrency drops as soon as it has answered, the target's
// in-flight count too (a drain would not wait), and with workers=1 a second
// request is served while the first client still reads nothing.
func TestBufferSlowResponseReader(t *testing.T) {
	b := newBufBackend(t)
	p, url := bufferingProxy(t, b, 1, Config{BufferDir: t.TempDir()})
	tg := p.Active()
	const size = 5 << 20
	slow := dialRaw(t, url)
	slow.send(t, "GET /big?n="+strconv.Itoa(size)+" HTTP/1.1\r\nHost: test\r\n\r\n")
	<-b.arrived
	waitFor(t, "the app to be done with the big response", func() bool { return b.served.Load() == 1 && b.inflight.Load() == 0 })
	waitFor(t, "the target to be free", func() bool { return tg.InFlight() == 0 })
	if n := spoolFiles.Load(); n != 1 {
		t.Errorf("%d spill files open, want 1 (5 MB is over the 1 MiB in memory)", n)
	}
	if r := get(context.Background(), url+"/x"); r.status != 200 || r.body != "ok" {
		t.Fatalf("second request while the first client reads nothing: %d %q %v", r.status, r.body, r.err)
	}
	if cs := p.Connections(); cs.Writing != 1 {
		t.Errorf("connections %+v: want the slow client writing", cs)
	}
	// Now the slow client reads it all.
	slow.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(slow.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size || resp.ContentLength != size {
		t.Fatalf("slow client got %d bytes (Content-Length %d), %v; want %d", n, resp.ContentLength, err, size)
	}
	waitFor(t, "the spill file closed", func() bool { return spoolFiles.Load() == 0 })
}

// Bodies over the limit get a 413, by Content-Length at once, chunked once
// past it, buffered or streamed; the app never sees them.
func TestMaxBody(t *testing.T) {
	b := newBufBackend(t)
	_, url := bufferingProxy(t, b, 1, Config{MaxBody: 1000, NoBufferPrefixes: []string{"/stream"}})
	for _, tc := range []struct {
		name, path string
		size       int
		chunked    bool
		want       int
	}{
		{"length over", "/upload", 1001, false, 413},
		{"chunked over", "/upload", 5000, true, 413},
		{"length at the limit", "/upload", 1000, false, 200},
		{"chunked at the limit", "/upload", 1000, true, 200},
		{"streamed, length over", "/stream", 1001, false, 413},
		{"streamed, chunked over", "/stream/x", 200 << 10, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.served.Load()
			var body io.Reader = bytes.NewReader(make([]byte, tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, _ := http.NewRequest("POST", url+tc.path, body)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 413 && !strings.HasPrefix(tc.path, "/stream") && b.served.Load() != before {
				t.Fatalf("the app saw a body over the limit")
			}
		})
	}
}

// Spill files live only while needed and never in the buffer directory's
// listing: a 1 MB body and a 1 MB response through 64 KiB of memory come
// back intact, and nothing is left.
func TestBufferSpillsAndCleansUp(t *testing.T) {
	b := newBufBackend(t)
	dir := t.TempDir()
	_, url := bufferingProxy(t, b, 1, Config{BufferMemory: 64 << 10, BufferDir: dir})
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for i := 0; i < 3; i++ {
		resp, err := client.Post(url+"/echo", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, payload) {
			t.Fatalf("echo through the spill files: %d bytes, equal %v", len(got), bytes.Equal(got, payload))
		}
	}
	waitFor(t, "the spill files closed", func() bool { return spoolFiles.Load() == 0 })
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left in the buffer dir: %v", ents)
	}
}

// Server-sent events are never buffered: the client has the first event
// while the app is still sending. A streamed response of another type is
// buffered, unless its path is under a no-buffer prefix.
func TestStreamingResponses(t *testing.T) {
	b := newBufBackend(t)
	_, url := bufferingProxy(t, b, 2, Config{NoBufferPrefixes: []string{"/stream/live"}})
	for _, tc := range []struct {
		name, path string
		streamed   bool
	}{
		{"event stream", "/stream?ct=text/event-stream", true},
		{"no-buffer prefix", "/stream/live/x?ct=application/x-ndjson", true},
		{"buffered", "/stream?ct=application/x-ndjson", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A buffered response's headers come only once the app is done:
			// wait for them, and the first event, in a goroutine.
			first := make(chan string, 1)
			rest := make(chan string, 1)
			go func() {
				resp, err := client.Get(url + tc.path)
				if err != nil {
					first <- err.Error()
					rest <- ""
					return
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				line, _ := br.ReadString('\n')
				first <- line
				all, _ := io.ReadAll(br)
				rest <- string(all)
			}()
			select {
			case line := <-first:
				if !tc.streamed {
					t.Fatalf("got %q before the app finished: not buffered", line)
				}
				if line != "data: first\n" {
					t.Fatalf("first event %q", line)
				}
			case <-time.After(300 * time.Millisecond):
				if tc.streamed {
					t.Fatal("no first event while the app is still sending: it was buffered")
				}
			}
			b.release <- struct{}{}
			if !tc.streamed {
				if line := <-first; line != "data: first\n" {
					t.Fatalf("first event %q", line)
				}
			}
			if r := <-rest; !strings.HasSuffix(r, "data: second\n\n") {
				t.Fatalf("rest %q", r)
			}
		})
	}
}

// A request body streamed under a no-buffer prefix reaches the app while the
// client is still sending.
func TestNoBufferPrefixStreamsRequest(t *testing.T) {
	b := newBufBackend(t)
	_, url := bufferingProxy(t, b, 1, Config{NoBufferPrefixes: []string{"/upload"}})
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/upload", pr)
		resp, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(body)}
	}()
	pw.Write([]byte("part one"))
	select {
	case p := <-b.arrived:
		if p != "/upload" {
			t.Fatalf("app saw %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app did not see the streamed request before its body ended")
	}
	pw.Write([]byte(" and two"))
	pw.Close()
	if r := <-done; r.status != 200 || !strings.HasPrefix(r.body, "16 ") {
		t.Fatalf("%d %q %v", r.status, r.body, r.err)
	}
}

// A body that stalls past the client body timeout gets a 408 and never
// reaches the app.
func TestClientBodyTimeout(t *testing.T) {
	b := newBufBackend(t)
	_, url := bufferingProxy(t, b, 1, Config{ClientBodyTimeout: 200 * time.Millisecond})
	c := dialRaw(t, url)
	c.send(t, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789")
	start := time.Now()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("408 after %v", waited)
	}
	if b.served.Load() != 0 {
		t.Fatal("the app saw the stalled request")
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after the 408")
	}
}

// A response that breaks while being buffered has not reached the client:
// it gets a clean 502 and the worker comes back.
func TestBufferedResponseBreaks(t *testing.T) {
	b := newBufBackend(t)
	p, url := bufferingProxy(t, b, 1, Config{})
	r := get(context.Background(), url+"/broken")
	if r.status != http.StatusBadGateway || r.err != nil {
		t.Fatalf("broken buffered response: %d %v, want a 502", r.status, r.err)
	}
	if p.Active().InFlight() != 0 {
		t.Fatal("the slot was not released")
	}
	if r := get(context.Background(), url+"/x"); r.status != 200 {
		t.Fatalf("after: %d", r.status)
	}
}

// A GET without a body and a small response allocates no more with
// buffering than without: nothing is read, the response's memory is pooled.
func TestBufferingGetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	allocs := func(on bool) float64 {
		p, err := New(Config{DisableStats: true, BufferRequests: on, BufferResponses: on})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		tg, _, _ := p.SetTarget("t", "127.0.0.1:1", 1<<20)
		tg.rp.Transport = lengthTransport{}
		req := httptest.NewRequest("GET", "http://x/a", nil)
		w := &deadlineWriter{discardWriter{h: http.Header{}}}
		return testing.AllocsPerRun(200, func() {
			req.Header.Del("X-Request-Id")
			clear(w.h)
			p.ServeHTTP(w, req)
		})
	}
	off, on := allocs(false), allocs(true)
	if on > off {
		t.Fatalf("GET allocates %.0f times with buffering, %.0f without", on, off)
	}
}

// lengthTransport answers as memoryTransport does, with the Content-Length
// header a real transport's response has.
type lengthTransport struct{}

func (lengthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := memoryTransport{}.RoundTrip(r)
	resp.Header["Content-Length"] = []string{strconv.Itoa(len(memoryBody))}
	return resp, err
}

// deadlineWriter has the deadlines and flushing of net/http's writer.
type deadlineWriter struct{ discardWriter }

func (*deadlineWriter) SetReadDeadline(time.Time) error  { return nil }
func (*deadlineWriter) SetWriteDeadline(time.Time) error { return nil }
func (*deadlineWriter) FlushError() error                { return nil }

// With buffering, the log's app time is still the time to the app's
// response headers, not to its last byte nor the client's.
func TestBufferedAccessLog(t *testing.T) {
	b := newBufBackend(t)
	logs := &syncLog{}
	al, _ := NewAccessLog(logs, "%HU %ST %Tr %B")
	_, url := bufferingProxy(t, b, 1, Config{AccessLog: al})
	if r := get(context.Background(), url+"/big?n=300000&chunked=1"); r.status != 200 || len(r.body) != 300000 {
		t.Fatalf("%d %d", r.status, len(r.body))
	}
	waitFor(t, "the log line", func() bool { return strings.Contains(logs.String(), "/big?n=300000&chunked=1 200 ") })
	if !strings.HasSuffix(strings.TrimSpace(logs.String()), " 300000") {
		t.Fatalf("log %q: want the bytes sent", logs.String())
	}
}

// syncLog is an access-log destination a test may read while requests run.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An unbuffered request body and a big response: net/http must not close
// the body under the transport when the response headers go out (the
// transport then dropped the app connection and the client got a cut
// response). Several clients at once make the race likely.
func TestStreamedBodyFullResponse(t *testing.T) {
	b := newBufBackend(t)
	go func() {
		for range b.arrived {
		}
	}()
	p := newProxy(t, Config{QueueTimeout: 10 * time.Second})
	p.SetTarget("app", b.Listener.Addr().String(), 8)
	url := startProxy(t, p)
	const size = 256 << 10
	body := make([]byte, size)
	rounds := 400
	if raceEnabled { // slower, and the race is rarely hit there
		rounds = 50
	}
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < rounds; i++ {
				resp, err := client.Post(url+"/big?n="+strconv.Itoa(size), "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != size {
					errs <- fmt.Errorf("request %d: %d of %d bytes: %v", i, n, size, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
