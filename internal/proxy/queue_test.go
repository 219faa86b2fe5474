package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The app never sees more than workers requests at once, and nobody fails
// while the queue absorbs a burst bigger than the workers.
func TestAdmissionNeverExceedsWorkers(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		t.Run(itoa(workers), func(t *testing.T) {
			b := newBackend(t, "app")
			p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
			setTarget(t, p, b, workers)
			url := startProxy(t, p)
			var wg sync.WaitGroup
			errs := make(chan string, 200)
			for i := 0; i < 60; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := get(context.Background(), url+"/sleep?d=5ms")
					if r.err != nil || r.status != 200 {
						errs <- r.body + ": " + errString(r.err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Errorf("request failed: %s", e)
			}
			if got := b.peak.Load(); got > int64(workers) {
				t.Fatalf("app saw %d concurrent requests, workers is %d", got, workers)
			}
			if got := b.peak.Load(); got < int64(workers) {
				t.Errorf("app saw at most %d concurrent requests: the proxy under-used %d workers", got, workers)
			}
			if q := p.Queued(); q != 0 {
				t.Errorf("queue not empty after the burst: %d", q)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// queueInOrder occupies the only worker, queues requests 1..n one after the
// other, frees the worker, and returns the order in which the app saw them.
func queueInOrder(t *testing.T, discipline string, n int) []string {
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second, Discipline: discipline})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); get(context.Background(), url+"/hold") }()
	waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); get(context.Background(), url+"/x?n="+itoa(i)) }()
		waitFor(t, "request "+itoa(i)+" to queue", func() bool { return p.Queued() == i })
	}
	close(b.hold)
	wg.Wait()
	return b.arrivals()
}

func TestQueueOrder(t *testing.T) {
	tests := []struct {
		discipline string
		want       string
	}{
		{DisciplineFIFO, "1,2,3,4,5"},
		{DisciplineLIFO, "5,4,3,2,1"},
		{DisciplineAdaptive, "1,2,3,4,5"}, // a short queue: FIFO
	}
	for _, tt := range tests {
		t.Run(tt.discipline, func(t *testing.T) {
			if got := strings.Join(queueInOrder(t, tt.discipline, 5), ","); got != tt.want {
				t.Fatalf("app saw requests in order %s, want %s", got, tt.want)
			}
		})
	}
}

// A request that waited the queue timeout gets a 503 with Retry-After and
// never reaches the app; so does one arriving at a full queue, at once.
func TestShedding(t *testing.T) {
	tests := []struct {
		name      string
		queueSize int
		timeout   time.Duration
		queued    int // requests already waiting before the one under test
	}{
		{"timeout", 0, 150 * time.Millisecond, 0},
		{"full", 2, 30 * time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			b.hold = make(chan struct{})
			defer close(b.hold)
			p := newProxy(t, Config{QueueTimeout: tt.timeout, QueueSize: tt.queueSize})
			setTarget(t, p, b, 1)
			url := startProxy(t, p)
			go get(context.Background(), url+"/hold")
			waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := 0; i < tt.queued; i++ {
				go get(ctx, url+"/hold?n=q")
			}
			waitFor(t, "the queue to fill", func() bool { return p.Queued() == tt.queued })

			start := time.Now()
			r := get(context.Background(), url+"/x?n=shed")
			waited := time.Since(start)
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503 (body %q, err %v)", r.status, r.body, r.err)
			}
			if r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if tt.queued == 0 && waited < tt.timeout {
				t.Errorf("shed after %v, before the queue timeout %v", waited, tt.timeout)
			}
			if tt.queued > 0 && waited >= tt.timeout {
				t.Errorf("a full queue shed after %v: it must answer at once", waited)
			}
			for _, n := range b.arrivals() {
				if n == "shed" {
					t.Fatalf("the shed request reached the app")
				}
			}
			snap := p.Stats().Snapshot()
			want := ShedReasons{QueueTimeout: 1}
			if tt.queued > 0 {
				want = ShedReasons{QueueFull: 1}
			}
			if snap.Shed != 1 || snap.ShedReasons != want {
				t.Errorf("shed %d by %+v, want 1 by %+v", snap.Shed, snap.ShedReasons, want)
			}
		})
	}
}

