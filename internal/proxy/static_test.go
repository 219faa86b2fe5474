package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/switchyard/switchyard/internal/proxy/compress"
	"github.com/switchyard/switchyard/internal/proxy/compress/compresstest"
)

// stTree is a static directory with the cases the tests need, and secrets
// outside it and in dotfiles that must never be served.
type stTree struct {
	base, dir string
	css, js   []byte
	jsGz      []byte
	jsZst     []byte
	noext     []byte
	data      []byte
}

const (
	stSecretOutside = "TOP-SECRET-OUTSIDE"
	stSecretDotenv  = "TOP-SECRET-DOTENV"
	stSecretGit     = "TOP-SECRET-GIT"
)

func stSetup(t testing.TB) *stTree {
	t.Helper()
	base := t.TempDir()
	tr := &stTree{base: base, dir: filepath.Join(base, "www")}
	tr.css = bytes.Repeat([]byte("body { color: #333; margin: 0 auto; }\n"), 100)
	tr.js = bytes.Repeat([]byte("function hello(name) { return 'hello ' + name; }\n"), 100)
	tr.jsGz = compresstest.Gzip(tr.js)
	enc, _ := zstd.NewWriter(nil)
	tr.jsZst = enc.EncodeAll(tr.js, nil)
	tr.noext = bytes.Repeat([]byte("plain text without an extension\n"), 60)
	tr.data = make([]byte, 1000)
	for i := range tr.data {
		tr.data[i] = byte(i % 251)
	}
	old := time.Now().Add(-time.Hour)
	files := []struct {
		name  string
		data  []byte
		mtime time.Time
	}{
		{"www/app.css", tr.css, old},
		{"www/app.js", tr.js, old},
		{"www/app.js.gz", tr.jsGz, old},
		{"www/app.js.zst", tr.jsZst, old.Add(time.Second)},
		{"www/old.js", tr.js, old},
		{"www/old.js.gz", tr.jsGz, old.Add(-time.Minute)}, // stale: older than old.js
		{"www/noext", tr.noext, old},
		{"www/noext.gz", compresstest.Gzip(tr.noext), old},
		{"www/data.bin", tr.data, old},
		{"www/sub/index.html", []byte("<h1>sub index</h1>"), old},
		{"www/sub/page.html", []byte("<h1>page</h1>"), old},
		{"www/a/b.txt", []byte("b"), old},
		{"www/.env", []byte(stSecretDotenv), old},
		{"www/.git/config", []byte(stSecretGit), old},
		{"www/sub/.hidden", []byte(stSecretDotenv), old},
		{"secret.txt", []byte(stSecretOutside), old},
		{"x", []byte(stSecretOutside), old},
		{"etc/passwd", []byte(stSecretOutside), old},
	}
	for _, f := range files {
		p := filepath.Join(base, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tr.dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"escape":     "../secret.txt",          // a file outside
		"escapeabs":  filepath.Join(base, "x"), // absolute, outside
		"escapedir":  "..",                     // a directory outside
		"inside.css": "app.css",                // inside: fine
	} {
		if err := os.Symlink(target, filepath.Join(tr.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(tr.dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return tr
}

// stApp stands for the app: it names itself and echoes the path it got.
var stApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-App", "1")
	fmt.Fprintf(w, "app:%s %s", r.Method, r.URL.Path)
})

func stServer(t testing.TB, cfg StaticConfig, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	st, err := NewStatic(cfg, stApp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var h http.Handler = st
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// stRaw sends target exactly as given (no client-side cleaning or
// escaping) and returns the response and its body.
func stRaw(t testing.TB, url, target string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestStaticServes(t *testing.T) {
	tr := stSetup(t)
	url := stServer(t, StaticConfig{Dir: tr.dir, MaxAge: time.Hour}, nil)
	tests := []struct {
		method, path string
		hdr          []string
		status       int
		body         string // "app:..." for the app
		check        func(t *testing.T, h http.Header)
	}{
		{"GET", "/app.css", nil, 200, string(tr.css), func(t *testing.T, h http.Header) {
			if h.Get("Content-Type") != "text/css; charset=utf-8" || h.Get("Cache-Control") != "public, max-age=3600" ||
				h.Get("Content-Length") != strconv.Itoa(len(tr.css)) || h.Get("Accept-Ranges") != "bytes" ||
				!strings.HasPrefix(h.Get("Etag"), `"`) || h.Get("Last-Modified") == "" || h.Get("Vary") != "" {
				t.Errorf("headers %v", h)
			}
		}},
		{"HEAD", "/app.css", nil, 200, "", func(t *testing.T, h http.Header) {
			if h.Get("Content-Length") != strconv.Itoa(len(tr.css)) || h.Get("Etag") == "" {
				t.Errorf("HEAD headers %v", h)
			}
		}},
		{"GET", "/missing.css", nil, 200, "app:GET /missing.css", nil},
		{"POST", "/app.css", nil, 200, "app:POST /app.css", nil},
		{"DELETE", "/app.css", nil, 200, "app:DELETE /app.css", nil},
		{"GET", "/app.css/", nil, 200, "app:GET /app.css/", nil},
		{"GET", "/inside.css", nil, 200, string(tr.css), nil},
		{"GET", "/sub/", nil, 200, "<h1>sub index</h1>", func(t *testing.T, h http.Header) {
			if h.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("index Content-Type %q", h.Get("Content-Type"))
			}
		}},
		{"GET", "/sub?x=1", nil, http.StatusMovedPermanently, "", func(t *testing.T, h http.Header) {
			if h.Get("Location") != "/sub/?x=1" {
				t.Errorf("Location %q", h.Get("Location"))
			}
		}},
		{"GET", "/sub/page.html", nil, 200, "<h1>page</h1>", nil},
		{"GET", "/sub//page.html", nil, 200, "<h1>page</h1>", nil},
		{"GET", "/empty/", nil, 200, "app:GET /empty/", nil},
		{"GET", "/empty", nil, 200, "app:GET /empty", nil},
		{"GET", "/a/", nil, 200, "app:GET /a/", nil}, // a directory without index.html: never listed
		{"GET", "/", nil, 200, "app:GET /", nil},
		{"GET", "/fifo", nil, 200, "app:GET /fifo", nil},
		{"GET", "/noext", nil, 200, string(tr.noext), func(t *testing.T, h http.Header) {
			if h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Vary") != "Accept-Encoding" {
				t.Errorf("headers %v", h)
			}
		}},
		{"GET", "/noext", []string{"Accept-Encoding", "gzip"}, 200, string(compresstest.Gzip(tr.noext)), func(t *testing.T, h http.Header) {
			if h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Content-Encoding") != "gzip" {
				t.Errorf("headers %v: want the original's sniffed type", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+strings.Join(tt.hdr, " "), func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url+tt.path, nil)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			resp, err := (&http.Client{Transport: compresstest.Client.Transport, Timeout: 5 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" || tt.method == "HEAD" {
				if string(body) != tt.body {
					t.Fatalf("body %.60q, want %.60q", body, tt.body)
				}
			}
			fromApp := resp.Header.Get("X-App") != ""
			if fromApp != strings.HasPrefix(tt.body, "app:") {
				t.Errorf("from the app: %v", fromApp)
			}
			if tt.check != nil {
				tt.check(t, resp.Header)
			}
		})
	}
}

func TestStaticConditionalAndRanges(t *testing.T) {
	tr := stSetup(t)
	url := stServer(t, StaticConfig{Dir: tr.dir}, nil)
	resp, _ := compresstest.Do(t, "GET", url+"/data.bin")
	etag, lastMod := resp.Header.Get("Etag"), resp.Header.Get("Last-Modified")
	if resp.Header.Get("Cache-Control") != "" {
		t.Errorf("Cache-Control %q with MaxAge 0", resp.Header.Get("Cache-Control"))
	}
	tests := []struct {
		name   string
		hdr    []string
		status int
		check  func(t *testing.T, resp *http.Response, body []byte)
	}{
		{"If-None-Match", []string{"If-None-Match", etag}, 304, nil},
		{"If-None-Match weak", []string{"If-None-Match", "W/" + etag}, 304, nil},
		{"If-None-Match list", []string{"If-None-Match", `"other", ` + etag}, 304, nil},
		{"If-None-Match other", []string{"If-None-Match", `"other"`}, 200, nil},
		{"If-Modified-Since", []string{"If-Modified-Since", lastMod}, 304, nil},
		{"If-Modified-Since old", []string{"If-Modified-Since", time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)}, 200, nil},
		{"If-Match other", []string{"If-Match", `"other"`}, 412, nil},
		{"Range", []string{"Range", "bytes=10-19"}, 206, func(t *testing.T, resp *http.Response, body []byte) {
			if !bytes.Equal(body, tr.data[10:20]) || resp.Header.Get("Content-Range") != "bytes 10-19/1000" {
				t.Errorf("range: %q %v", body, resp.Header)
			}
		}},
		{"suffix Range", []string{"Range", "bytes=-5"}, 206, func(t *testing.T, resp *http.Response, body []byte) {
			if !bytes.Equal(body, tr.data[995:]) {
				t.Errorf("suffix range: %v", body)
			}
		}},
		{"multiple ranges", []string{"Range", "bytes=0-1,100-102"}, 206, func(t *testing.T, resp *http.Response, body []byte) {
			mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if mt != "multipart/byteranges" {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			var parts [][]byte
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				b, _ := io.ReadAll(p)
				parts = append(parts, b)
			}
			if len(parts) != 2 || !bytes.Equal(parts[0], tr.data[0:2]) || !bytes.Equal(parts[1], tr.data[100:103]) {
				t.Errorf("parts %v", parts)
			}
		}},
		{"If-Range matching", []string{"Range", "bytes=0-0", "If-Range", etag}, 206, nil},
		{"If-Range stale", []string{"Range", "bytes=0-0", "If-Range", `"old"`}, 200, nil},
		{"unsatisfiable Range", []string{"Range", "bytes=5000-"}, 416, func(t *testing.T, resp *http.Response, body []byte) {
			if resp.Header.Get("Etag") != "" || resp.Header.Get("Cache-Control") != "" {
				t.Errorf("error headers %v", resp.Header)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := compresstest.Do(t, "GET", url+"/data.bin", tt.hdr...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 304 && (len(body) != 0 || resp.Header.Get("Etag") != etag) {
				t.Errorf("304: body %q, ETag %q", body, resp.Header.Get("Etag"))
			}
			if tt.check != nil {
				tt.check(t, resp, body)
			}
		})
	}
}

func TestStaticPrecompressed(t *testing.T) {
	tr := stSetup(t)
	url := stServer(t, StaticConfig{Dir: tr.dir, MaxAge: time.Minute}, nil)
	plainResp, _ := compresstest.Do(t, "GET", url+"/app.js")
	tests := []struct {
		name, path, method, ae string
		want                   string // Content-Encoding
		body                   []byte
		vary                   bool
	}{
		{"gzip", "/app.js", "GET", "gzip", "gzip", tr.jsGz, true},
		{"zstd preferred", "/app.js", "GET", "gzip, deflate, br, zstd", "zstd", tr.jsZst, true},
		{"gzip preferred by q", "/app.js", "GET", "zstd;q=0.5, gzip", "gzip", tr.jsGz, true},
		{"neither", "/app.js", "GET", "br", "", tr.js, true},
		{"none", "/app.js", "GET", "", "", tr.js, true},
		{"HEAD gzip", "/app.js", "HEAD", "gzip", "gzip", nil, true},
		{"stale sibling", "/old.js", "GET", "gzip", "", tr.js, false},
		{"no sibling", "/app.css", "GET", "gzip, zstd", "", tr.css, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := compresstest.Do(t, tt.method, url+tt.path, "Accept-Encoding", tt.ae)
			h := resp.Header
			if resp.StatusCode != 200 || h.Get("Content-Encoding") != tt.want {
				t.Fatalf("status %d, Content-Encoding %q, want %q", resp.StatusCode, h.Get("Content-Encoding"), tt.want)
			}
			if tt.method == "GET" && !bytes.Equal(body, tt.body) {
				t.Fatalf("body of %d bytes, want %d", len(body), len(tt.body))
			}
			if (h.Get("Vary") == "Accept-Encoding") != tt.vary {
				t.Errorf("Vary %q", h.Get("Vary"))
			}
			if h.Get("Cache-Control") != "public, max-age=60" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
			if strings.HasSuffix(tt.path, ".js") && h.Get("Content-Type") != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
			if tt.want != "" {
				size := map[string]int{"gzip": len(tr.jsGz), "zstd": len(tr.jsZst)}[tt.want]
				if h.Get("Content-Length") != strconv.Itoa(size) {
					t.Errorf("Content-Length %q, want %d", h.Get("Content-Length"), size)
				}
				if et := h.Get("Etag"); et == plainResp.Header.Get("Etag") || !strings.HasSuffix(et, "-"+tt.want+`"`) {
					t.Errorf("ETag %q of the %s sibling, %q of the original", et, tt.want, plainResp.Header.Get("Etag"))
				}
			}
		})
	}
	// Conditional requests and ranges apply to the sibling itself.
	resp, _ := compresstest.Do(t, "GET", url+"/app.js", "Accept-Encoding", "gzip")
	if r, b := compresstest.Do(t, "GET", url+"/app.js", "Accept-Encoding", "gzip", "If-None-Match", resp.Header.Get("Etag")); r.StatusCode != 304 || len(b) != 0 {
		t.Errorf("sibling If-None-Match: %d", r.StatusCode)
	}
	if r, b := compresstest.Do(t, "GET", url+"/app.js", "Accept-Encoding", "gzip", "Range", "bytes=0-9"); r.StatusCode != 206 ||
		!bytes.Equal(b, tr.jsGz[:10]) || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Length") != "10" {
		t.Errorf("sibling range: %d %v", r.StatusCode, r.Header)
	}
}

func TestStaticPrefix(t *testing.T) {
	tr := stSetup(t)
	url := stServer(t, StaticConfig{Dir: tr.dir, Prefix: "/static/"}, nil)
	for path, want := range map[string]string{
		"/static/app.css":       string(tr.css),
		"/static/sub/":          "<h1>sub index</h1>",
		"/app.css":              "app:GET /app.css",
		"/staticx/app.css":      "app:GET /staticx/app.css",
		"/static":               "app:GET /static",
		"/static/":              "app:GET /static/",
		"/static/missing":       "app:GET /static/missing",
		"/other/static/app.css": "app:GET /other/static/app.css",
	} {
		if _, body := compresstest.Do(t, "GET", url+path); string(body) != want {
			t.Errorf("%s: %.40q, want %.40q", path, body, want)
		}
	}
	for _, bad := range []string{"static", "/a/../b", "/.git", "//x", "/a\\b"} {
		if _, err := NewStatic(StaticConfig{Dir: tr.dir, Prefix: bad}, stApp); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if _, err := NewStatic(StaticConfig{Dir: filepath.Join(tr.dir, "app.css")}, stApp); err == nil {
		t.Error("a file accepted as the directory")
	}
	if _, err := NewStatic(StaticConfig{Dir: filepath.Join(tr.dir, "nope")}, stApp); err == nil {
		t.Error("a missing directory accepted")
	}
}

// No request reads outside the directory or serves a dotfile, however the
// path is spelled: such requests go to the app (or are refused by net/http).
func TestStaticTraversal(t *testing.T) {
	tr := stSetup(t)
	for _, prefix := range []string{"/", "/static"} {
		url := stServer(t, StaticConfig{Dir: tr.dir, Prefix: prefix}, nil)
		p := strings.TrimSuffix(prefix, "/")
		for _, target := range []string{
			"/../secret.txt", "/../../etc/passwd", "/../etc/passwd",
			"/..%2fsecret.txt", "/..%2f..%2fetc/passwd", "/..%2F..%2Fetc%2Fpasswd",
			"/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
			"/a/../../x", "/a/%2e%2e/%2e%2e/x", "/a/..%2f..%2fx", "/sub/../../secret.txt",
			"/..%5csecret.txt", "/%5c..%5csecret.txt", "/a%5c..%5c..%5cx", "/..\\secret.txt",
			"/escape", "/escapeabs", "/escapedir/secret.txt", "/escapedir/etc/passwd",
			"/.env", "/.git/config", "/.git/", "/sub/.hidden", "/sub/../.env", "/%2eenv", "/.%65nv",
			"/sub/%2e%2e/.env", "/./.env", "//.env", "/sub/%2e%2e%2f.env", "/x%00y", "/.env%00.css",
		} {
			resp, body := stRaw(t, url, p+target)
			for _, secret := range []string{stSecretOutside, stSecretDotenv, stSecretGit} {
				if strings.Contains(body, secret) {
					t.Errorf("%s%s: served %q", p, target, secret)
				}
			}
			if resp.StatusCode != http.StatusBadRequest && resp.Header.Get("X-App") == "" {
				t.Errorf("%s%s: status %d not from the app: %v", p, target, resp.StatusCode, resp.Header)
			}
		}
	}
}

// Compression around static files: compressed on the fly when no sibling
// is served, with a weak ETag that still validates; ranges uncompressed;
// siblings never compressed twice.
func TestStaticWithCompression(t *testing.T) {
	tr := stSetup(t)
	url := stServer(t, StaticConfig{Dir: tr.dir}, func(h http.Handler) http.Handler {
		c, err := compress.New(compress.Config{}, h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	resp, raw := compresstest.Do(t, "GET", url+"/app.css", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(compresstest.Decode(t, "gzip", raw), tr.css) {
		t.Fatalf("app.css: %v", resp.Header)
	}
	etag := resp.Header.Get("Etag")
	if !strings.HasPrefix(etag, `W/"`) || resp.Header.Get("Accept-Ranges") != "" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("compressed static headers %v", resp.Header)
	}
	if r, _ := compresstest.Do(t, "GET", url+"/app.css", "Accept-Encoding", "gzip", "If-None-Match", etag); r.StatusCode != 304 {
		t.Errorf("If-None-Match with the weak ETag: %d", r.StatusCode)
	}
	r, b := compresstest.Do(t, "GET", url+"/app.css", "Accept-Encoding", "gzip, zstd", "Range", "bytes=0-99")
	if r.StatusCode != 206 || r.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, tr.css[:100]) {
		t.Errorf("range with compression on: %d %v", r.StatusCode, r.Header)
	}
	for _, c := range []struct {
		ae, want string
		body     []byte
	}{{"gzip", "gzip", tr.jsGz}, {"zstd", "zstd", tr.jsZst}, {"gzip, zstd", "zstd", tr.jsZst}} {
		r, b := compresstest.Do(t, "GET", url+"/app.js", "Accept-Encoding", c.ae)
		if r.Header.Get("Content-Encoding") != c.want || !bytes.Equal(b, c.body) {
			t.Errorf("%s: %q, %d bytes: the sibling must be sent as it is", c.ae, r.Header.Get("Content-Encoding"), len(b))
		}
	}
	// A stale sibling is ignored and the original compressed on the fly.
	r, b = compresstest.Do(t, "GET", url+"/old.js", "Accept-Encoding", "zstd")
	if r.Header.Get("Content-Encoding") != "zstd" || !bytes.Equal(compresstest.Decode(t, "zstd", b), tr.js) {
		t.Errorf("old.js: %v", r.Header)
	}
}

// stLog collects access-log lines.
type stLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *stLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(string(b)))
	return len(b), nil
}

// A static response on a keep-alive connection does not leak into the next
// proxied request's access-log line: its read time and size are its own.
func TestStaticKeepsConnectionAccounting(t *testing.T) {
	tr := stSetup(t)
	app := httptest.NewServer(stApp)
	t.Cleanup(app.Close)
	var log stLog
	al, err := NewAccessLog(&log, "%HU %TR %U")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{AccessLog: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, _, err := p.SetTarget("app", app.Listener.Addr().String(), 2); err != nil {
		t.Fatal(err)
	}
	st, err := NewStatic(StaticConfig{Dir: tr.dir}, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, ServerConfig{Handler: st, ShutdownTimeout: time.Second}) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	pad := strings.Repeat("p", 8000)
	for i, target := range []string{"/app.css", "/api"} {
		if i == 1 {
			time.Sleep(300 * time.Millisecond) // keep-alive idle time is not read time
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", target, pad[:8000*(1-i)])
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.lines) != 1 {
		t.Fatalf("access log %q: want the proxied request only", log.lines)
	}
	var uri string
	var read, size int
	if _, err := fmt.Sscanf(log.lines[0], "%s %d %d", &uri, &read, &size); err != nil || uri != "/api" {
		t.Fatalf("line %q: %v", log.lines[0], err)
	}
	if read >= 300 || size >= 1000 {
		t.Errorf("line %q: the static request's time or bytes counted in the next one", log.lines[0])
	}
}
