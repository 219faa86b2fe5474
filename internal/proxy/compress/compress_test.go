package compress

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/switchyard/switchyard/internal/proxy/compress/compresstest"
)

func czServer(t testing.TB, cfg Config, h http.Handler) string {
	t.Helper()
	c, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCompress(t *testing.T) {
	big := compresstest.JSON(16 << 10)
	html := append([]byte("<!DOCTYPE html><html><body>"), bytes.Repeat([]byte("<p>hello, compressible world</p>\n"), 200)...)
	pregz := compresstest.Gzip(big)
	// respond builds an app handler from headers, a status and body chunks.
	respond := func(status int, hdr []string, chunks ...[]byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			if status != 0 {
				w.WriteHeader(status)
			}
			for _, c := range chunks {
				w.Write(c)
			}
		}
	}
	third := len(big) / 3
	tests := []struct {
		name     string
		app      http.HandlerFunc
		method   string
		ae       string
		want     string // Content-Encoding expected ("": none)
		wantBody []byte // decoded body expected (nil: none checked)
		check    func(t *testing.T, h http.Header)
	}{
		{name: "gzip with Content-Length", app: respond(0, []string{"Content-Type", "application/json", "Content-Length", strconv.Itoa(len(big))}, big),
			ae: "gzip", want: "gzip", wantBody: big},
		{name: "zstd preferred", app: respond(0, []string{"Content-Type", "application/json"}, big),
			ae: "gzip, deflate, br, zstd", want: "zstd", wantBody: big},
		{name: "zstd in chunks without length", app: respond(0, []string{"Content-Type", "application/json; charset=utf-8"}, big[:10], big[10:third], big[third:]),
			ae: "zstd", want: "zstd", wantBody: big},
		{name: "gzip when zstd has a lower q", app: respond(0, []string{"Content-Type", "application/json"}, big),
			ae: "zstd;q=0.5, gzip", want: "gzip", wantBody: big},
		{name: "zstd when gzip;q=0", app: respond(0, []string{"Content-Type", "application/json"}, big),
			ae: "gzip;q=0, zstd", want: "zstd", wantBody: big},
		{name: "nothing acceptable", app: respond(0, []string{"Content-Type", "application/json"}, big),
			ae: "gzip;q=0, zstd;q=0, br", want: "", wantBody: big, check: func(t *testing.T, h http.Header) {
				if h.Get("Vary") != "Accept-Encoding" {
					t.Errorf("Vary %q: a compressible response varies even when not compressed", h.Get("Vary"))
				}
			}},
		{name: "identity only", app: respond(0, []string{"Content-Type", "application/json"}, big), ae: "identity", want: "", wantBody: big},
		{name: "star", app: respond(0, []string{"Content-Type", "application/json"}, big), ae: "*", want: "zstd", wantBody: big},
		{name: "x-gzip", app: respond(0, []string{"Content-Type", "application/json"}, big), ae: "x-gzip", want: "gzip", wantBody: big},
		{name: "sniffed type", app: respond(0, nil, html), ae: "gzip", want: "gzip", wantBody: html, check: func(t *testing.T, h http.Header) {
			if h.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q, want the sniffed text/html", h.Get("Content-Type"))
			}
		}},
		{name: "already encoded", app: respond(0, []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, pregz),
			ae: "gzip, zstd", want: "gzip", wantBody: big, check: func(t *testing.T, h http.Header) {
				if h.Get("Vary") != "" {
					t.Errorf("Vary %q on a response compressed by the app", h.Get("Vary"))
				}
			}},
		{name: "incompressible type", app: respond(0, []string{"Content-Type", "image/png"}, big), ae: "gzip, zstd", want: "", wantBody: big,
			check: func(t *testing.T, h http.Header) {
				if h.Get("Vary") != "" {
					t.Errorf("Vary %q on an incompressible response", h.Get("Vary"))
				}
			}},
		{name: "type not listed", app: respond(0, []string{"Content-Type", "application/octet-stream"}, big), ae: "gzip", want: "", wantBody: big},
		{name: "event stream", app: respond(0, []string{"Content-Type", "text/event-stream"}, big), ae: "gzip", want: "", wantBody: big},
		{name: "small with length", app: respond(0, []string{"Content-Type", "text/plain", "Content-Length", "5"}, []byte("hello")),
			ae: "gzip", want: "", wantBody: []byte("hello")},
		{name: "small without length", app: respond(0, []string{"Content-Type", "text/plain"}, []byte("hel"), []byte("lo")),
			ae: "gzip", want: "", wantBody: []byte("hello")},
		{name: "HEAD", method: http.MethodHead, app: respond(0, []string{"Content-Type", "application/json", "Content-Length", strconv.Itoa(len(big))}),
			ae: "gzip", want: "", check: func(t *testing.T, h http.Header) {
				if h.Get("Content-Length") != strconv.Itoa(len(big)) {
					t.Errorf("HEAD Content-Length %q", h.Get("Content-Length"))
				}
			}},
		{name: "204", app: respond(http.StatusNoContent, []string{"Content-Type", "application/json"}), ae: "gzip", want: "", wantBody: []byte{}},
		{name: "304", app: respond(http.StatusNotModified, []string{"Etag", `"v1"`}), ae: "gzip", want: "", wantBody: []byte{},
			check: func(t *testing.T, h http.Header) {
				if h.Get("Etag") != `"v1"` {
					t.Errorf("304 ETag %q", h.Get("Etag"))
				}
			}},
		{name: "206 from the app", app: respond(http.StatusPartialContent, []string{"Content-Type", "application/json", "Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(big)-1, len(big)+10)}, big),
			ae: "gzip", want: "", wantBody: big},
		{name: "no-transform", app: respond(0, []string{"Content-Type", "application/json", "Cache-Control", "public, No-Transform"}, big), ae: "gzip", want: "", wantBody: big},
		{name: "Vary merged, ETag weak, ranges dropped", app: respond(0, []string{"Content-Type", "text/css", "Vary", "Origin", "Etag", `"abc"`, "Accept-Ranges", "bytes"}, big),
			ae: "gzip", want: "gzip", wantBody: big, check: func(t *testing.T, h http.Header) {
				if got := h.Values("Vary"); len(got) != 1 || got[0] != "Origin, Accept-Encoding" {
					t.Errorf("Vary %q, want one line Origin, Accept-Encoding", got)
				}
				if h.Get("Etag") != `W/"abc"` {
					t.Errorf("ETag %q, want W/\"abc\"", h.Get("Etag"))
				}
				if h.Get("Accept-Ranges") != "" {
					t.Errorf("Accept-Ranges %q on a compressed response", h.Get("Accept-Ranges"))
				}
			}},
		{name: "Vary already names it", app: respond(0, []string{"Content-Type", "text/css", "Vary", "accept-encoding", "Etag", `W/"w"`}, big),
			ae: "zstd", want: "zstd", wantBody: big, check: func(t *testing.T, h http.Header) {
				if got := h.Values("Vary"); len(got) != 1 || got[0] != "accept-encoding" {
					t.Errorf("Vary %q", got)
				}
				if h.Get("Etag") != `W/"w"` {
					t.Errorf("ETag %q, want the weak one untouched", h.Get("Etag"))
				}
			}},
		{name: "error status compressed", app: respond(http.StatusInternalServerError, []string{"Content-Type", "text/html"}, html),
			ae: "gzip", want: "gzip", wantBody: html},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := czServer(t, Config{}, tt.app)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			resp, raw := compresstest.Do(t, method, url, "Accept-Encoding", tt.ae)
			ce := resp.Header.Get("Content-Encoding")
			if ce != tt.want {
				t.Fatalf("Content-Encoding %q, want %q (headers %v)", ce, tt.want, resp.Header)
			}
			if tt.want != "" && ce != "" && !strings.Contains(tt.name, "already") {
				if v := resp.Header.Get("Vary"); !strings.Contains(strings.ToLower(v), "accept-encoding") {
					t.Errorf("Vary %q on a compressed response", v)
				}
				if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(raw)) {
					t.Errorf("Content-Length %s, body %d bytes", cl, len(raw))
				}
				if len(raw) >= len(tt.wantBody) {
					t.Errorf("compressed %d bytes into %d", len(tt.wantBody), len(raw))
				}
			}
			if tt.wantBody != nil {
				if got := compresstest.Decode(t, ce, raw); !bytes.Equal(got, tt.wantBody) {
					t.Errorf("body: got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tt.wantBody), tt.wantBody)
				}
			}
			if tt.check != nil {
				tt.check(t, resp.Header)
			}
		})
	}
}

