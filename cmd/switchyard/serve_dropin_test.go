package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/testservers"
)

// Drop-in mode (`serve UPSTREAM WORKERS --api ADDR`) serves the read-only
// API: /status (healthy while the upstream accepts connections), /metrics,
// /series and the status page; the deploy routes answer read_only.
func TestDropInAPI(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer app.Close()
	listen, apiAddr := testservers.FreeAddr(t), testservers.FreeAddr(t)
	c, err := parseServe([]string{app.Listener.Addr().String(), "2", "--listen", listen, "--api", apiAddr, "--log-address", "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, c, zerolog.Nop(), nil) }()
	defer func() { stop(); <-served }()

	get := func(url string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("http://" + listen + "/x"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	api := "http://" + apiAddr
	for code, _ := get(api + "/status"); code == 0 && time.Now().Before(deadline); code, _ = get(api + "/status") {
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(api + "/status"); code != 200 || !strings.Contains(body, `"id": "static"`) || !strings.Contains(body, `"requests": 1`) {
		t.Fatalf("/status: %d %s", code, body)
	}
	if code, body := get(api + "/metrics"); code != 200 || !strings.Contains(body, `switchyard_requests_total{code_class="2xx"} 1`) ||
		!strings.Contains(body, `switchyard_healthy 1`) {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	if code, body := get(api+"/", "Accept", "text/html"); code != 200 || !strings.Contains(body, "<title>switchyard</title>") {
		t.Fatalf("status page: %d", code)
	}
	if code, body := get(api + "/series"); code != 200 || !strings.Contains(body, `"points"`) {
		t.Fatalf("/series: %d %s", code, body)
	}
	resp, err := http.Post(api+"/launch", "application/json", strings.NewReader(`{"id":"3fa4c2e1"}`))
	if err != nil || resp.StatusCode != 409 {
		t.Fatalf("POST /launch: %v %v, want 409 read_only", resp, err)
	}
	resp.Body.Close()

	app.Close() // the upstream is gone: /status says so
	if code, body := get(api + "/status"); code != 503 || !strings.Contains(body, `"health": "unhealthy"`) {
		t.Fatalf("/status with the upstream down: %d %s", code, body)
	}
}
