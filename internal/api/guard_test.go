package api

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// Without a token the API answers only requests for a loopback Host, so
// that a web page cannot reach it through a DNS name of its own that
// resolves to 127.0.0.1 (DNS rebinding); with a token, the token guards it.
func TestLoopbackHostWithoutToken(t *testing.T) {
	for _, tt := range []struct {
		host  string
		token string
		want  int
	}{
		{"127.0.0.1:8001", "", 200},
		{"127.0.0.53:8001", "", 200},
		{"localhost:8001", "", 200},
		{"LOCALHOST.", "", 200},
		{"app.localhost:8001", "", 200},
		{"[::1]:8001", "", 200},
		{"evil.example:8001", "", 421},
		{"evil.example", "", 421},
		{"192.0.2.7:8001", "", 421},
		{"127.0.0.1.evil.example", "", 421},
		{"", "", 421},
		{"evil.example:8001", "tok", 200},
	} {
		t.Run(tt.host+" "+tt.token, func(t *testing.T) {
			f := newFake()
			h := New(Options{Manager: f, Token: tt.token})
			hdr := map[string]string{"Host": tt.host, "Authorization": "Bearer tok"}
			if rec := do(h, "GET", "/status", "", hdr); rec.Code != tt.want {
				t.Fatalf("GET /status for Host %q: %d, want %d", tt.host, rec.Code, tt.want)
			}
			hdr["Content-Type"] = "application/json"
			rec := do(h, "POST", "/switch", `{"container":"1a2b3c4d"}`, hdr)
			if rec.Code != tt.want {
				t.Fatalf("POST /switch for Host %q: %d, want %d", tt.host, rec.Code, tt.want)
			}
			if tt.want != 200 {
				if e := decodeError(t, rec); e.Kind != KindForbidden || !strings.Contains(e.Error, "--api-token") {
					t.Errorf("error %+v", e)
				}
				if f.lastCall() != "" {
					t.Errorf("the manager was called: %q", f.lastCall())
				}
			}
		})
	}
}

// A state-changing request must carry what a form on another site cannot
// (a JSON content type, X-Switchyard-User or a bearer token), and must not
// come from another site by the browser's own account.
func TestCSRFGuard(t *testing.T) {
	basic := basicAuth("ops", "tok")
	forged := `{"container":"x=", "container":"1a2b3c4d"}` // <form enctype=text/plain> name={"container":"x value=", "container":"..."}
	for _, tt := range []struct {
		name string
		hdr  map[string]string
		body string
		want int
	}{
		{"text/plain form with cached Basic credentials", map[string]string{"Authorization": basic, "Content-Type": "text/plain"}, forged, 415},
		{"urlencoded form", map[string]string{"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}, "1a2b3c4d", 415},
		{"no content type", map[string]string{"Authorization": basic}, "1a2b3c4d", 415},
		{"cross-site fetch", map[string]string{"Authorization": basic, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, `{"container":"1a2b3c4d"}`, 403},
		{"same-site fetch", map[string]string{"Authorization": basic, "Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, `{"container":"1a2b3c4d"}`, 403},
		{"other origin", map[string]string{"Authorization": basic, UserHeader: "x", "Origin": "http://evil.example"}, "1a2b3c4d", 403},
		{"null origin", map[string]string{"Authorization": basic, UserHeader: "x", "Origin": "null"}, "1a2b3c4d", 403},
		{"duplicate key with JSON type", map[string]string{"Authorization": basic, "Content-Type": "application/json"}, forged, 400},
		{"JSON", map[string]string{"Authorization": basic, "Content-Type": "application/json; charset=utf-8"}, `{"container":"1a2b3c4d"}`, 200},
		{"own origin", map[string]string{"Authorization": basic, "Content-Type": "application/json", "Origin": "http://127.0.0.1:8001", "Sec-Fetch-Site": "same-origin"}, `{"container":"1a2b3c4d"}`, 200},
		{"user header", map[string]string{"Authorization": basic, UserHeader: "ci"}, "1a2b3c4d", 200},
		{"bearer", map[string]string{"Authorization": "Bearer tok"}, "1a2b3c4d", 200},
		{"typed in the address bar", map[string]string{"Authorization": basic, "Content-Type": "application/json", "Sec-Fetch-Site": "none"}, `{"container":"1a2b3c4d"}`, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := do(New(Options{Manager: f, Token: "tok"}), "POST", "/switch", tt.body, tt.hdr)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
			if called := f.lastCall() != ""; called != (tt.want == 200) {
				t.Fatalf("manager call %q with status %d", f.lastCall(), rec.Code)
			}
		})
	}
}

// A read-only API (a static upstream) serves the status, the page and the
// series, and refuses every change.
func TestReadOnly(t *testing.T) {
	f := newFake()
	h := New(Options{Reader: f, Version: "v1"})
	for _, path := range []string{"/status", "/deployments", "/series", "/version"} {
		if rec := do(h, "GET", path, "", nil); rec.Code != 200 {
			t.Errorf("GET %s: %d", path, rec.Code)
		}
	}
	if rec := do(h, "GET", "/", "", map[string]string{"Accept": browserAccept}); rec.Code != 200 {
		t.Errorf("the status page: %d", rec.Code)
	}
	for _, path := range []string{"/launch", "/switch", "/rollback", "/discard", "/cancel"} {
		rec := do(h, "POST", path, `{"id":"3fa4c2e1"}`, map[string]string{"Content-Type": "application/json"})
		if rec.Code != 409 || decodeError(t, rec).Kind != KindReadOnly {
			t.Errorf("POST %s: %d %s, want 409 read_only", path, rec.Code, rec.Body)
		}
	}
}

// In a real browser: an operator logged in to the status page (Basic
// auth), then a page on another site auto-submits a text/plain form whose
// body is forged JSON to /switch. The browser sends the cached credentials;
// the API refuses, and the switch does not run. The same against a
// tokenless loopback API.
func TestCSRFInBrowser(t *testing.T) {
	bin, err := testservers.FindBinary("chromium")
	if err != nil {
		testservers.Missing(t, "chromium (Debian package chromium)", err)
	}
	for _, token := range []string{"page-test-token", ""} {
		t.Run(fmt.Sprintf("token %q", token), func(t *testing.T) {
			f := newFake()
			api := httptest.NewServer(New(Options{Manager: f, Token: token}))
			defer api.Close()
			apiURL := "http://" + api.Listener.Addr().String()
			login := apiURL + "/"
			if token != "" {
				login = "http://ops:" + token + "@" + api.Listener.Addr().String() + "/"
			}
			// The attacker's page, on another loopback address: another site.
			ln, err := net.Listen("tcp", "127.0.0.2:0")
			if err != nil {
				t.Fatal(err)
			}
			evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprintf(w, `<!doctype html><body>
<form method="POST" action="%s/switch" enctype="text/plain"><input name='{"container":"x' value='", "container":"1a2b3c4d"}'></form>
<script>
window.open(%q, "operator");
setTimeout(function () { document.forms[0].submit(); }, 3000);
</script></body>`, apiURL, login)
			}), ReadHeaderTimeout: 5 * time.Second}
			go evil.Serve(ln)
			defer evil.Close()
			runChromium(t, bin, "http://"+ln.Addr().String()+"/", "--dump-dom", "--disable-popup-blocking")
			f.mu.Lock()
			calls := append([]string(nil), f.calls...)
			f.mu.Unlock()
			if len(calls) != 0 {
				t.Fatalf("the forged request ran: %v", calls)
			}
		})
	}
}
