package api

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/manager"
)

func TestClientBaseURL(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{"http://127.0.0.1:8001", "http://127.0.0.1:8001", ""},
		{"127.0.0.1:8001", "http://127.0.0.1:8001", ""},
		{"localhost:8001", "http://localhost:8001", ""},
		{":8001", "http://127.0.0.1:8001", ""},
		{"https://deploy.example.com/switchyard/", "https://deploy.example.com/switchyard", ""},
		{"[::1]:8001", "http://[::1]:8001", ""},
		{" http://h:1 ", "http://h:1", ""},
		{"", "", "want http://host:port"},
		{"ftp://h:1", "", "want http://host:port"},
		{"http://h:1/?x=1", "", "want http://host:port"},
	}
	for _, tt := range tests {
		got, err := baseURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("baseURL(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// The client speaks the server's routes: every call reaches the manager
// with the caller's name, and every answer decodes into its type.
func TestClientCalls(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(New(Options{Manager: f, Token: "tok", Version: "v9"}))
	defer srv.Close()
	c, err := NewClient(srv.URL, ClientOptions{Token: "tok", User: "alice", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if info, err := c.Launch(ctx, "3fa4c2e1"); err != nil || info.ID != testContainerID || f.lastCall() != "launch 3fa4c2e1 alice" {
		t.Fatalf("Launch: %+v, %v; call %q", info, err, f.lastCall())
	}
	if res, err := c.Switch(ctx, "1a2b3c4d"); err != nil || !res.Drained || f.lastCall() != "switch 1a2b3c4d alice" {
		t.Fatalf("Switch: %+v, %v; call %q", res, err, f.lastCall())
	}
	if res, err := c.Rollback(ctx); err != nil || res.Active.ID != testContainerID || f.lastCall() != "rollback alice" {
		t.Fatalf("Rollback: %+v, %v; call %q", res, err, f.lastCall())
	}
	if info, err := c.Discard(ctx, "1a2b3c4d"); err != nil || info.ID != testContainerID || f.lastCall() != "discard 1a2b3c4d alice" {
		t.Fatalf("Discard: %+v, %v; call %q", info, err, f.lastCall())
	}
	if op, err := c.Cancel(ctx, "launch 3fa4c2e1b5d6"); err != nil || op != "launch 3fa4c2e1b5d6" || f.lastCall() != "cancel launch 3fa4c2e1b5d6 alice" {
		t.Fatalf("Cancel: %q, %v; call %q", op, err, f.lastCall())
	}
	f.series = []manager.Point{{Requests: 7}}
	if pts, err := c.Series(ctx); err != nil || len(pts) != 1 || pts[0].Requests != 7 {
		t.Fatalf("Series: %+v, %v", pts, err)
	}
	if h, err := c.History(ctx, 2); err != nil || len(h) != 2 || h[0].Action != manager.ActionSwitch {
		t.Fatalf("History: %+v, %v", h, err)
	}
	f.status.Healthy = false // 503 with the same body: an answer, not an error
	if st, err := c.Status(ctx); err != nil || st.Healthy || st.Version != "v9" || st.Active.ID != testContainerID {
		t.Fatalf("Status: %+v, %v", st, err)
	}
}

// An error answer is an *Error with the status, the kind and the message;
// a wrong token is one too.
func TestClientErrors(t *testing.T) {
	f := newFake()
	f.err = fmt.Errorf("%w after 2m0s\nlast log lines:\nboom", manager.ErrUnhealthy)
	srv := httptest.NewServer(New(Options{Manager: f, Token: "tok"}))
	defer srv.Close()
	for _, tt := range []struct {
		token  string
		status int
		kind   string
		first  string
		more   []string
	}{
		{"tok", 422, KindUnhealthy, "container did not become healthy after 2m0s", []string{"last log lines:", "boom"}},
		{"nope", 401, KindUnauthorized, "wrong token: send", nil},
	} {
		c, err := NewClient(srv.URL, ClientOptions{Token: tt.token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Launch(context.Background(), "3fa4c2e1")
		var e *Error
		if !errors.As(err, &e) || e.Status != tt.status || e.Kind != tt.kind || !strings.HasPrefix(e.Error(), tt.first) ||
			strings.Contains(e.Error(), "\n") || strings.Join(e.Details(), "|") != strings.Join(tt.more, "|") {
			t.Errorf("token %q: %#v (%v), want HTTP %d %s", tt.token, e, err, tt.status, tt.kind)
		}
	}
	if _, err := NewClient(srv.URL, ClientOptions{User: "al\x00ice"}); err == nil || !strings.Contains(err.Error(), "--user") {
		t.Errorf("a user name the API refuses: %v", err)
	}
}
