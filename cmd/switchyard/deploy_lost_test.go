package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/manager"
)

// A deploy whose switch got no answer (the API went away while the old
// container drained) asks /status and tells what happened: switched when
// the new container is active, not known while the API stays away.
func TestDeployWhenTheAPIGoesAwayDuringTheSwitch(t *testing.T) {
	for _, k := range []string{"SWITCHYARD_API", "SWITCHYARD_API_TOKEN", "SWITCHYARD_CLIENT_TIMEOUT", "SWITCHYARD_USER"} {
		t.Setenv(k, "")
	}
	lostAnswerWait = 300 * time.Millisecond
	const newID = "1a2b3c4d5e6f00000000000000000000000000000000000000000000000000aa"
	for _, tc := range []struct {
		name     string
		back     bool // /status answers after the switch was cut
		code     int
		wantText string
	}{
		{"switched", true, 0, "switched to 1a2b3c4d5e6f; the API went away while the old container drained"},
		{"not known", false, exitUnknown, "the API went away during the switch to 1a2b3c4d5e6f and has not come back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cut atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/launch":
					json.NewEncoder(w).Encode(api.ContainerInfo{ID: newID, ConfigID: cfgID})
				case r.URL.Path == "/switch":
					cut.Store(true)
					c, _, _ := w.(http.Hijacker).Hijack()
					c.Close() // switchyard died in the drain
				case r.URL.Path == "/status" && cut.Load() && !tc.back:
					c, _, _ := w.(http.Hijacker).Hijack()
					c.Close()
				case r.URL.Path == "/status":
					st := api.StatusResponse{Status: manager.Status{Active: &manager.ContainerInfo{ID: newID}, Healthy: true}}
					json.NewEncoder(w).Encode(st)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			code, _, errOut := runCLI("deploy", "--api", srv.URL, cfgID)
			if code != tc.code || !strings.Contains(errOut, tc.wantText) || strings.Contains(errOut, "retry with") {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
		})
	}
}
