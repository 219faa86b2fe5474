package h1

// The server's own life: timeouts, Shutdown, Close, ConnState, the
// request's context and http.ResponseController, checked on h1 alone
// (net/http's results here would depend on its background read).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve runs s on a loopback port until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	if s.ErrorLog == nil {
		s.ErrorLog = quietLog
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// readResp reads one response and its body.
func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// expectClosed reads until the server closes: nothing more may come, and
// the close must come before the connection's deadline.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", within)
	}
	if len(b) > 0 {
		t.Fatalf("unexpected bytes before close: %q", b)
	}
}

// expectOpen checks that the server keeps the connection for a moment.
func expectOpen(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := br.Peek(1)
	var ne net.Error
	if !(errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection not kept: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
}

func ok(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name string
		srv  serverConfig
		// talk sends what the client sends before it waits for the close.
		talk func(t *testing.T, c net.Conn, br *bufio.Reader)
	}{
		{
			// A slowloris client: the request line, then nothing.
			name: "ReadHeaderTimeout, first request",
			srv:  serverConfig{ReadHeaderTimeout: 200 * time.Millisecond},
			talk: func(t *testing.T, c net.Conn, br *bufio.Reader) { send(t, c, "GET / HTTP/1.1\r\n") },
		},
		{
			// The same on a kept-alive connection's second request.
			name: "ReadHeaderTimeout, second request",
			srv:  serverConfig{ReadHeaderTimeout: 200 * time.Millisecond},
			talk: func(t *testing.T, c net.Conn, br *bufio.Reader) {
				send(t, c, get)
				readResp(t, br)
				send(t, c, "GET / HTTP/1.1\r\nHost: x\r\n")
			},
		},
		{
			name: "IdleTimeout",
			srv:  serverConfig{IdleTimeout: 200 * time.Millisecond},
			talk: func(t *testing.T, c net.Conn, br *bufio.Reader) {
				send(t, c, get)
				readResp(t, br)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &Server{Handler: http.HandlerFunc(ok), ReadHeaderTimeout: tc.srv.ReadHeaderTimeout, IdleTimeout: tc.srv.IdleTimeout}
			c, br := dial(t, serve(t, s))
			tc.talk(t, c, br)
			expectClosed(t, c, br, 3*time.Second)
		})
	}
}

// blocking is a handler that signals its start and waits for release.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocking(t *testing.T) *blocking {
	b := &blocking{entered: make(chan struct{}, 8), release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
	})
	return b
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	<-b.release
	_, _ = io.WriteString(w, "done")
}

func (b *blocking) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(3 * time.Second):
		t.Fatal("handler not called")
	}
}

