package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The lean path against raw-TCP apps that misbehave on purpose.

var (
	streamed = Config{}
	buffered = Config{BufferRequests: true, BufferResponses: true}
	// bothModes are the tests' two ways through the proxy.
	bothModes = []struct {
		name string
		cfg  Config
	}{{"buffered", buffered}, {"streamed", streamed}}
)

// leanProxy serves a proxy in front of app (4 workers) for the test.
func leanProxy(t *testing.T, app *rawApp, cfg Config) (*Proxy, *Target, string) {
	t.Helper()
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 10 * time.Second
	}
	p := newProxy(t, cfg)
	tg, _, err := p.SetTarget("raw", app.addr(), 4)
	if err != nil {
		t.Fatal(err)
	}
	return p, tg, startProxy(t, p)
}

// echoLen answers 200 with the method and the body's length.
func echoLen(c *rawConn, req *rawReq) bool {
	return reply(c, 200, req.Method+" "+strconv.Itoa(len(req.body)), "Content-Type: text/plain")
}

func do(t *testing.T, method, url, body string, h ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// An app that closes connections idle for 100 ms, with GETs and POSTs
// coming 100 ms apart: every one of them is answered (the proxy finds the
// closed connections, or retries when that is safe), none gets a 502.
func TestLeanIdleCloseNoFailures(t *testing.T) {
	for _, cfg := range bothModes {
		t.Run(cfg.name, func(t *testing.T) {
			app := newRawApp(t, 100*time.Millisecond, echoLen)
			_, _, url := leanProxy(t, app, cfg.cfg)
			body := strings.Repeat("x", 4096)
			for i := range 16 {
				var r result
				if i%2 == 0 {
					r = do(t, "GET", url+"/g", "")
				} else {
					r = do(t, "POST", url+"/p", body)
				}
				want := map[bool]string{true: "GET 0", false: "POST 4096"}[i%2 == 0]
				if r.err != nil || r.status != 200 || r.body != want {
					t.Fatalf("request %d: %v %d %q, want 200 %q", i, r.err, r.status, r.body, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n := app.accepted.Load(); n < 8 {
				t.Fatalf("the app accepted %d connections: it did not close idle ones", n)
			}
		})
	}
}

// A kept-alive connection that dies once the app has the request: a GET is
// sent again on a new connection, a POST is not (the app may have acted on
// it) and gets a 502.
func TestLeanRetryRule(t *testing.T) {
	for _, tc := range []struct {
		method    string
		wantCode  int
		wantTimes int64 // the failing request as the app saw it
	}{{"GET", 200, 2}, {"POST", http.StatusBadGateway, 1}} {
		t.Run(tc.method, func(t *testing.T) {
			var mu sync.Mutex
			var seen int64
			app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
				if req.URL.Path != "/die" {
					return echoLen(c, req)
				}
				mu.Lock()
				seen++
				first := seen == 1
				mu.Unlock()
				if first {
					return false // read, then closed without an answer
				}
				return echoLen(c, req)
			})
			_, _, url := leanProxy(t, app, buffered)
			if r := do(t, "GET", url+"/warm", ""); r.status != 200 {
				t.Fatalf("warm-up: %d %v", r.status, r.err)
			}
			r := do(t, tc.method, url+"/die", "abc")
			if r.status != tc.wantCode {
				t.Fatalf("%s: status %d %q, want %d", tc.method, r.status, r.body, tc.wantCode)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen != tc.wantTimes {
				t.Fatalf("the app saw the %s %d times, want %d", tc.method, seen, tc.wantTimes)
			}
		})
	}
}

// Keep-alive: sequential requests share one connection; an app's
// Connection: close is honoured (a new connection for each).
func TestLeanReuse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		field string
		want  int64
	}{{"kept alive", "X-Keep: 1", 1}, {"close", "Connection: close", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
				return reply(c, 200, "ok", tc.field) && tc.want == 1
			})
			_, _, url := leanProxy(t, app, buffered)
			for range 5 {
				if r := get(context.Background(), url+"/"); r.status != 200 || r.body != "ok" {
					t.Fatalf("%d %q %v", r.status, r.body, r.err)
				}
			}
			if n := app.accepted.Load(); n != tc.want {
				t.Fatalf("%d connections, want %d", n, tc.want)
			}
		})
	}
}

