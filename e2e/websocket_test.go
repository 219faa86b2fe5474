package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/internal/testservers"
)

// staticServe is `switchyard serve` in static mode (--upstream), its access
// log in a file.
type staticServe struct {
	addr, log string
	out       *syncBuffer
}

// serveStatic starts the real binary with args after --listen and
// --log-address, and waits until it answers.
func serveStatic(t *testing.T, args ...string) *staticServe {
	t.Helper()
	s := &staticServe{addr: testservers.FreeAddr(t), log: filepath.Join(t.TempDir(), "access.log"), out: &syncBuffer{}}
	cmd := exec.Command(switchyardBinary(t), append([]string{"serve", "--listen", s.addr, "--log-address", s.log}, args...)...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("switchyard output:\n%s", tail(s.out.String(), 6000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/healthcheck")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchyard serve did not come up: %v\n%s", err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *staticServe) accessLog() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// wsEchoUpstream greets each WebSocket with "hello" (the server speaking
// first), then echoes every message back prefixed with "echo:".
func wsEchoUpstream(t *testing.T) string {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			fmt.Fprint(w, "plain")
			return
		}
		wsEcho(w, r)
	}))
	t.Cleanup(app.Close)
	return app.Listener.Addr().String()
}

// WebSockets through the real binary: messages both ways (the server
// speaks first, the client's are echoed, a 1 MiB binary one too), and with
// workers=1 two open sockets leave the worker to plain requests. Each
// socket's log line is written when it closes, with status 101.
func TestWebSocketThroughBinary(t *testing.T) {
	s := serveStatic(t, "--queue-timeout", "500ms", "--log-format", "%HU %ST %Ta", wsEchoUpstream(t), "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var socks []*websocket.Conn
	for i := 0; i < 2; i++ {
		c, resp, err := websocket.Dial(ctx, "ws://"+s.addr+"/ws", nil)
		if err != nil {
			t.Fatalf("dial through switchyard: %v", err)
		}
		defer c.CloseNow()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resp.StatusCode)
		}
		c.SetReadLimit(4 << 20)
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
			t.Fatalf("the server's first message: %q %v", msg, err)
		}
		socks = append(socks, c)
	}
	for i, c := range socks {
		want := fmt.Sprintf("message %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo:"+want {
			t.Fatalf("echo: %q %v", msg, err)
		}
	}
	big := bytes.Repeat([]byte{0xab}, 1<<20)
	if err := socks[0].Write(ctx, websocket.MessageBinary, big); err != nil {
		t.Fatal(err)
	}
	if typ, msg, err := socks[0].Read(ctx); err != nil || typ != websocket.MessageBinary || !bytes.Equal(msg, append([]byte("echo:"), big...)) {
		t.Fatalf("1 MiB binary echo: %d bytes, %v", len(msg), err)
	}
	// Two sockets open, one worker: a plain request is still served.
	resp, err := http.Get("http://" + s.addr + "/plain")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain request with 2 WebSockets open on workers=1: %v %v", resp, err)
	}
	resp.Body.Close()
	time.Sleep(100 * time.Millisecond)
	for _, c := range socks {
		c.Close(websocket.StatusNormalClosure, "")
	}
	re := regexp.MustCompile(`(?m)^/ws 101 (\d+)$`)
	deadline := time.Now().Add(10 * time.Second)
	for len(re.FindAllString(s.accessLog(), -1)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no 101 log lines for the closed WebSockets:\n%s", s.accessLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.accessLog(), "/plain 200 ") {
		t.Fatalf("access log:\n%s", s.accessLog())
	}
}