func TestShutdown(t *testing.T) {
	t.Run("idle connection closed", func(t *testing.T) {
		s := &Server{Handler: http.HandlerFunc(ok)}
		c, br := dial(t, serve(t, s))
		send(t, c, get)
		readResp(t, br)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		expectClosed(t, c, br, 3*time.Second)
	})

	t.Run("request in flight completes", func(t *testing.T) {
		b := newBlocking(t)
		s := &Server{Handler: b}
		began := make(chan struct{})
		s.RegisterOnShutdown(func() { close(began) })
		c, br := dial(t, serve(t, s))
		send(t, c, get)
		b.waitEntered(t)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			done <- s.Shutdown(ctx)
		}()
		<-began // Shutdown has begun, the handler still runs
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned before the request ended: %v", err)
		default:
		}
		close(b.release)
		resp, body := readResp(t, br)
		// ReadResponse takes Connection: close out of the header into Close.
		if body != "done" || !resp.Close {
			t.Errorf("response during Shutdown: body %q, close %v", body, resp.Close)
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		expectClosed(t, c, br, 3*time.Second)
	})

	t.Run("ctx ends first", func(t *testing.T) {
		b := newBlocking(t)
		s := &Server{Handler: b}
		c, _ := dial(t, serve(t, s))
		send(t, c, get)
		b.waitEntered(t)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown with a blocked handler: %v, want %v", err, context.DeadlineExceeded)
		}
	})

	// A listener that fails to close does not cut the graceful stop
	// short: the request in flight still ends first, then the error is
	// returned (as net/http's Shutdown does).
	t.Run("listener close error", func(t *testing.T) {
		b := newBlocking(t)
		s := &Server{Handler: b, ErrorLog: quietLog}
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &badCloseListener{Listener: inner}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		t.Cleanup(func() { _ = s.Close(); <-served })
		c, br := dial(t, inner.Addr().String())
		send(t, c, get)
		b.waitEntered(t)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(context.Background()) }()
		time.Sleep(50 * time.Millisecond) // time for a Shutdown that does not wait to return
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned before the request ended: %v", err)
		default:
		}
		close(b.release)
		readResp(t, br)
		if err := <-done; !errors.Is(err, errBadClose) {
			t.Errorf("Shutdown: %v, want %v", err, errBadClose)
		}
	})

	t.Run("Serve returns ErrServerClosed", func(t *testing.T) {
		s := &Server{Handler: http.HandlerFunc(ok), ErrorLog: quietLog}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		_, _ = dial(t, ln.Addr().String()) // Serve is accepting
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
}

func TestCloseActive(t *testing.T) {
	b := newBlocking(t)
	s := &Server{Handler: b}
	c, br := dial(t, serve(t, s))
	send(t, c, get)
	b.waitEntered(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed by Close: %v", err)
	}
}

func TestConnState(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		talk    func(t *testing.T, c net.Conn, br *bufio.Reader)
		want    []http.ConnState
	}{
		{
			name:    "keep-alive, two requests",
			handler: ok,
			talk: func(t *testing.T, c net.Conn, br *bufio.Reader) {
				send(t, c, get)
				readResp(t, br)
				send(t, c, get)
				readResp(t, br)
				c.Close()
			},
			want: []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateIdle, http.StateClosed},
		},
		{
			name: "hijacked",
			handler: func(w http.ResponseWriter, r *http.Request) {
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
			},
			talk: func(t *testing.T, c net.Conn, br *bufio.Reader) {
				send(t, c, get)
				_, _ = io.ReadAll(br)
			},
			want: []http.ConnState{http.StateNew, http.StateActive, http.StateHijacked},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []http.ConnState
			last := make(chan struct{})
			s := &Server{Handler: tc.handler, ConnState: func(_ net.Conn, st http.ConnState) {
				mu.Lock()
				got = append(got, st)
				if st == tc.want[len(tc.want)-1] {
					close(last)
				}
				mu.Unlock()
			}}
			c, br := dial(t, serve(t, s))
			tc.talk(t, c, br)
			select {
			case <-last:
			case <-time.After(3 * time.Second):
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("states %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRequestContext(t *testing.T) {
	t.Run("Done when the client goes", func(t *testing.T) {
		released := make(chan struct{})
		entered := make(chan struct{})
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-r.Context().Done():
				close(released)
			case <-time.After(5 * time.Second):
			}
		})}
		c, _ := dial(t, serve(t, s))
		send(t, c, get)
		<-entered
		c.Close()
		select {
		case <-released:
		case <-time.After(2 * time.Second):
			t.Fatal("handler's context not done after the client closed")
		}
	})

	// Err looks at the socket once the request has run 10 ms.
	for _, closeIt := range []bool{true, false} {
		t.Run(fmt.Sprintf("Err, client closed %v", closeIt), func(t *testing.T) {
			gone := make(chan struct{})
			seen := make(chan error, 1)
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-gone
				time.Sleep(50 * time.Millisecond) // past the 10 ms before a peek
				err := r.Context().Err()
				seen <- err
				_, _ = fmt.Fprint(w, err)
			})}
			c, br := dial(t, serve(t, s))
			send(t, c, get)
			if closeIt {
				c.Close()
			}
			close(gone)
			var want error
			if closeIt {
				want = context.Canceled
			} else {
				readResp(t, br)
			}
			select {
			case err := <-seen:
				if err != want {
					t.Errorf("Err() = %v, want %v", err, want)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("handler did not run")
			}
		})
	}

	t.Run("cancelled after the handler returns", func(t *testing.T) {
		ctxs := make(chan context.Context, 1)
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctxs <- r.Context()
			_, _ = io.WriteString(w, "ok")
		})}
		c, br := dial(t, serve(t, s))
		send(t, c, get)
		readResp(t, br)
		ctx := <-ctxs
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("context not done after the handler returned")
		}
		if ctx.Err() != context.Canceled {
			t.Errorf("Err() = %v", ctx.Err())
		}
		expectOpen(t, c, br) // the connection itself lives on
	})

	t.Run("ConnContext values", func(t *testing.T) {
		type key struct{}
		s := &Server{
			ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, key{}, "v") },
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = fmt.Fprint(w, r.Context().Value(key{}))
			}),
		}
		c, br := dial(t, serve(t, s))
		send(t, c, get)
		if _, body := readResp(t, br); body != "v" {
			t.Errorf("value %q", body)
		}
	})
}

