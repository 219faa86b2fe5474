package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a raw-TCP app: each connection's requests go to answer, which
// writes the raw response and reports whether the connection stays open.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
	bodies   chan string
	wg       sync.WaitGroup
}

func newServer(t *testing.T, answer func(c net.Conn, req *http.Request, n int) bool) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, bodies: make(chan string, 100)}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.Header.Get("Expect") == "" {
						b, _ := io.ReadAll(req.Body)
						s.bodies <- string(b)
					}
					if !answer(c, req, n) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func ok(c net.Conn, _ *http.Request, _ int) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return err == nil
}

// roundTrip sends req and reads the whole body.
func roundTrip(p *Pool, req *Request) (int, string, error) {
	var x Exchange
	if err := p.Send(&x, req); err != nil {
		return 0, "", err
	}
	defer x.Close()
	b, err := io.ReadAll(&x)
	return x.Status, string(b), err
}

// An idle connection the app closed is found by the probe before it is
// used: a POST whose body cannot be sent twice goes out on a new one.
func TestProbeFindsClosedIdle(t *testing.T) {
	s := newServer(t, func(c net.Conn, r *http.Request, n int) bool {
		ok(c, r, n)
		return false // closes after every answer, without saying so
	})
	p := New(Config{Addr: s.ln.Addr().String()})
	defer p.Close()
	for i := range 3 {
		if i > 0 {
			time.Sleep(20 * time.Millisecond) // the close reaches us; still under RiskyIdle
		}
		body := strings.NewReader("abc")
		code, got, err := roundTrip(p, &Request{Method: "POST", Host: "h", Body: body, ContentLength: 3})
		if err != nil || code != 200 || got != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, got, err)
		}
	}
	if n := s.accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// A response head over the limit fails the exchange.
func TestHeadLimit(t *testing.T) {
	s := newServer(t, func(c net.Conn, _ *http.Request, _ int) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 2000)+"\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	p := New(Config{Addr: s.ln.Addr().String(), MaxHeaderBytes: 1024})
	defer p.Close()
	if _, _, err := roundTrip(p, &Request{Method: "GET", Host: "h"}); !errors.Is(err, errHeadTooLarge) {
		t.Fatalf("err %v, want errHeadTooLarge", err)
	}
}

// A field net/http would refuse to send is refused before anything goes
// out.
func TestRequestChecks(t *testing.T) {
	s := newServer(t, ok)
	p := New(Config{Addr: s.ln.Addr().String()})
	defer p.Close()
	for _, req := range []*Request{
		{Method: "GET", Host: "h", Header: http.Header{"X-A": {"a\r\nX-Smuggled: 1"}}},
		{Method: "GET", Host: "h", Header: http.Header{"Bad Name": {"v"}}},
		{Method: "GET", Host: "h", Set: []Field{{"X-B", "a\nb"}}},
		{Method: "GET", Host: "h\r\nX: y"},
		{Method: "G T", Host: "h"},
	} {
		if _, _, err := roundTrip(p, req); err == nil {
			t.Errorf("%+v: sent", req)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if len(s.bodies) != 0 {
		t.Fatalf("%d requests reached the app", len(s.bodies))
	}
}

// With Expect: 100-continue, an app that answers at once without 100 never
// gets the body, and the connection is not reused; one that answers 100
// gets it.
func TestExpectContinue(t *testing.T) {
	s := newServer(t, func(c net.Conn, r *http.Request, _ int) bool {
		if r.URL.Path == "/no" {
			io.WriteString(c, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		b, _ := io.ReadAll(r.Body)
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"+string(b))
		return err == nil
	})
	p := New(Config{Addr: s.ln.Addr().String()})
	defer p.Close()
	expect := http.Header{"Expect": {"100-continue"}}
	code, got, err := roundTrip(p, &Request{Method: "PUT", Path: "/yes", Host: "h", Header: expect,
		Body: strings.NewReader("abc"), ContentLength: 3})
	if err != nil || code != 200 || got != "abc" {
		t.Fatalf("yes: %d %q %v", code, got, err)
	}
	var read atomic.Bool
	body := readerFunc(func(b []byte) (int, error) { read.Store(true); return 0, io.EOF })
	code, _, err = roundTrip(p, &Request{Method: "PUT", Path: "/no", Host: "h", Header: expect,
		Body: body, ContentLength: -1})
	if err != nil || code != 417 || read.Load() {
		t.Fatalf("no: %d %v, body read %v", code, err, read.Load())
	}
	if p.Idle() != 0 {
		t.Fatal("the connection whose body was never sent went back to the pool")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// A request that cannot be sent twice takes no connection idle past
// RiskyIdle (50 ms) until connections are seen to outlive longer idle
// times: then half the longest such time.
func TestRiskyIdleLearns(t *testing.T) {
	s := newServer(t, ok)
	p := New(Config{Addr: s.ln.Addr().String()})
	defer p.Close()
	// Idle times come from the pool's clock, moved by hand: the thresholds
	// are tens of milliseconds, and a busy machine's sleeps overshoot them.
	var mu sync.Mutex
	now := time.Now()
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sleep := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	post := func() {
		t.Helper()
		code, _, err := roundTrip(p, &Request{Method: "POST", Host: "h", Body: strings.NewReader("abc"), ContentLength: 3, Buffered: true})
		if err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
	}
	post()
	sleep(60 * time.Millisecond)
	post() // 60 ms: past RiskyIdle, a new connection (the old one, probed open, goes back)
	if n := s.accepted.Load(); n != 2 {
		t.Fatalf("%d connections after an idle 60 ms, want 2", n)
	}
	sleep(150 * time.Millisecond)
	post() // 150 ms, found open: from now on up to 75 ms is fine
	sleep(60 * time.Millisecond)
	post()
	if n := s.accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3: the last POST should have reused one idle 60 ms", n)
	}
}