// A client that goes away while queued leaves the queue at once, and its
// place is not handed a slot later.
func TestClientCancelLeavesQueue(t *testing.T) {
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	p := newProxy(t, Config{QueueTimeout: 30 * time.Second})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	go get(context.Background(), url+"/hold")
	waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- get(ctx, url+"/x?n=gone") }()
	waitFor(t, "the request to queue", func() bool { return p.Queued() == 1 })
	cancel()
	<-done
	waitFor(t, "the cancelled request to leave the queue", func() bool { return p.Queued() == 0 })

	close(b.hold)
	r := get(context.Background(), url+"/x?n=after")
	if r.status != 200 {
		t.Fatalf("request after the cancel: %d %v", r.status, r.err)
	}
	for _, n := range b.arrivals() {
		if n == "gone" {
			t.Fatal("a request whose client left reached the app")
		}
	}
	if got := b.peak.Load(); got > 1 {
		t.Fatalf("app peak %d > 1 worker", got)
	}
}

// Health checks skip the queue: they pass while every worker is busy and
// the queue is shedding.
func TestHealthBypass(t *testing.T) {
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	defer close(b.hold)
	p := newProxy(t, Config{QueueTimeout: 100 * time.Millisecond, HealthPath: "/up"})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	go get(context.Background(), url+"/hold")
	waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })

	if r := get(context.Background(), url+"/busy"); r.status != 503 {
		t.Fatalf("queued path: %d, want 503 while the worker is held", r.status)
	}
	for i := 0; i < 5; i++ {
		if r := get(context.Background(), url+"/up"); r.status != 200 || r.body != "app" {
			t.Fatalf("health check %d: %d %q %v", i, r.status, r.body, r.err)
		}
	}
	if r := get(context.Background(), url+"/up/not-health"); r.status != 503 {
		t.Fatalf("a path below the health path must queue: got %d", r.status)
	}
}

// Without an app a request gets a 503 at once, counted apart: not shed,
// since no capacity was short.
func TestNoTarget(t *testing.T) {
	var buf strings.Builder
	al, _ := NewAccessLog(&lockedWriter{w: &buf}, "%ST %E")
	p := newProxy(t, Config{AccessLog: al})
	url := startProxy(t, p)
	for _, path := range []string{"/", DefaultHealthPath} {
		r := get(context.Background(), url+path)
		if r.status != 503 || !strings.Contains(r.body, "no app") || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s without a target: %d %q", path, r.status, r.body)
		}
	}
	snap := p.Stats().Snapshot()
	if snap.Shed != 0 || snap.ShedReasons != (ShedReasons{NoApp: 2}) {
		t.Fatalf("shed %d by %+v: want none shed, 2 without an app", snap.Shed, snap.ShedReasons)
	}
	if w := p.Report().Windows.Last1m; w.Shed != 0 || w.ShedReasons.NoApp != 2 || w.ShedRate != 0 {
		t.Fatalf("1m window: shed %d by %+v", w.Shed, w.ShedReasons)
	}
	waitFor(t, "the log lines", func() bool { return strings.Count(buf.String(), "\n") == 2 })
	if got := buf.String(); got != "503 \"no app\"\n503 \"no app\"\n" {
		t.Fatalf("log %q: want the reason \"no app\"", got)
	}
}