func TestResponseController(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_, _ = fmt.Fprint(w, rc.SetReadDeadline(time.Now().Add(time.Second)), " ",
			rc.SetWriteDeadline(time.Now().Add(time.Second)), " ", rc.EnableFullDuplex(), " ", rc.Flush())
	})}
	c, br := dial(t, serve(t, s))
	send(t, c, get)
	if _, body := readResp(t, br); body != "<nil> <nil> <nil> <nil>" {
		t.Errorf("ResponseController errors: %q", body)
	}
	// The deadlines were the request's: the connection serves the next.
	send(t, c, get)
	readResp(t, br)
}

// TestFullDuplex: the handler echoes each chunk of a chunked request body
// as it comes, before the body ends; the client sends the next chunk only
// once it has the echo of the last. Run on both servers.
func TestFullDuplex(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				_ = rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			c, br := dial(t, s.start(t, h, defaultConfig))
			send(t, c, "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range []string{"ping1", "ping22"} {
				send(t, c, fmt.Sprintf("%x\r\n%s\r\n", len(part), part))
				buf := make([]byte, len(part))
				if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != part {
					t.Fatalf("echo of %q: %q, %v", part, buf, err)
				}
			}
			send(t, c, "0\r\n\r\n")
			rest, err := io.ReadAll(resp.Body)
			if err != nil || len(rest) != 0 {
				t.Fatalf("end of body: %q, %v", rest, err)
			}
			// The connection serves the next request.
			send(t, c, get)
			if r2, _ := readResp(t, br); r2.StatusCode != 200 {
				t.Fatalf("next request: %v", r2.Status)
			}
		})
	}
}

// TestConnStateConformance: the ConnState sequences of both servers for
// the same client, including requests that fail.
func TestConnStateConformance(t *testing.T) {
	hijack := func(w http.ResponseWriter, r *http.Request) {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		req     string
	}{
		{"two requests", ok, get + get},
		{"hijacked", hijack, get},
		{"malformed request", ok, "GARBAGE\r\n\r\n"},
		{"partial request, client leaves", ok, "GET / HTTP/1.1\r\n"},
		{"nothing sent", ok, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for _, s := range servers {
				var mu sync.Mutex
				var states []http.ConnState
				end := make(chan struct{})
				h := tc.handler
				addr := ""
				record := func(_ net.Conn, st http.ConnState) {
					mu.Lock()
					defer mu.Unlock()
					states = append(states, st)
					if st == http.StateClosed || st == http.StateHijacked {
						close(end)
					}
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = ln.Addr().String()
				switch s.name {
				case "h1":
					srv := &Server{Handler: h, ConnState: record, ErrorLog: quietLog}
					go func() { _ = srv.Serve(ln) }()
					t.Cleanup(func() { _ = srv.Close() })
				default:
					srv := &http.Server{Handler: h, ConnState: record, ErrorLog: quietLog}
					go func() { _ = srv.Serve(ln) }()
					t.Cleanup(func() { _ = srv.Close() })
				}
				c, br := dial(t, addr)
				if tc.req != "" {
					send(t, c, tc.req)
				}
				// Read what comes for a moment, then leave.
				_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				_, _ = io.ReadAll(br)
				c.Close()
				select {
				case <-end:
				case <-time.After(3 * time.Second):
				}
				mu.Lock()
				got[s.name] = fmt.Sprint(states)
				mu.Unlock()
			}
			if got["h1"] != got["net/http"] {
				t.Errorf("ConnState: net/http %s, h1 %s", got["net/http"], got["h1"])
			}
		})
	}
}

