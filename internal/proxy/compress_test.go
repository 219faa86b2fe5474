package proxy

// The compressor (package compress) in front of the proxy and of static files.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/compress"
	"github.com/switchyard/switchyard/internal/proxy/compress/compresstest"
)

// Upgrades pass through the compressor and the proxy: the app hijacks the
// connection and both ways work. (The proxy passes WebSocket handshakes
// only; the app here echoes lines rather than frames.)
func TestCompressPassesUpgrades(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(czEchoUpgrade))
	t.Cleanup(app.Close)
	p := newProxy(t, Config{})
	t.Cleanup(func() { p.Close() })
	if _, _, err := p.SetTarget("app", app.Listener.Addr().String(), 4); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"through the proxy", p},
		{"hijacked by the handler", http.HandlerFunc(czEchoUpgrade)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := czServer(t, compress.Config{MinSize: 1}, tc.h)
			conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAccept-Encoding: gzip, zstd\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Content-Encoding") != "" {
				t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			fmt.Fprintf(conn, "ping\n")
			if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
				t.Fatalf("echo %q, %v", line, err)
			}
		})
	}
	// A handler may hijack a plain request too: Hijack reaches the
	// connection through the compressor's writer.
	url := czServer(t, compress.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
	}))
	resp, body := compresstest.Do(t, http.MethodGet, url, "Accept-Encoding", "gzip")
	if resp.StatusCode != 200 || string(body) != "hijacked" {
		t.Fatalf("hijack: %d %q", resp.StatusCode, body)
	}
}

// The proxy's responses are compressed on their way out, and the
// compressed body decodes to the app's.
func TestCompressProxiedResponse(t *testing.T) {
	big := compresstest.JSON(64 << 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("length") != "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		}
		w.Write(big)
	}))
	t.Cleanup(app.Close)
	p := newProxy(t, Config{})
	t.Cleanup(func() { p.Close() })
	if _, _, err := p.SetTarget("app", app.Listener.Addr().String(), 4); err != nil {
		t.Fatal(err)
	}
	url := czServer(t, compress.Config{}, p)
	for _, coding := range []string{"gzip", "zstd"} {
		for _, q := range []string{"", "?length=1"} {
			resp, raw := compresstest.Do(t, http.MethodGet, url+"/data"+q, "Accept-Encoding", coding)
			if resp.Header.Get("Content-Encoding") != coding {
				t.Fatalf("%s%s: Content-Encoding %q", coding, q, resp.Header.Get("Content-Encoding"))
			}
			if got := compresstest.Decode(t, coding, raw); !bytes.Equal(got, big) {
				t.Fatalf("%s%s: decoded %d bytes, want %d", coding, q, len(got), len(big))
			}
			t.Logf("%s%s: %d → %d bytes", coding, q, len(big), len(raw))
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	body := compresstest.JSON(16 << 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer app.Close()
	p, err := New(Config{QueueTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	c, err := compress.New(compress.Config{}, p)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, ae string
		h        http.Handler
	}{
		{"off", "gzip, zstd", p},
		{"identity", "", c},
		{"gzip", "gzip", c},
		{"zstd", "gzip, zstd", c},
	} {
		b.Run(v.name, func(b *testing.B) {
			front := httptest.NewServer(v.h)
			defer front.Close()
			compresstest.Run(b, front.URL+"/data", v.ae)
		})
	}
}

// Serving a 16 KiB file from disk in front of the proxy, against proxying
// the same file from an app (http.FileServer) over loopback; compression
// off in both:
//
//	go test -run '^$' -bench StaticVsProxy -benchmem ./internal/proxy
func BenchmarkStaticVsProxy(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.json"), compresstest.JSON(16<<10), 0o644); err != nil {
		b.Fatal(err)
	}
	app := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer app.Close()
	p, err := New(Config{QueueTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SetTarget("bench", app.Listener.Addr().String(), 256); err != nil {
		b.Fatal(err)
	}
	st, err := NewStatic(StaticConfig{Dir: dir}, p)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	zst, err := compress.New(compress.Config{}, st)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name, ae string
		h        http.Handler
	}{
		{"proxy", "", p},
		{"static", "", st},
		{"static+compressor-identity", "", zst},
		{"static+zstd", "zstd", zst},
	} {
		b.Run(v.name, func(b *testing.B) {
			front := httptest.NewServer(v.h)
			defer front.Close()
			compresstest.Run(b, front.URL+"/data.json", v.ae)
		})
	}
}

// czEchoUpgrade answers an upgrade with 101 and echoes lines.
func czEchoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		http.Error(w, "want Upgrade: websocket", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString(line)
		brw.Flush()
	}
}

// czServer serves h behind a compress.Handler made with cfg.
func czServer(t testing.TB, cfg compress.Config, h http.Handler) string {
	t.Helper()
	c, err := compress.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv.URL
}
