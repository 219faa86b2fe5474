// Package testservers starts the real servers that switchyard's tests run
// against (an S3-compatible server, a Docker registry, test app images) on
// 127.0.0.1, and stops them when the test ends.
//
// A missing server is a test failure, not a skip: CI installs everything
// (.ci/run). On a laptop, SWITCHYARD_TEST_SKIP_MISSING=1 turns a missing
// dependency into a skip instead.
package testservers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SkipMissingEnv is the opt-out variable for laptops without Docker or the
// test servers installed.
const SkipMissingEnv = "SWITCHYARD_TEST_SKIP_MISSING"

// Missing fails the test because a dependency is missing, or skips it when
// SkipMissingEnv is set.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv(SkipMissingEnv) == "1" {
		t.Skipf("%s unavailable (%v); skipping because %s=1", what, err, SkipMissingEnv)
	}
	t.Fatalf("%s unavailable: %v (install it with .ci/run's setup, or set %s=1 to skip)", what, err, SkipMissingEnv)
}

// FindBinary looks a program up in PATH, then in GOBIN and GOPATH/bin, where
// `go install` puts it.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, GOBIN or GOPATH/bin", name)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// WaitHTTP polls url until it answers with status want, or timeout passes.
func WaitHTTP(ctx context.Context, url string, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error = errors.New("no attempt")
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to answer %d: %w (last: %v)", url, want, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartProcess starts a server process whose output goes to the test log
// when the test fails, and kills it when the test ends.
func StartProcess(t testing.TB, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatalf("log file for %s: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil && len(b) > 0 {
				t.Logf("%s output:\n%s", name, tail(string(b), 4000))
			}
		}
		logf.Close()
	})
	return cmd
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