// An adaptive queue that FIFO would make shed sheds the oldest waiters at
// once (503, Retry-After, reason overload) and serves the newest; the app
// never holds more than its workers, and nobody waits the queue timeout.
func TestOverloadShedsAtOnce(t *testing.T) {
	var buf strings.Builder
	al, _ := NewAccessLog(&lockedWriter{w: &buf}, "%ST %E")
	b := newBackend(t, "app")
	p := newProxy(t, Config{AccessLog: al, QueueTimeout: 20 * time.Second})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	if r := get(context.Background(), url+"/sleep?d=50ms"); r.status != 200 { // the app's service time
		t.Fatalf("first request: %d %v", r.status, r.err)
	}
	// 500 requests of 50 ms at once: FIFO would need 25 s for them.
	const n = 500
	codes := make(chan result, n)
	for range n {
		go func() { codes <- get(context.Background(), url+"/sleep?d=50ms") }()
	}
	ok, shed := 0, 0
	for range n {
		switch r := <-codes; {
		case r.status == 200:
			ok++
		case r.status == 503 && r.header.Get("Retry-After") != "":
			shed++
		default:
			t.Fatalf("status %d %q %v", r.status, r.body, r.err)
		}
	}
	snap := p.Stats().Snapshot()
	q := p.QueueState()
	if shed == 0 || snap.ShedReasons.Overload != uint64(shed) || snap.ShedReasons.QueueTimeout != 0 || q.Overloads == 0 {
		t.Fatalf("%d ok, %d shed; shed by %+v; queue %+v: want overload sheds and no queue timeout", ok, shed, snap.ShedReasons, q)
	}
	if got := b.peak.Load(); got > 1 {
		t.Fatalf("the app held %d requests at once, workers is 1", got)
	}
	waitFor(t, "the log lines", func() bool { return strings.Count(buf.String(), "\n") == n+1 })
	if got := strings.Count(buf.String(), "503 \"overload\""); got != shed {
		t.Fatalf("%d log lines with reason overload, %d shed", got, shed)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative queue timeout", Config{QueueTimeout: -1}, "queue timeout"},
		{"negative queue size", Config{QueueSize: -1}, "queue size"},
		{"relative health path", Config{HealthPath: "up"}, "health path"},
		{"scheme", Config{Scheme: "ftp"}, "scheme"},
		{"discipline", Config{Discipline: "random"}, "discipline"},
		{"header", Config{ResponseHeaders: []Header{{Name: "Bad Name", Value: "x"}}}, "header"},
		{"header name not a token", Config{ResponseHeaders: []Header{{Name: "Bad(Name)", Value: "x"}}}, `response header "Bad(Name)": invalid name`},
		{"header value with a bell", Config{ResponseHeaders: []Header{{Name: "X-A", Value: "a\x07b"}}}, `response header "X-A": value has a control character`},
		{"header value with NUL", Config{ResponseHeaders: []Header{{Name: "X-A", Value: "a\x00"}}}, "control character"},
		{"header value with LF", Config{ResponseHeaders: []Header{{Name: "X-A", Value: "a\nb"}}}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{ResponseHeaders: []Header{{Name: "X-Ok", Value: "a\tb c"}}}); err != nil {
		t.Fatalf("a tab in a header value: %v", err)
	}
	if _, err := NewStatic(StaticConfig{Dir: t.TempDir(), Headers: []Header{{Name: "Bad(Name)", Value: "x"}}}, nil); err == nil ||
		!strings.Contains(err.Error(), "invalid name") {
		t.Fatalf("NewStatic with a bad header name: %v", err)
	}
	p := newProxy(t, Config{})
	if _, _, err := p.SetTarget("x", "127.0.0.1:1", 0); err == nil {
		t.Fatal("SetTarget with 0 workers: no error")
	}
}

// The health path skips the queue for GET and HEAD, at most
// DefaultHealthInFlight at once; past that, and for other methods, a health
// request waits in the queue as any other. Eight slow health checks at once
// never put more than workers + DefaultHealthInFlight in the app.
func TestHealthBypassCapped(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		n         int
		wantOK    int // answered by the app; the rest wait for the busy worker and get a 503
		wantSlots int
	}{
		{"GET, eight at once", http.MethodGet, 8, DefaultHealthInFlight, DefaultHealthInFlight},
		{"HEAD, eight at once", http.MethodHead, 8, DefaultHealthInFlight, DefaultHealthInFlight},
		{"POST queues", http.MethodPost, 2, 0, 0},
		{"DELETE queues", http.MethodDelete, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			b.block = make(chan struct{})
			defer close(b.block)
			p := newProxy(t, Config{QueueTimeout: 400 * time.Millisecond, HealthPath: "/sleep"})
			setTarget(t, p, b, 1)
			url := startProxy(t, p)
			go get(context.Background(), url+"/block")
			waitFor(t, "the worker to be taken", func() bool { return b.inflight.Load() == 1 })
			codes := make(chan int, tt.n)
			for i := 0; i < tt.n; i++ {
				go func() {
					req, _ := http.NewRequest(tt.method, url+"/sleep?d=300ms", nil)
					resp, err := client.Do(req)
					if err != nil {
						codes <- 0
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes <- resp.StatusCode
				}()
			}
			ok := 0
			for i := 0; i < tt.n; i++ {
				switch c := <-codes; c {
				case 200:
					ok++
				case 503:
				default:
					t.Errorf("health request: status %d", c)
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d health requests answered by the app, want %d (the rest queue behind the busy worker)", ok, tt.wantOK)
			}
			if got, max := b.peak.Load(), int64(1+tt.wantSlots); got > max {
				t.Errorf("the app held %d requests at once, want at most %d", got, max)
			}
		})
	}
}