// TestHijackAfterDone: a handler that waited on its context (which, in
// h1, starts a read of the connection) then hijacks must still get every
// byte the client sent after the request. A handler may read the raw
// conn once brw.Reader.Buffered() is 0, so a byte taken by a read under
// the hood must show as buffered (net/http moves its background read's
// byte into the reader at Hijack).
func TestHijackAfterDone(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			watching := make(chan struct{})
			got := make(chan string, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.Context().Done() // h1: starts the watch (net/http reads always)
				close(watching)
				// Give a read under the hood the time to take a byte; if
				// it has not, the test passes without showing anything.
				time.Sleep(50 * time.Millisecond)
				c, brw, err := w.(http.Hijacker).Hijack()
				if err != nil {
					got <- "hijack: " + err.Error()
					return
				}
				defer c.Close()
				buf, _ := brw.Reader.Peek(brw.Reader.Buffered())
				data := string(buf)
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				for len(data) < 4 {
					b := make([]byte, 4-len(data))
					n, err := c.Read(b) // the raw conn: what is not buffered
					data += string(b[:n])
					if err != nil {
						break
					}
				}
				got <- data
			})
			c, _ := dial(t, s.start(t, h, defaultConfig))
			send(t, c, get)
			<-watching
			send(t, c, "ping") // after the request: not in the reader yet
			select {
			case data := <-got:
				if data != "ping" {
					t.Errorf("hijacked handler read %q, want %q", data, "ping")
				}
			case <-time.After(3 * time.Second):
				t.Fatal("handler did not finish")
			}
		})
	}
}

// Whether an HTTP/1.1 request had a Host field is read from the head's
// buffered bytes (http.ReadRequest removes the field). A head that came in
// two pieces is no longer all in the buffer once read, and must not be
// judged from what the buffer holds by then: an empty Host then counts as
// missing, and an absolute-form target as the Host.
func TestHostFromASplitHead(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(ok), ReadHeaderTimeout: 5 * time.Second})
	for _, tc := range []struct {
		name   string
		pieces []string
		want   int
	}{
		{"Host in one piece", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, 200},
		{"Host, then the end of the head", []string{"GET / HTTP/1.1\r\nHost: a\r\n", "\r\n"}, 200},
		{"empty Host in one piece", []string{"GET / HTTP/1.1\r\nHost:\r\n\r\n"}, 200},
		{"empty Host, then the end of the head", []string{"GET / HTTP/1.1\r\nHost:\r\n", "X-A: " + strings.Repeat("a", 5000) + "\r\n\r\n"}, 400},
		{"absolute-form without Host in one piece", []string{"GET http://a.example/ HTTP/1.1\r\n\r\n"}, 400},
		{"absolute-form without Host in two", []string{"GET http://a.example/ HTTP/1.1\r\n", "X-A: " + strings.Repeat("a", 5000) + "\r\n\r\n"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dial(t, addr)
			for i, p := range tc.pieces {
				if i > 0 {
					time.Sleep(50 * time.Millisecond) // the server reads the first piece alone
				}
				send(t, c, p)
			}
			if resp, _ := readResp(t, br); resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

var errBadClose = errors.New("close failed")

// badCloseListener closes, but reports an error doing it.
type badCloseListener struct{ net.Listener }

func (l *badCloseListener) Close() error {
	_ = l.Listener.Close()
	return errBadClose
}
