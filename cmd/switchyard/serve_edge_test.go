package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/proxy/compress"
	"github.com/switchyard/switchyard/internal/testservers"
)

func TestParseServeEdge(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, e *edgeSettings)
	}{
		{"defaults", []string{"a:1"}, nil, func(t *testing.T, e *edgeSettings) {
			if e.staticDir != "" || e.staticPrefix != "/" || e.staticMaxAge != time.Hour || !e.compress ||
				e.compressMin != 1024 || !slices.Equal(e.compressTypes, compress.DefaultTypes) {
				t.Fatalf("%+v", e)
			}
		}},
		{"environment", []string{"a:1"}, []string{"SWITCHYARD_STATIC=" + dir, "SWITCHYARD_STATIC_PREFIX=/assets/",
			"SWITCHYARD_STATIC_MAX_AGE=24h", "SWITCHYARD_COMPRESS=false", "SWITCHYARD_COMPRESS_MIN_SIZE=0",
			"SWITCHYARD_COMPRESS_TYPES=text/html, application/*+json"}, func(t *testing.T, e *edgeSettings) {
			if e.staticDir != dir || e.staticPrefix != "/assets/" || e.staticMaxAge != 24*time.Hour || e.compress ||
				e.compressMin != 0 || !slices.Equal(e.compressTypes, []string{"text/html", "application/*+json"}) {
				t.Fatalf("%+v", e)
			}
			if e.compressConfig().MinSize != 1 {
				t.Fatalf("min size 0 must compress every body: %+v", e.compressConfig())
			}
		}},
		{"flags", []string{"--static", dir, "--static-max-age", "0", "--compress=false", "--compress=true", "a:1"}, []string{"SWITCHYARD_COMPRESS=false"},
			func(t *testing.T, e *edgeSettings) {
				if e.staticMaxAge != 0 || !e.compress {
					t.Fatalf("%+v", e)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c.edge)
		})
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--static", filepath.Join(dir, "missing")}, "--static"},
		{[]string{"--static", file}, "--static"},
		{[]string{"--static", dir, "--static-prefix", "assets"}, "static prefix"},
		{[]string{"--static", dir, "--static-prefix", "/a/../b"}, "static prefix"},
		{[]string{"--static-max-age", "3600"}, "static-max-age"}, // seconds or milliseconds? a unit is required
		{[]string{"--static-max-age", "-1h"}, "static-max-age"},
		{[]string{"--compress-min-size", "-1"}, "compress-min-size"},
		{[]string{"--compress-types", "json"}, "compress-types"},
		{[]string{"--compress-types", ","}, "compress-types"},
		{[]string{"--compress"}, ""}, // --compress alone is true: not an error
	} {
		_, err := parseServe(append(bad.args, "a:1"), nil)
		if bad.want == "" {
			if err != nil {
				t.Errorf("%q: %v", bad.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line naming %s", bad.args, err, bad.want)
		}
	}
}

// wrap puts static files first and compression around both.
func TestEdgeWrap(t *testing.T) {
	dir := t.TempDir()
	css := bytes.Repeat([]byte("p { margin: 0 }\n"), 200)
	os.WriteFile(filepath.Join(dir, "app.css"), css, 0o644)
	// --header reaches static responses too (the proxy adds it to the app's).
	c, err := parseServe([]string{"--static", dir, "--header", "X-Frame-Options: DENY", "a:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.edge.close()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(bytes.Repeat([]byte("app "), 1000))
	})
	h, err := c.edge.wrap(app, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct{ path, frame string }{{"/app.css", "DENY"}, {"/other", ""}} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("X-Frame-Options") != tc.frame {
			t.Errorf("%s: %v", tc.path, resp.Header)
		}
		if tc.path == "/app.css" && resp.Header.Get("Cache-Control") != "public, max-age=3600" {
			t.Errorf("%s: Cache-Control %q", tc.path, resp.Header.Get("Cache-Control"))
		}
	}

	c, _ = parseServe([]string{"--compress=false", "a:1"}, nil)
	if h, err := c.edge.wrap(app, zerolog.Nop()); err != nil {
		t.Error(err)
	} else if _, ok := h.(http.HandlerFunc); !ok {
		t.Errorf("no --static and --compress=false: got %T, want the handler itself", h)
	}
}

// curl --compressed against the real binary: a static file, a precompressed
// one and a proxied response all decode to the originals.
func TestServeEdgeCurl(t *testing.T) {
	curl, err := testservers.FindBinary("curl")
	if err != nil {
		testservers.Missing(t, "curl", err)
	}
	dir := t.TempDir()
	css := bytes.Repeat([]byte("body { color: #333; margin: 0 auto; }\n"), 200)
	js := bytes.Repeat([]byte("function hello(name) { return 'hello ' + name; }\n"), 200)
	var jsGz bytes.Buffer
	zw := gzip.NewWriter(&jsGz)
	zw.Write(js)
	zw.Close()
	for name, data := range map[string][]byte{"app.css": css, "app.js": js, "app.js.gz": jsGz.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	api := []byte(`{"items":[` + strings.Repeat(`{"id":1,"name":"thing","tags":["a","b"]},`, 300) + `{}]}`)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(api)
	}))
	defer app.Close()

	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln := testservers.FreeAddr(t)
	cmd := exec.Command(bin, "serve", "--listen", ln, "--log-address", "off", "--static", dir, "--static-prefix", "/assets",
		app.Listener.Addr().String(), "2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := testservers.WaitHTTP(context.Background(), "http://"+ln+"/assets/app.css", 200, 20*time.Second); err != nil {
		t.Fatalf("switchyard did not come up: %v\n%s", err, stderr.String())
	}
	for _, tc := range []struct {
		path, ae, want string
		body           []byte
	}{
		{"/assets/app.css", "", "zstd", css},
		{"/assets/app.css", "gzip", "gzip", css},
		{"/assets/app.js", "gzip", "gzip", js}, // the precompressed sibling
		{"/assets/app.js", "", "gzip", js},     // a sibling wins over zstd on the fly
		{"/api/data", "", "zstd", api},
		{"/api/data", "gzip", "gzip", api},
	} {
		out := filepath.Join(t.TempDir(), "body")
		args := []string{"-sS", "--compressed", "-D", "-", "-o", out}
		if tc.ae != "" {
			args = append(args, "-H", "Accept-Encoding: "+tc.ae)
		}
		headers, err := exec.Command(curl, append(args, "http://"+ln+tc.path)...).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", tc.path, err)
		}
		if !strings.Contains(strings.ToLower(string(headers)), "content-encoding: "+tc.want+"\r\n") {
			t.Errorf("curl %s (%s): want Content-Encoding %s in\n%s", tc.path, tc.ae, tc.want, headers)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, tc.body) {
			t.Errorf("curl %s (%s): decoded %d bytes, want %d", tc.path, tc.ae, len(got), len(tc.body))
		}
	}
}