// Expect: 100-continue reaches an app that answers 100, and the body
// follows; an app that refuses before reading gets no body and the client
// its answer. 103 Early Hints reach the client before the answer.
func TestLeanInformational(t *testing.T) {
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		switch req.URL.Path {
		case "/continue":
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			b, err := io.ReadAll(io.LimitReader(c.br, req.ContentLength))
			if err != nil {
				return false
			}
			return reply(c, 200, "got "+strconv.Itoa(len(b)))
		case "/refuse":
			reply(c, 403, "no", "Connection: close")
			return false
		case "/hints":
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
			return reply(c, 200, "hinted")
		}
		return echoLen(c, req)
	})
	_, _, url := leanProxy(t, app, streamed)
	ec := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	defer ec.CloseIdleConnections()
	post := func(path string) (int, string) {
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(strings.Repeat("b", 1000)))
		req.Header.Set("Expect", "100-continue")
		resp, err := ec.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/continue"); code != 200 || body != "got 1000" {
		t.Fatalf("continue: %d %q", code, body)
	}
	if !strings.Contains(app.lastHead(), "Expect: 100-continue") {
		t.Fatalf("the app did not get Expect: %q", app.lastHead())
	}
	if code, body := post("/refuse"); code != 403 || body != "no" {
		t.Fatalf("refuse: %d %q", code, body)
	}
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/hints", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hinted" || len(hints) != 1 || hints[0] != "103 </s.css>; rel=preload" {
		t.Fatalf("hints %q, body %q", hints, b)
	}
}

// Response bodies by every framing, and the broken ones.
func TestLeanResponseFraming(t *testing.T) {
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		w := func(s string) bool { _, err := io.WriteString(c, s); return err == nil }
		switch req.URL.Path {
		case "/chunked":
			return w("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		case "/close":
			w("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
			return false
		case "/longer": // 5 bytes announced, 10 sent: the rest must not be read as the next answer
			return w("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
		case "/shorter":
			w("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
			return false
		case "/midchunk":
			w("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			return false
		case "/head":
			return w("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
		case "/204":
			return w("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
		case "/304":
			return w("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
		}
		return echoLen(c, req)
	})
	for _, cfg := range bothModes {
		t.Run(cfg.name, func(t *testing.T) {
			_, _, url := leanProxy(t, app, cfg.cfg)
			for _, tc := range []struct{ method, path, want string }{
				{"GET", "/chunked", "200 hello world"},
				{"GET", "/close", "200 until close"},
				{"GET", "/longer", "200 hello"},
				{"GET", "/after", "200 GET 0"},
				{"HEAD", "/head", "200 "},
				{"GET", "/after", "200 GET 0"},
				{"GET", "/204", "204 "},
				{"GET", "/304", "304 "},
				{"GET", "/after", "200 GET 0"},
			} {
				r := do(t, tc.method, url+tc.path, "")
				if got := strconv.Itoa(r.status) + " " + r.body; r.err != nil || got != tc.want {
					t.Fatalf("%s %s: %q %v, want %q", tc.method, tc.path, got, r.err, tc.want)
				}
				if tc.method == "HEAD" && r.header.Get("Content-Length") != "1234" {
					t.Fatalf("HEAD: Content-Length %q, want the app's 1234", r.header.Get("Content-Length"))
				}
			}
			for _, path := range []string{"/shorter", "/midchunk"} {
				r := do(t, "GET", url+path, "")
				if cfg.name == "buffered" && (r.status != http.StatusBadGateway || !strings.Contains(r.body, "broke off")) {
					t.Fatalf("%s: %d %q, want the proxy's 502", path, r.status, r.body)
				}
				if cfg.name == "streamed" && r.err == nil {
					t.Fatalf("%s: the client got a whole response (%d %q) from a broken one", path, r.status, r.body)
				}
			}
		})
	}
}

// Trailers the app announced reach the client as trailers, and so do
// those it did not announce.
func TestLeanTrailers(t *testing.T) {
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Late: yes\r\n\r\n")
		return err == nil
	})
	_, _, url := leanProxy(t, app, buffered)
	resp, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Fatalf("body %q, trailer %v", b, resp.Trailer)
	}
}

// An app that never answers gets a 504 after the upstream timeout.
func TestLeanNeverAnswers(t *testing.T) {
	done := make(chan struct{})
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		<-done
		return false
	})
	t.Cleanup(func() { close(done) }) // runs before the app's cleanup
	_, _, url := leanProxy(t, app, Config{UpstreamTimeout: 200 * time.Millisecond})
	if r := get(context.Background(), url+"/"); r.status != http.StatusGatewayTimeout {
		t.Fatalf("status %d %q, want 504", r.status, r.body)
	}
}

// A response head the proxy cannot pass on as it came is a 502.
func TestLeanBadResponseHead(t *testing.T) {
	heads := map[string]string{
		"/name":     "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
		"/fold":     "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
		"/status":   "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
		"/proto":    "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"/twocl":    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"/badcl":    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"/te":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"/ctl":      "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
		"/huge":     "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Big: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "\r\n",
		"/upgraded": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
	}
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		io.WriteString(c, heads[req.URL.Path])
		return false
	})
	_, _, url := leanProxy(t, app, buffered)
	for path := range heads {
		if r := get(context.Background(), url+path); r.status != http.StatusBadGateway {
			t.Errorf("%s: status %d %q, want 502", path, r.status, r.body)
		}
	}
}

