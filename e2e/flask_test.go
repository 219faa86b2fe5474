package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// flaskApp is a real Flask app behind Werkzeug's ProxyFix, trusting one hop
// for every X-Forwarded-* header, as the docs tell apps behind switchyard to
// do.
const flaskApp = `
from flask import Flask, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

@app.route("/login")
def login():
    return redirect(url_for("welcome", _external=True))

@app.route("/welcome")
def welcome():
    return ('<a id="login" href="%s">log in</a> <a id="self" href="%s">here</a> <span id="client">%s</span>'
            % (url_for("login"), url_for("welcome", _external=True), request.remote_addr))

@app.route("/healthcheck")
def health():
    return "ok"
`

// startGunicorn runs the Flask app under Debian's gunicorn and returns its
// address. Missing gunicorn or Flask fails the test (or skips it with
// SWITCHYARD_TEST_SKIP_MISSING=1): apt-get install gunicorn python3-flask.
func startGunicorn(t *testing.T) string {
	t.Helper()
	const pkgs = "gunicorn and Flask (apt-get install -y --no-install-recommends gunicorn python3-flask)"
	gunicorn, err := testservers.FindBinary("gunicorn")
	if err != nil {
		testservers.Missing(t, pkgs, err)
	}
	// Flask must be importable by gunicorn's own interpreter (its shebang).
	python := "python3"
	if f, err := os.Open(gunicorn); err == nil {
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if fields := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(fields) > 0 {
			python = fields[0]
			if filepath.Base(python) == "env" && len(fields) > 1 {
				python = fields[1]
			}
		}
	}
	if out, err := exec.Command(python, "-c", "import flask, werkzeug.middleware.proxy_fix").CombinedOutput(); err != nil {
		testservers.Missing(t, pkgs, errors.New(python+": "+strings.TrimSpace(string(out))))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.py"), []byte(flaskApp), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testservers.FreeAddr(t)
	testservers.StartProcess(t, nil, gunicorn, "--bind", addr, "--workers", "2", "--chdir", dir,
		"--access-logfile", "-", "shop:app")
	if err := testservers.WaitHTTP(context.Background(), "http://"+addr+"/healthcheck", 200, 30*time.Second); err != nil {
		t.Fatalf("gunicorn: %v", err)
	}
	return addr
}

// fromAddr is an HTTP client whose connections come from local IP ip (any
// 127.0.0.0/8 address is loopback on Linux), so that one switchyard sees a
// trusted and an untrusted client.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
}

// A real Flask app under gunicorn, mounted under /shop behind switchyard,
// builds its absolute URLs from what switchyard forwards: the client's host
// and port, the scheme from a trusted proxy (never from anyone else), the
// prefix. url_for inside a page gets the prefix too.
func TestFlaskBehindSwitchyard(t *testing.T) {
	app := startGunicorn(t)
	s := serveStatic(t, "--prefix", "/shop", "--trusted-proxies", "127.0.0.2/32", "--healthcheck-path", "/healthcheck",
		"--upstream", app, "--workers", "2")
	trusted, untrusted := fromAddr("127.0.0.2"), fromAddr("127.0.0.1")
	base := "http://" + s.addr

	do := func(c *http.Client, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = "shop.example:8443"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	for _, tc := range []struct {
		name   string
		client *http.Client
		hdr    map[string]string
		want   string
	}{
		{"trusted proxy says https", trusted, map[string]string{"X-Forwarded-Proto": "https"},
			"https://shop.example:8443/shop/welcome"},
		{"trusted proxy, no forwarded headers", trusted, nil,
			"http://shop.example:8443/shop/welcome"},
		{"untrusted client claims https", untrusted, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
			"http://shop.example:8443/shop/welcome"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := do(tc.client, "/shop/login", tc.hdr)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want 302", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != tc.want {
				t.Fatalf("Location %q, want exactly %q", loc, tc.want)
			}
		})
	}

	resp, page := do(untrusted, "/shop/welcome", map[string]string{"X-Forwarded-For": "6.6.6.6"})
	if resp.StatusCode != 200 {
		t.Fatalf("/shop/welcome: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="login" href="/shop/login"`, `id="self" href="http://shop.example:8443/shop/welcome"`,
		`<span id="client">127.0.0.1</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page %q lacks %q", page, want)
		}
	}
	// Outside the prefix switchyard answers itself.
	if resp, body := do(untrusted, "/login", nil); resp.StatusCode != 404 || !strings.Contains(body, "/shop/") {
		t.Fatalf("/login outside the prefix: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(untrusted, "/shop/healthcheck", nil); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("/shop/healthcheck: %d %q", resp.StatusCode, body)
	}
}
