package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
)

func TestParseHTTPSettings(t *testing.T) {
	c, err := parseServe([]string{"--upstream", "a:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := c.http
	if !h.bufferRequests || !h.bufferResponses || h.maxBody != 100<<20 || h.bufferMemory != 1<<20 ||
		h.clientBodyTimeout != 60*time.Second || h.clientSendTimeout != 60*time.Second || h.prefix != "" || h.proxyProtocol ||
		h.bufferTotalMemory != proxy.DefaultBufferTotalMemory || h.bufferTotalDisk != proxy.DefaultBufferTotalDisk ||
		h.http2MaxStreams != proxy.DefaultHTTP2MaxStreams || c.queueSize != proxy.DefaultQueueSize {
		t.Fatalf("defaults: %+v, queue size %d", h, c.queueSize)
	}

	dir := t.TempDir()
	c, err = parseServe([]string{"--upstream", "a:1", "--prefix", "/shop/", "--max-body", "2m", "--buffer-memory", "64KiB",
		"--buffer-dir", dir, "--no-buffer-prefix", "/stream", "--no-buffer-prefix", "/upload,/events", "--buffer-responses=false",
		"--proxy-protocol", "--client-body-timeout", "5s"},
		[]string{"SWITCHYARD_PROXY_PROTOCOL_FROM=10.0.0.0/8, 192.168.0.1", "SWITCHYARD_CLIENT_SEND_TIMEOUT=2000"})
	if err != nil {
		t.Fatal(err)
	}
	h = c.http
	if h.prefix != "/shop/" || h.maxBody != 2<<20 || h.bufferMemory != 64<<10 || h.bufferDir != dir ||
		strings.Join(h.noBufferPrefixes, " ") != "/stream /upload /events" || h.bufferResponses || !h.bufferRequests ||
		!h.proxyProtocol || len(h.proxyProtocolFrom) != 2 || h.clientBodyTimeout != 5*time.Second || h.clientSendTimeout != 2*time.Second {
		t.Fatalf("parsed: %+v", h)
	}
	var pc proxy.Config
	h.apply(&pc)
	if pc.Prefix != "/shop/" || pc.MaxBody != 2<<20 || pc.BufferResponses || !pc.BufferRequests || len(pc.NoBufferPrefixes) != 3 {
		t.Fatalf("applied: %+v", pc)
	}
	c, _ = parseServe([]string{"--upstream", "a:1", "--max-body", "0", "--buffer-total-disk", "0"}, nil)
	c.http.apply(&pc)
	if pc.MaxBody != -1 || pc.BufferTotalDisk != -1 {
		t.Fatalf("--max-body 0 --buffer-total-disk 0: Config.MaxBody %d, BufferTotalDisk %d, want -1 (no limit)", pc.MaxBody, pc.BufferTotalDisk)
	}
	c, err = parseServe([]string{"--upstream", "a:1", "--buffer-total-memory", "8m", "--http2-max-streams", "16"},
		[]string{"SWITCHYARD_BUFFER_TOTAL_DISK=2GiB"})
	if err != nil {
		t.Fatal(err)
	}
	c.http.apply(&pc)
	if pc.BufferTotalMemory != 8<<20 || pc.BufferTotalDisk != 2<<30 || pc.HTTP2MaxStreams != 16 {
		t.Fatalf("budgets and streams: %d %d %d", pc.BufferTotalMemory, pc.BufferTotalDisk, pc.HTTP2MaxStreams)
	}
}

func TestParseHTTPSettingsErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"relative prefix", []string{"--prefix", "shop"}, "prefix"},
		{"proxy protocol without senders", []string{"--proxy-protocol"}, "proxy-protocol-from"},
		{"senders without proxy protocol", []string{"--proxy-protocol-from", "10.0.0.0/8"}, "proxy-protocol"},
		{"bad sender CIDR", []string{"--proxy-protocol", "--proxy-protocol-from", "10.0.0.0/33"}, "proxy-protocol-from"},
		{"bad size", []string{"--max-body", "lots"}, "max-body"},
		{"bad unit", []string{"--max-body", "5t"}, "max-body"},
		{"zero memory", []string{"--buffer-memory", "0"}, "buffer-memory"},
		{"missing buffer dir", []string{"--buffer-dir", "/nonexistent/dir"}, "buffer-dir"},
		{"buffer dir a file", []string{"--buffer-dir", file}, "buffer-dir"},
		{"relative no-buffer prefix", []string{"--no-buffer-prefix", "stream"}, "no-buffer-prefix"},
		{"bad body timeout", []string{"--client-body-timeout", "soon"}, "client-body-timeout"},
		{"bad bool", []string{"--buffer-requests=maybe"}, "buffer-requests"},
		{"bad disk budget", []string{"--buffer-total-disk", "much"}, "buffer-total-disk"},
		{"zero HTTP/2 streams", []string{"--http2-max-streams", "0"}, "http2-max-streams"},
		{"zero queue size", []string{"--queue-size", "0"}, "queue-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(append([]string{"--upstream", "a:1"}, tt.args...), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %q", msg, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "1k": 1024, "64KiB": 64 << 10, "100MiB": 100 << 20,
		"2m": 2 << 20, "1MB": 1 << 20, "1g": 1 << 30, " 3 KB ": 3 << 10, "7b": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "-1", "1.5m", "3x", "99999999999g"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// The binary with --prefix and --proxy-protocol: the header's client is
// the one the app sees, the prefix is stripped.
func TestServeBinaryHTTPSettings(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+" "+r.Header.Get("X-Forwarded-For")+" "+r.Header.Get("X-Forwarded-Prefix"))
	}))
	defer app.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--log-address", "off", "--prefix", "/api",
		"--proxy-protocol", "--proxy-protocol-from", "127.0.0.1", app.Listener.Addr().String(), "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var c net.Conn
	var err error
	for i := 0; i < 300; i++ {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 198.51.100.4 10.0.0.1 40000 443\r\nGET /api/items HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "/items 198.51.100.4 /api" {
		t.Fatalf("the app saw %q, want \"/items 198.51.100.4 /api\"", body)
	}
}