// The request the app gets is well-formed whatever the client sent: one
// framing, no hop-by-hop fields (nor those the client's Connection names),
// the proxy's X-Forwarded-* and request id; a query net/url cannot read
// dropped (as ReverseProxy does).
func TestLeanRequestFraming(t *testing.T) {
	app := newRawApp(t, 0, echoLen)
	for _, cfg := range bothModes {
		t.Run(cfg.name, func(t *testing.T) {
			_, _, url := leanProxy(t, app, cfg.cfg)
			c := dialRaw(t, url)
			c.send(t, "POST /p?a=1;b=2 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\n"+
				"X-Secret: s\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTe: trailers, deflate\r\n"+
				"X-Forwarded-For: 6.6.6.6\r\nX-Real-Ip: 6.6.6.6\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"3\r\nabc\r\n0\r\n\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "POST 3" {
				t.Fatalf("answer %q", b)
			}
			head := app.lastHead()
			for _, bad := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade", "6.6.6.6", "deflate", ";"} {
				if strings.Contains(head, bad) {
					t.Errorf("the app got %q:\n%s", bad, head)
				}
			}
			framing := strings.Count(head, "Content-Length:") + strings.Count(head, "Transfer-Encoding:")
			want := map[bool]string{true: "Content-Length: 3", false: "Transfer-Encoding: chunked"}[cfg.name == "buffered"]
			if framing != 1 || !strings.Contains(head, want) {
				t.Errorf("framing: want only %q:\n%s", want, head)
			}
			for _, f := range []string{"Host: example.com", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: example.com",
				"X-Forwarded-Proto: http", "X-Request-Id: ", "Te: trailers", "POST /p HTTP/1.1"} {
				if !strings.Contains(head, f) {
					t.Errorf("the app did not get %q:\n%s", f, head)
				}
			}
		})
	}
}

// Once a replaced target has drained, its pooled connections are closed.
func TestLeanPoolClosedOnDrain(t *testing.T) {
	app := newRawApp(t, 0, echoLen)
	other := newBackend(t, "other")
	p, tg, url := leanProxy(t, app, buffered)
	for range 3 {
		if r := get(context.Background(), url+"/"); r.status != 200 {
			t.Fatalf("%d", r.status)
		}
	}
	if app.open.Load() != 1 || tg.up.Idle() != 1 {
		t.Fatalf("open %d, idle %d: want the one kept-alive connection", app.open.Load(), tg.up.Idle())
	}
	setTarget(t, p, other, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tg.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app's connection to close", func() bool { return app.open.Load() == 0 })
	if r := get(context.Background(), url+"/"); r.status != 200 || r.body != "other" {
		t.Fatalf("after the switch: %d %q", r.status, r.body)
	}
}

// A big response is passed on whole, byte for byte, with either buffering.
func TestLeanLargeBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	app := newRawApp(t, 0, func(c *rawConn, req *rawReq) bool {
		if req.Method == "POST" {
			return echoLen(c, req)
		}
		return reply(c, 200, string(big))
	})
	for _, cfg := range []Config{buffered, streamed} {
		_, _, url := leanProxy(t, app, cfg)
		if r := get(context.Background(), url+"/"); r.status != 200 || r.body != string(big) {
			t.Fatalf("GET: %d, %d bytes", r.status, len(r.body))
		}
		if r := do(t, "POST", url+"/", string(big)); r.status != 200 || r.body != "POST 1048576" {
			t.Fatalf("POST: %d %q", r.status, r.body)
		}
	}
}
