package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/manager"
)

// The real manager is what serve passes to New.
var _ Manager = (*manager.Manager)(nil)

// fakeManager records calls and answers with canned results: a unit test of
// the HTTP layer needs no Docker or S3.
type fakeManager struct {
	mu      sync.Mutex
	calls   []string // "launch <id> <who>", "switch <ref> <who>", "rollback <who>"
	err     error
	info    manager.ContainerInfo
	result  manager.SwitchResult
	status  manager.Status
	history []manager.Event
	series  []manager.Point
}

func (f *fakeManager) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeManager) Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error) {
	if err := f.record("launch " + id + " " + who); err != nil {
		return manager.ContainerInfo{}, err
	}
	return f.info, nil
}

func (f *fakeManager) Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error) {
	if err := f.record("switch " + ref + " " + who); err != nil {
		return manager.SwitchResult{}, err
	}
	return f.result, nil
}

func (f *fakeManager) Rollback(ctx context.Context, who string) (manager.SwitchResult, error) {
	if err := f.record("rollback " + who); err != nil {
		return manager.SwitchResult{}, err
	}
	return f.result, nil
}

func (f *fakeManager) Discard(ctx context.Context, ref, who string) (manager.ContainerInfo, error) {
	if err := f.record("discard " + ref + " " + who); err != nil {
		return manager.ContainerInfo{}, err
	}
	return f.info, nil
}

func (f *fakeManager) Cancel(ctx context.Context, op, who string) (string, error) {
	if err := f.record("cancel " + op + " " + who); err != nil {
		return "", err
	}
	return "launch 3fa4c2e1b5d6", nil
}

func (f *fakeManager) Status() manager.Status   { return f.status }
func (f *fakeManager) History() []manager.Event { return f.history }
func (f *fakeManager) Series() []manager.Point  { return f.series }

func (f *fakeManager) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

const (
	testConfigID    = "3fa4c2e1b5d6a7980123456789abcdef0123456789abcdef0123456789abcdef"
	testContainerID = "1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b"
)

func newFake() *fakeManager {
	info := manager.ContainerInfo{ID: testContainerID, Name: "app-3fa4c2e1", Image: "registry/app:1",
		ConfigID: testConfigID, Addr: "172.17.0.3:8080", Workers: 4, Health: manager.HealthHealthy}
	return &fakeManager{
		info:   info,
		result: manager.SwitchResult{Active: info, Drained: true, DrainFor: time.Second},
		status: manager.Status{App: "app", Healthy: true, Active: &info, Launched: []manager.ContainerInfo{info}},
		history: []manager.Event{
			{Action: "switch", Result: "ok", Container: testContainerID},
			{Action: "launch", Result: "ok", ConfigID: testConfigID},
			{Action: "start", Result: "ok"},
		},
	}
}