func TestAcceptEncoding(t *testing.T) {
	tests := []struct {
		ae   []string
		want Coding
	}{
		{nil, Identity},
		{[]string{""}, Identity},
		{[]string{"gzip"}, Gzip},
		{[]string{"GZIP"}, Gzip},
		{[]string{"zstd"}, Zstd},
		{[]string{"gzip, zstd"}, Zstd},
		{[]string{"gzip;q=1.0, zstd;q=1"}, Zstd},
		{[]string{"gzip;q=0.9, zstd;q=0.8"}, Gzip},
		{[]string{"gzip", "zstd;q=0.1"}, Gzip}, // two field lines
		{[]string{"zstd;q=0"}, Identity},
		{[]string{"gzip;q=0"}, Identity},
		{[]string{"gzip ; q=0 , zstd ; q=0.001"}, Zstd},
		{[]string{"gzip;q=bogus"}, Identity},
		{[]string{"*;q=0.5, zstd;q=0"}, Gzip},
		{[]string{"*;q=0"}, Identity},
		{[]string{"br, deflate"}, Identity},
		{[]string{"gzip;level=1;q=0.5"}, Gzip},
	}
	for _, tt := range tests {
		if got := parseAcceptEncoding(tt.ae).choose(true, true); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.ae, got, tt.want)
		}
	}
	if got := parseAcceptEncoding([]string{"gzip, zstd"}).choose(true, false); got != Gzip {
		t.Errorf("only gzip available: %v", got)
	}
}

