package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawApp is an HTTP/1.1 app written on raw TCP, so that it can misbehave
// on purpose: close idle connections, answer with broken framing, never
// answer. Each request's head is kept as it came on the wire.
type rawApp struct {
	ln    net.Listener
	idle  time.Duration // close a connection idle this long; 0: never
	serve func(c *rawConn, req *rawReq) bool

	accepted atomic.Int64
	open     atomic.Int64
	requests atomic.Int64

	mu    sync.Mutex
	heads []string
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// rawReq is one request as the app read it: its head verbatim, parsed, and
// its body read whole by its framing.
type rawReq struct {
	head string
	*http.Request
	body string
}

// newRawApp starts an app on a loopback port; serve answers a request on
// c and reports whether the connection may carry another one. The test's
// cleanup closes the listener and every connection, and waits for them.
func newRawApp(t *testing.T, idle time.Duration, serve func(c *rawConn, req *rawReq) bool) *rawApp {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &rawApp{ln: ln, idle: idle, serve: serve, conns: map[net.Conn]bool{}}
	a.wg.Add(1)
	go a.accept()
	t.Cleanup(func() {
		ln.Close()
		a.mu.Lock()
		for c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

func (a *rawApp) addr() string { return a.ln.Addr().String() }

func (a *rawApp) accept() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.accepted.Add(1)
		a.open.Add(1)
		a.mu.Lock()
		a.conns[c] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go a.conn(&rawConn{Conn: c, br: bufio.NewReader(c)})
	}
}

func (a *rawApp) conn(c *rawConn) {
	defer a.wg.Done()
	defer func() {
		c.Close()
		a.open.Add(-1)
		a.mu.Lock()
		delete(a.conns, c.Conn)
		a.mu.Unlock()
	}()
	for {
		if a.idle > 0 {
			c.SetReadDeadline(time.Now().Add(a.idle))
		}
		req, err := readRawRequest(c.br)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		a.requests.Add(1)
		a.mu.Lock()
		a.heads = append(a.heads, req.head)
		a.mu.Unlock()
		if !a.serve(c, req) {
			return
		}
	}
}

// lastHead is the head of the last request that came.
func (a *rawApp) lastHead() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.heads) == 0 {
		return ""
	}
	return a.heads[len(a.heads)-1]
}

// readRawRequest reads a head line by line, then its body by the framing
// it states.
func readRawRequest(br *bufio.Reader) (*rawReq, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		head.WriteString(line)
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
	if err != nil {
		return nil, err
	}
	req := &rawReq{head: head.String(), Request: r}
	var body io.Reader
	switch {
	case len(r.TransferEncoding) > 0:
		body = httputil.NewChunkedReader(br)
	case r.ContentLength > 0:
		body = io.LimitReader(br, r.ContentLength)
	}
	if r.Header.Get("Expect") == "100-continue" {
		return req, nil // the app's serve decides whether to read it
	}
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		req.body = string(b)
		if len(r.TransferEncoding) > 0 { // the trailer section, if any
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return nil, err
				}
				if line == "\r\n" {
					break
				}
			}
		}
	}
	return req, nil
}

// reply writes a whole response: status line, fields, a Content-Length
// body.
func reply(c *rawConn, status int, body string, fields ...string) bool {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	_, err := io.WriteString(c, b.String())
	return err == nil
}
