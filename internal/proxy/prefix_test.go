package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pathBackend answers with the request URI it got and its X-Forwarded-Prefix.
func pathBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	served := new(atomic.Int64)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("X-Got-Prefix", r.Header.Get("X-Forwarded-Prefix"))
		io.WriteString(w, r.URL.RequestURI())
	}))
	t.Cleanup(s.Close)
	return s, served
}

func TestPrefix(t *testing.T) {
	app, served := pathBackend(t)
	p := newProxy(t, Config{Prefix: "/api/", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if _, _, err := p.SetTarget("app", app.Listener.Addr().String(), 2); err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, p)
	tests := []struct {
		path, prior     string
		status          int
		appURI, appPref string
	}{
		{"/api", "", 200, "/", "/api"},
		{"/api/", "", 200, "/", "/api"},
		{"/api/x/y?q=1", "", 200, "/x/y?q=1", "/api"},
		{"/api/a%2Fb", "", 200, "/a%2Fb", "/api"},
		{"/api/x", "/outer/", 200, "/x", "/outer/api"}, // from a trusted proxy: prepended
		{"/apix", "", 404, "", ""},
		{"/", "", 404, "", ""},
		{"/other/api", "", 404, "", ""},
	}
	for _, tt := range tests {
		before := served.Load()
		req, _ := http.NewRequest("GET", url+tt.path, nil)
		if tt.prior != "" {
			req.Header.Set("X-Forwarded-Prefix", tt.prior)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
			continue
		}
		if tt.status == 404 {
			if served.Load() != before {
				t.Errorf("%s: outside the prefix, yet the app was asked", tt.path)
			}
			if !strings.Contains(string(body), "/api/") {
				t.Errorf("%s: 404 body %q does not name the prefix", tt.path, body)
			}
			continue
		}
		if string(body) != tt.appURI || resp.Header.Get("X-Got-Prefix") != tt.appPref {
			t.Errorf("%s: the app got %q with X-Forwarded-Prefix %q, want %q and %q",
				tt.path, body, resp.Header.Get("X-Got-Prefix"), tt.appURI, tt.appPref)
		}
	}
}

// An untrusted client's X-Forwarded-Prefix is replaced by ours.
func TestPrefixUntrustedHeader(t *testing.T) {
	app, _ := pathBackend(t)
	p := newProxy(t, Config{Prefix: "/api"})
	p.SetTarget("app", app.Listener.Addr().String(), 1)
	req, _ := http.NewRequest("GET", startProxy(t, p)+"/api/x", nil)
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Got-Prefix"); got != "/api" {
		t.Fatalf("X-Forwarded-Prefix %q, want /api", got)
	}
}

// The health path is the app's: it is matched after the prefix is
// stripped, and skips the queue there.
func TestPrefixHealthPath(t *testing.T) {
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	defer close(b.hold)
	p := newProxy(t, Config{Prefix: "/api", QueueTimeout: 100 * time.Millisecond})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	go get(context.Background(), url+"/api/hold")
	waitFor(t, "the only worker to be taken", func() bool { return b.inflight.Load() == 1 })
	if r := get(context.Background(), url+"/api/healthcheck"); r.status != 200 {
		t.Fatalf("/api/healthcheck with the worker busy: %d, want 200 (it skips the queue)", r.status)
	}
	if r := get(context.Background(), url+"/healthcheck"); r.status != 404 {
		t.Fatalf("/healthcheck outside the prefix: %d, want 404", r.status)
	}
	if r := get(context.Background(), url+"/api/x"); r.status != 503 {
		t.Fatalf("/api/x with the worker busy: %d, want 503 after the queue timeout", r.status)
	}
}

func TestPrefixConfig(t *testing.T) {
	for _, bad := range []string{"api", "/a?b", "/a//b", "/a/../b"} {
		if _, err := New(Config{Prefix: bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	for in, want := range map[string]string{"": "", "/": "", "/api/": "/api", "/a/b": "/a/b"} {
		if got, err := normalizePrefix(in); err != nil || got != want {
			t.Errorf("normalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
