package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// The real binary in drop-in mode (`serve UPSTREAM WORKERS`, flags after
// them) serves the read-only API on --api: /status, /metrics and the status
// page, and refuses deploys.
func TestDropInReadOnlyAPI(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer app.Close()
	listen, apiAddr := testservers.FreeAddr(t), testservers.FreeAddr(t)
	cmd := exec.Command(switchyardBinary(t), "serve", app.Listener.Addr().String(), "2",
		"--listen", listen, "--api", apiAddr, "--log-address", "off")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("switchyard output:\n%s", logs.String())
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if err := testservers.WaitHTTP(t.Context(), "http://"+apiAddr+"/version", 200, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if code, body := get("http://" + listen + "/"); code != 200 || body != "app" {
		t.Fatalf("through the proxy: %d %q", code, body)
	}
	if code, body := get("http://" + apiAddr + "/status"); code != 200 || !strings.Contains(body, `"healthy": true`) {
		t.Fatalf("/status: %d %s", code, body)
	}
	if code, body := get("http://" + apiAddr + "/metrics"); code != 200 || !strings.Contains(body, "switchyard_requests_total") {
		t.Fatalf("/metrics: %d", code)
	}
	resp, err := http.Post("http://"+apiAddr+"/rollback", "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != 409 {
		t.Fatalf("POST /rollback: %v %v, want 409 read_only", resp, err)
	}
	resp.Body.Close()
}