// do sends one request to h, for the Host 127.0.0.1:8001 unless hdr says
// another, and returns the recorder.
func do(h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.7:4321"
	req.Host = "127.0.0.1:8001"
	if v, ok := hdr["Host"]; ok {
		req.Host = v
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) ErrorResponse {
	t.Helper()
	var e ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
	}
	if e.Error == "" || e.Kind == "" {
		t.Fatalf("error body %q lacks error or kind", rec.Body)
	}
	return e
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		hdr      map[string]string
		wantCode int
		wantCall string
		wantBody string // a substring
	}{
		{"launch json", "POST", "/launch", `{"id":"` + testConfigID + `"}`, map[string]string{"Content-Type": "application/json"}, 200, "launch " + testConfigID + " 192.0.2.7", `"config_id": "` + testConfigID},
		{"launch json content type", "POST", "/launch", ` {"id": " 3fa4c2e1 "} `, map[string]string{"Content-Type": "application/json"}, 200, "launch 3fa4c2e1 192.0.2.7", `"health": "healthy"`},
		{"launch text", "POST", "/launch", testConfigID, map[string]string{UserHeader: "ci"}, 200, "launch " + testConfigID + " ci", `"id": "` + testContainerID},
		{"launch text trimmed", "POST", "/launch", "\n  3fa4c2e1\r\n", map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer x"}, 200, "launch 3fa4c2e1 192.0.2.7", ""},
		{"launch form content type text", "POST", "/launch", "3fa4c2e1", map[string]string{"Content-Type": "application/x-www-form-urlencoded", UserHeader: "ci"}, 200, "launch 3fa4c2e1 ci", ""},
		{"switch container", "POST", "/switch", `{"container":"1a2b3c4d5e6f"}`, map[string]string{"Content-Type": "application/json"}, 200, "switch 1a2b3c4d5e6f 192.0.2.7", `"drained": true`},
		{"switch id", "POST", "/switch", `{"id":"1a2b3c4d5e6f"}`, map[string]string{"Content-Type": "application/json"}, 200, "switch 1a2b3c4d5e6f 192.0.2.7", `"active"`},
		{"switch both equal", "POST", "/switch", `{"id":"1a2b","container":"1a2b"}`, map[string]string{"Content-Type": "application/json"}, 200, "switch 1a2b 192.0.2.7", ""},
		{"switch text", "POST", "/switch", "1a2b3c4d5e6f\n", map[string]string{UserHeader: "ci"}, 200, "switch 1a2b3c4d5e6f ci", `"drain_ns": 1000000000`},
		{"rollback", "POST", "/rollback", "{}", map[string]string{"Content-Type": "application/json"}, 200, "rollback 192.0.2.7", `"drained": true`},
		{"rollback no body", "POST", "/rollback", "", map[string]string{"Content-Type": "application/json"}, 200, "rollback 192.0.2.7", ""},
		{"discard", "POST", "/discard", `{"container":"1a2b3c4d5e6f"}`, map[string]string{"Content-Type": "application/json"}, 200, "discard 1a2b3c4d5e6f 192.0.2.7", `"id": "` + testContainerID},
		{"cancel", "POST", "/cancel", `{"operation":"launch 3fa4c2e1b5d6"}`, map[string]string{"Content-Type": "application/json"}, 200, "cancel launch 3fa4c2e1b5d6 192.0.2.7", `"cancelled": "launch 3fa4c2e1b5d6"`},
		{"cancel whatever runs", "POST", "/cancel", "", map[string]string{"Content-Type": "application/json"}, 200, "cancel  192.0.2.7", `"cancelled"`},
		{"series", "GET", "/series", "", nil, 200, "", `"points": []`},
		{"rollback ignores body", "POST", "/rollback", "whatever", map[string]string{UserHeader: "ci"}, 200, "rollback ci", ""},
		{"status", "GET", "/status", "", nil, 200, "", `"version": "v1.2.3"`},
		{"deployments", "GET", "/deployments", "", nil, 200, "", `"action": "start"`},
		{"version", "GET", "/version", "", nil, 200, "", `{
  "version": "v1.2.3"
}`},
		{"who header", "POST", "/launch", "3fa4c2e1", map[string]string{UserHeader: "  alice@laptop "}, 200, "launch 3fa4c2e1 alice@laptop", ""},
		{"who header 100 chars", "POST", "/rollback", "", map[string]string{UserHeader: strings.Repeat("ü", 100)}, 200, "rollback " + strings.Repeat("ü", 100), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := do(New(Options{Manager: f, Version: "v1.2.3"}), tt.method, tt.path, tt.body, tt.hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if got := f.lastCall(); got != tt.wantCall {
				t.Errorf("manager call %q, want %q", got, tt.wantCall)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body %s\ndoes not contain %s", rec.Body, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		body     string
		hdr      map[string]string
		wantCode int
		wantKind string
		wantMsg  string
	}{
		{"launch empty body", "/launch", "", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"id"`},
		{"launch blank body", "/launch", " \n\t ", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"id"`},
		{"launch empty object", "/launch", "{}", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"id"`},
		{"launch empty id", "/launch", `{"id":"  "}`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"id"`},
		{"launch unknown field", "/launch", `{"config":"3fa4"}`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `unknown field "config"`},
		{"launch id not a string", "/launch", `{"id":42}`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `want a string`},
		{"launch bad json", "/launch", `{"id":`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, "not a JSON object"},
		{"launch json type not object", "/launch", `"3fa4"`, map[string]string{"Content-Type": "application/json"}, 400, KindBadRequest, "not a JSON object"},
		{"duplicate key", "/switch", `{"container":"x", "container":"1a2b3c4d"}`, map[string]string{"Content-Type": "application/json"}, 400, KindBadRequest, `field "container" is given twice`},
		{"launch text with spaces", "/launch", "3fa4 c2e1", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, "not a single id"},
		{"launch text control char", "/launch", "3fa4\x00c2e1", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, "not a single id"},
		{"switch empty", "/switch", "", map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"container"`},
		{"switch empty object names both", "/switch", `{}`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, `"container" (or "id")`},
		{"switch fields disagree", "/switch", `{"id":"aaaa","container":"bbbb"}`, map[string]string{UserHeader: "ci"}, 400, KindBadRequest, "disagree"},
		{"body too large", "/launch", strings.Repeat("a", maxBodySize+1), map[string]string{UserHeader: "ci"}, 413, KindTooLarge, "larger than"},
		{"body too large json", "/switch", `{"id":"` + strings.Repeat("a", maxBodySize) + `"}`, map[string]string{UserHeader: "ci"}, 413, KindTooLarge, "larger than"},
		{"who too long", "/launch", "3fa4c2e1", map[string]string{UserHeader: strings.Repeat("a", MaxUserLen+1)}, 400, KindBadRequest, UserHeader},
		{"who not printable", "/rollback", "", map[string]string{UserHeader: "al\x7fice"}, 400, KindBadRequest, "printable"},
		{"who not utf-8", "/rollback", "", map[string]string{UserHeader: "al\xffice"}, 400, KindBadRequest, "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := do(New(Options{Manager: f}), "POST", tt.path, tt.body, tt.hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			e := decodeError(t, rec)
			if e.Kind != tt.wantKind || !strings.Contains(e.Error, tt.wantMsg) {
				t.Errorf("error %+v, want kind %q and a message containing %q", e, tt.wantKind, tt.wantMsg)
			}
			if c := f.lastCall(); c != "" {
				t.Errorf("manager was called (%q) for a bad request", c)
			}
		})
	}
}

func TestBodyAtLimitAccepted(t *testing.T) {
	// Exactly MaxBodySize bytes is allowed: the limit is inclusive.
	f := newFake()
	body := strings.Repeat(" ", maxBodySize-8) + "3fa4c2e1"
	rec := do(New(Options{Manager: f}), "POST", "/launch", body, map[string]string{UserHeader: "ci"})
	if rec.Code != 200 || f.lastCall() != "launch 3fa4c2e1 ci" {
		t.Fatalf("status %d, call %q; body %s", rec.Code, f.lastCall(), rec.Body)
	}
}

func TestAuth(t *testing.T) {
	const token = "s3cret-token-value"
	tests := []struct {
		name     string
		method   string
		path     string
		auth     string // Authorization header; "" = none
		wantCode int
	}{
		{"status no header", "GET", "/status", "", 401},
		{"status wrong token", "GET", "/status", "Bearer wrongtoken", 401},
		{"status token prefix", "GET", "/status", "Bearer s3cret", 401},
		{"status basic scheme", "GET", "/status", "Basic " + token, 401},
		{"status bare token", "GET", "/status", token, 401},
		{"status empty bearer", "GET", "/status", "Bearer ", 401},
		{"status right", "GET", "/status", "Bearer " + token, 200},
		{"status lowercase scheme", "GET", "/status", "bearer " + token, 200},
		{"launch no header", "POST", "/launch", "", 401},
		{"launch right", "POST", "/launch", "Bearer " + token, 200},
		{"switch wrong", "POST", "/switch", "Bearer x", 401},
		{"switch right", "POST", "/switch", "Bearer " + token, 200},
		{"rollback wrong", "POST", "/rollback", "Bearer x", 401},
		{"rollback right", "POST", "/rollback", "Bearer " + token, 200},
		{"deployments wrong", "GET", "/deployments", "Bearer x", 401},
		{"deployments right", "GET", "/deployments", "Bearer " + token, 200},
		{"version wrong", "GET", "/version", "", 401},
		{"version right", "GET", "/version", "Bearer " + token, 200},
		{"unknown route hides routes", "GET", "/nope", "", 401},
		{"unknown route right", "GET", "/nope", "Bearer " + token, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := newFake()
			h := New(Options{Manager: f, Token: token, Logger: zerolog.New(&logs)})
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			rec := do(h, tt.method, tt.path, "3fa4c2e1", hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 401 {
				return
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want Bearer", got)
			}
			if e := decodeError(t, rec); e.Kind != KindUnauthorized {
				t.Errorf("kind %q, want %q", e.Kind, KindUnauthorized)
			}
			if c := f.lastCall(); c != "" {
				t.Errorf("manager called (%q) without auth", c)
			}
			if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "192.0.2.7:4321") {
				t.Errorf("failed auth not logged at warn with the remote address:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "wrongtoken") {
				t.Errorf("log contains the token or what was sent:\n%s", logs.String())
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantKind string
	}{
		{"busy", fmt.Errorf("launch 3fa4: %w: switch to 1a2b is running", manager.ErrBusy), 409, KindBusy},
		{"config not found", fmt.Errorf("config 3fa4c2e1: %w", deployconfig.ErrNotFound), 404, KindNotFound},
		{"unknown container", fmt.Errorf("switch nope: %w", manager.ErrUnknownContainer), 404, KindUnknownContainer},
		{"no previous", manager.ErrNoPrevious, 409, KindNoPrevious},
		{"hash mismatch", fmt.Errorf("config x: %w", deployconfig.ErrHashMismatch), 422, KindHashMismatch},
		{"invalid", fmt.Errorf("config x: %w: port missing", deployconfig.ErrInvalid), 422, KindInvalidConfig},
		{"ambiguous", fmt.Errorf("config 3fa4: %w", deployconfig.ErrAmbiguous), 422, KindAmbiguousID},
		{"policy", fmt.Errorf("config x: %w: privileged", deployconfig.ErrPolicy), 422, KindPolicy},
		// A policy refusal is also an invalid config to some callers: the
		// more specific kind wins.
		{"policy and invalid", fmt.Errorf("%w: %w", deployconfig.ErrInvalid, deployconfig.ErrPolicy), 422, KindPolicy},
		{"unhealthy", fmt.Errorf("container 1a2b: %w: last log lines...", manager.ErrUnhealthy), 422, KindUnhealthy},
		{"image pull", fmt.Errorf("pull registry/app:1: %w", dockerctl.ErrImagePull), 502, KindImagePull},
		{"settings the daemon refuses", fmt.Errorf("create container x: %w: range of CPUs is from 0.01 to 2.00", dockerctl.ErrInvalidSpec), 422, KindInvalidConfig},
		{"cancelled", fmt.Errorf("%w by alice: launch x", manager.ErrCancelled), 409, KindCanceled},
		{"nothing to cancel", fmt.Errorf("%w: nothing is running", manager.ErrNoOperation), 409, KindNoOperation},
		{"image pull inside docker", fmt.Errorf("%w: %w", manager.ErrDocker, dockerctl.ErrImagePull), 502, KindImagePull},
		{"unhealthy inside docker", fmt.Errorf("%w: %w", manager.ErrDocker, manager.ErrUnhealthy), 422, KindUnhealthy},
		{"source unavailable", fmt.Errorf("s3: %w", deployconfig.ErrUnavailable), 503, KindConfigSourceUnavailable},
		{"not found inside unavailable", fmt.Errorf("%w: %w", deployconfig.ErrUnavailable, deployconfig.ErrNotFound), 404, KindNotFound},
		{"docker", fmt.Errorf("%w: daemon unreachable", manager.ErrDocker), 503, KindDockerUnavailable},
		{"unknown container inside docker", fmt.Errorf("%w: %w", manager.ErrDocker, manager.ErrUnknownContainer), 404, KindUnknownContainer},
		{"busy beats everything", fmt.Errorf("%w: %w", manager.ErrBusy, manager.ErrDocker), 409, KindBusy},
		{"other", errors.New("something broke"), 500, KindInternal},
		{"deadline without client leaving", context.DeadlineExceeded, 500, KindInternal},
	}
	for _, tt := range tests {
		for _, route := range []string{"/launch", "/switch", "/rollback"} {
			t.Run(tt.name+route, func(t *testing.T) {
				f := newFake()
				f.err = tt.err
				rec := do(New(Options{Manager: f}), "POST", route, "3fa4c2e1", map[string]string{UserHeader: "ci"})
				if rec.Code != tt.wantCode {
					t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
				}
				e := decodeError(t, rec)
				if e.Kind != tt.wantKind {
					t.Errorf("kind %q, want %q", e.Kind, tt.wantKind)
				}
				if e.Error != tt.err.Error() {
					t.Errorf("message %q, want the manager's %q", e.Error, tt.err.Error())
				}
			})
		}
	}
}

func TestClientGone(t *testing.T) {
	f := newFake()
	f.err = fmt.Errorf("launch 3fa4: %w", context.Canceled)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/launch", strings.NewReader("3fa4c2e1"))
	req.Host = "localhost:8001"
	req.Header.Set(UserHeader, "ci")
	rec := httptest.NewRecorder()
	New(Options{Manager: f}).ServeHTTP(rec, req)
	if rec.Code != statusClientClosed {
		t.Fatalf("status %d, want %d", rec.Code, statusClientClosed)
	}
}

func TestStatusUnhealthy(t *testing.T) {
	f := newFake()
	f.status = manager.Status{App: "app", Healthy: false, Source: "dir:/configs"}
	rec := do(New(Options{Manager: f, Version: "v9"}), "GET", "/status", "", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	var got StatusResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.App != "app" || got.Healthy || got.Source != "dir:/configs" || got.Version != "v9" || got.Active != nil {
		t.Errorf("body %+v, want the manager's status and the version", got)
	}
}

func TestDeploymentsLimit(t *testing.T) {
	tests := []struct {
		query    string
		wantCode int
		want     []string // actions, newest first
	}{
		{"", 200, []string{"switch", "launch", "start"}},
		{"?limit=2", 200, []string{"switch", "launch"}},
		{"?limit=1", 200, []string{"switch"}},
		{"?limit=10", 200, []string{"switch", "launch", "start"}},
		{"?limit=0", 400, nil},
		{"?limit=-1", 400, nil},
		{"?limit=x", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rec := do(New(Options{Manager: newFake()}), "GET", "/deployments"+tt.query, "", nil)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 {
				if e := decodeError(t, rec); !strings.Contains(e.Error, "limit") {
					t.Errorf("error %q does not name limit", e.Error)
				}
				return
			}
			var got DeploymentsResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, e := range got.Deployments {
				actions = append(actions, string(e.Action))
			}
			if strings.Join(actions, ",") != strings.Join(tt.want, ",") {
				t.Errorf("actions %v, want %v", actions, tt.want)
			}
		})
	}
}

func TestDeploymentsEmptyIsArray(t *testing.T) {
	f := newFake()
	f.history = nil
	rec := do(New(Options{Manager: f}), "GET", "/deployments", "", nil)
	if !strings.Contains(rec.Body.String(), `"deployments": []`) {
		t.Errorf("body %s, want an empty array", rec.Body)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	tests := []struct {
		method, path string
		wantCode     int
		wantKind     string
		wantAllow    string
	}{
		{"GET", "/nope", 404, KindUnknownRoute, ""},
		{"GET", "/", 404, KindUnknownRoute, ""},
		{"POST", "/launch/extra", 404, KindUnknownRoute, ""},
		{"GET", "/launch", 405, KindMethodNotAllowed, "POST"},
		{"DELETE", "/switch", 405, KindMethodNotAllowed, "POST"},
		{"POST", "/status", 405, KindMethodNotAllowed, "GET"},
		{"PUT", "/deployments", 405, KindMethodNotAllowed, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			f := newFake()
			rec := do(New(Options{Manager: f}), tt.method, tt.path, "", nil)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantCode)
			}
			if e := decodeError(t, rec); e.Kind != tt.wantKind {
				t.Errorf("kind %q, want %q", e.Kind, tt.wantKind)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			if c := f.lastCall(); c != "" {
				t.Errorf("manager called: %q", c)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	var logs bytes.Buffer
	h := New(Options{Manager: newFake(), Logger: zerolog.New(&logs)})
	do(h, "POST", "/launch", "3fa4c2e1", map[string]string{UserHeader: "ci-bot"})
	do(h, "GET", "/status", "", nil)
	do(h, "GET", "/nope", "", nil)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["message"] == "api" {
			lines = append(lines, m)
		}
	}
	want := []struct {
		method, path, who string
		status            float64
	}{
		{"POST", "/launch", "ci-bot", 200},
		{"GET", "/status", "192.0.2.7", 200},
		{"GET", "/nope", "192.0.2.7", 404},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d access lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		l := lines[i]
		if l["level"] != "info" || l["method"] != w.method || l["path"] != w.path || l["who"] != w.who || l["status"] != w.status {
			t.Errorf("line %d = %v, want %+v", i, l, w)
		}
		if _, ok := l["duration"]; !ok {
			t.Errorf("line %d has no duration: %v", i, l)
		}
	}
}

// TestOverHTTP runs the handler in a real server: headers, the write
// deadline clearing through the access-log wrapper, and a real client.
func TestOverHTTP(t *testing.T) {
	f := newFake()
	slow := &slowManager{fakeManager: f, delay: 200 * time.Millisecond}
	srv := httptest.NewUnstartedServer(New(Options{Manager: slow, Token: "tok"}))
	srv.Config.WriteTimeout = 50 * time.Millisecond // the long routes must lift it
	srv.Start()
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/launch", strings.NewReader(`{"id":"3fa4c2e1"}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set(UserHeader, "bob")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("launch slower than the server's write timeout: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), testContainerID) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if got := f.lastCall(); got != "launch 3fa4c2e1 bob" {
		t.Errorf("call %q", got)
	}
}

// slowManager delays Launch to outlast a server write timeout.
type slowManager struct {
	*fakeManager
	delay time.Duration
}

func (s *slowManager) Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error) {
	time.Sleep(s.delay)
	return s.fakeManager.Launch(ctx, id, who)
}