func TestCompressTypes(t *testing.T) {
	m, err := newTypeMatcher(DefaultTypes)
	if err != nil {
		t.Fatal(err)
	}
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8": true, "TEXT/CSS": true, "application/json": true, "application/problem+json": true,
		"application/atom+xml": true, "image/svg+xml": true, "application/wasm": true, "application/javascript": true,
		"text/event-stream": false, "image/png": false, "image/jpeg": false, "video/mp4": false, "font/woff2": false,
		"application/zip": false, "application/octet-stream": false, "": false, "text": false,
	} {
		if got := m.match(ct); got != want {
			t.Errorf("%q: %v, want %v", ct, got, want)
		}
	}
	all, _ := newTypeMatcher([]string{"*/*"})
	if !all.match("application/x-anything") || all.match("image/webp") || all.match("audio/ogg") {
		t.Error("*/* must match all but the incompressible formats")
	}
	for _, bad := range []string{"json", "text/", "/json", "te*t/html", "*/json", "text/ht*ml", "text/*+", "a/b;c", ""} {
		if _, err := newTypeMatcher([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A flushed response streams: the client decodes the first part before the
// app writes the next, with either coding.
func TestCompressFlushStreams(t *testing.T) {
	for _, coding := range []string{"gzip", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			next := make(chan struct{})
			url := czServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				io.WriteString(w, `{"event":1}`+"\n")
				http.NewResponseController(w).Flush()
				select {
				case <-next:
				case <-time.After(10 * time.Second):
				}
				io.WriteString(w, `{"event":2}`+"\n")
			}))
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept-Encoding", coding)
			resp, err := compresstest.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Encoding") != coding {
				t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			var dec io.Reader
			if coding == "gzip" {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				dec = zr
			} else {
				zr, err := zstd.NewReader(resp.Body, zstd.WithDecoderConcurrency(1))
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				dec = zr
			}
			br := bufio.NewReader(dec)
			got := make(chan string, 1)
			go func() { line, _ := br.ReadString('\n'); got <- line }()
			select {
			case line := <-got:
				if line != `{"event":1}`+"\n" {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(5 * time.Second):
				close(next)
				t.Fatal("the flushed first line did not arrive before the app went on")
			}
			close(next)
			if rest, err := io.ReadAll(br); err != nil || string(rest) != `{"event":2}`+"\n" {
				t.Fatalf("rest %q, %v", rest, err)
			}
		})
	}
}

// Server-sent events are not compressed and still flush.
func TestCompressEventStreamFlushes(t *testing.T) {
	next := make(chan struct{})
	url := czServer(t, Config{MinSize: 1}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip, zstd")
	resp, err := compresstest.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("event stream compressed: %q", resp.Header.Get("Content-Encoding"))
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(next)
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
}

// A panicking handler does not get a cleanly ended compressed stream, and
// the pooled writer is reusable afterwards.
func TestCompressAbortedResponse(t *testing.T) {
	big := compresstest.JSON(8 << 10)
	url := czServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(big)
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
	}))
	req, _ := http.NewRequest(http.MethodGet, url+"/abort", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	if resp, err := compresstest.Client.Do(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("an aborted response read to its end without error")
		}
	}
	for range 3 {
		resp, raw := compresstest.Do(t, http.MethodGet, url+"/ok", "Accept-Encoding", "gzip")
		if got := compresstest.Decode(t, resp.Header.Get("Content-Encoding"), raw); !bytes.Equal(got, big) {
			t.Fatal("response after an aborted one is wrong")
		}
	}
}
