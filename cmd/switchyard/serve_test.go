package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
)

func TestParseServe(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, c *serveConfig)
	}{
		{"defaults", []string{"--upstream", "127.0.0.1:9000"}, nil, func(t *testing.T, c *serveConfig) {
			if c.maxConns != 2000 || c.queueTimeout != 3*time.Second || c.healthPath != "/healthcheck" ||
				c.logAddress != "stdout" || c.logFormat != "text" || c.workers != 1 || c.listen != ":8000" ||
				c.apiAddr != "127.0.0.1:8001" || c.configs != "./configs" || c.discipline != proxy.DisciplineAdaptive || c.threads != 0 {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{"gunicorn-proxy variables", []string{"app:8080", "3"}, []string{
			"MAX_CONNECTIONS=50", "QUEUE_TIMEOUT=1500", "SCHEME=https", "HEALTHCHECK_PATH=/up",
			"LOG_ADDRESS=udp://127.0.0.1:514", "LOG_FORMAT=json", "HEADER_X_FRAME_OPTIONS=DENY", "HEADER_STRICT_TRANSPORT_SECURITY=max-age=63072000",
		}, func(t *testing.T, c *serveConfig) {
			if c.upstream != "app:8080" || c.workers != 3 || c.maxConns != 50 || c.queueTimeout != 1500*time.Millisecond ||
				c.scheme != "https" || c.healthPath != "/up" || c.logAddress != "udp://127.0.0.1:514" || c.logFormat != "json" {
				t.Fatalf("parsed: %+v", c)
			}
			want := []proxy.Header{{Name: "STRICT-TRANSPORT-SECURITY", Value: "max-age=63072000"}, {Name: "X-FRAME-OPTIONS", Value: "DENY"}}
			if len(c.headers) != 2 || c.headers[0] != want[0] || c.headers[1] != want[1] {
				t.Fatalf("headers %v, want %v", c.headers, want)
			}
		}},
		{"threads", []string{"--upstream", "a:1"}, []string{"SWITCHYARD_THREADS=1"}, func(t *testing.T, c *serveConfig) {
			if c.threads != 1 {
				t.Fatal(c.threads)
			}
		}},
		{"queue timeout forms", []string{"--upstream", "a:1"}, []string{"QUEUE_TIMEOUT=1m"}, func(t *testing.T, c *serveConfig) {
			if c.queueTimeout != time.Minute {
				t.Fatal(c.queueTimeout)
			}
		}},
		{"flag beats env, SWITCHYARD_ beats alias", []string{"--upstream", "a:1", "--workers", "7"},
			[]string{"WORKERS=2", "SWITCHYARD_MAX_CONNECTIONS=10", "MAX_CONNECTIONS=20"}, func(t *testing.T, c *serveConfig) {
				if c.workers != 7 || c.maxConns != 10 {
					t.Fatalf("workers %d max %d", c.workers, c.maxConns)
				}
			}},
		{"trusted proxies and headers flags", []string{"--upstream", "a:1", "--trusted-proxies", "10.0.0.0/8, 192.168.1.5", "--header", "X-A: 1", "--header", "X-B:2"}, nil,
			func(t *testing.T, c *serveConfig) {
				if len(c.trusted) != 2 || c.trusted[1].String() != "192.168.1.5/32" || len(c.headers) != 2 || c.headers[1].Value != "2" {
					t.Fatalf("trusted %v headers %v", c.trusted, c.headers)
				}
			}},
		{"flags after the positional UPSTREAM WORKERS", []string{"app:8080", "3", "--queue-timeout", "2s", "--api", "127.0.0.1:9001"}, nil,
			func(t *testing.T, c *serveConfig) {
				if c.upstream != "app:8080" || c.workers != 3 || c.queueTimeout != 2*time.Second || !c.apiGiven || c.apiAddr != "127.0.0.1:9001" {
					t.Fatalf("parsed: %+v", c)
				}
			}},
		{"drop-in without --api serves no API", []string{"app:8080"}, nil, func(t *testing.T, c *serveConfig) {
			if c.apiGiven {
				t.Fatal("apiGiven without --api")
			}
		}},
		{"drop-in with the image's public SWITCHYARD_API and no token serves none", []string{"app:8080"}, []string{"SWITCHYARD_API=0.0.0.0:8001"},
			func(t *testing.T, c *serveConfig) {
				if c.apiGiven || !strings.Contains(c.apiSkipped, "--api-token") {
					t.Fatalf("apiGiven %v, skipped %q", c.apiGiven, c.apiSkipped)
				}
			}},
		{"restarts, expiry and limits", []string{"--restart-attempts", "0", "--launched-ttl", "off", "--default-memory", "512m", "--pids-limit", "100"}, nil,
			func(t *testing.T, c *serveConfig) {
				if c.restartAttempts != 0 || c.launchedTTL >= 0 || c.policy.DefaultMemory != 512<<20 || c.policy.PidsLimit != 100 {
					t.Fatalf("parsed: %+v", c.managedSettings)
				}
			}},
		{"managed mode", []string{"--configs", "s3://b/p", "--api", "0.0.0.0:8001", "--api-token", "t", "--allow-privileged"}, []string{"AWS_ENDPOINT_URL=http://127.0.0.1:7070"},
			func(t *testing.T, c *serveConfig) {
				if c.configs != "s3://b/p" || c.s3Endpoint != "http://127.0.0.1:7070" || !c.policy.AllowPrivileged || c.policy.AllowHostNetwork {
					t.Fatalf("%+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseServeErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // the setting the one-line error must name
	}{
		{"negative workers", []string{"--workers", "-1", "a:1"}, nil, "-workers"},
		{"positional workers", []string{"a:1", "zero"}, nil, "WORKERS"},
		{"bad duration", nil, []string{"QUEUE_TIMEOUT=soon"}, "QUEUE_TIMEOUT"},
		{"negative duration", []string{"--queue-timeout", "-5s"}, nil, "queue-timeout"},
		{"unknown flag", []string{"--wokers", "3"}, nil, "--wokers"},
		{"bad max connections", nil, []string{"MAX_CONNECTIONS=0"}, "MAX_CONNECTIONS"},
		{"bad scheme", []string{"a:1"}, []string{"SCHEME=ftp"}, "scheme"},
		{"bad queue discipline", []string{"--queue-discipline", "codel", "a:1"}, nil, `--queue-discipline: queue discipline "codel": want adaptive, fifo or lifo`},
		{"relative health path", []string{"a:1"}, []string{"HEALTHCHECK_PATH=up"}, "healthcheck-path"},
		{"bad log format", []string{"a:1", "--log-format", "%Q"}, nil, "log-format"},
		{"bad upstream", []string{"--upstream", "nohostport"}, nil, "upstream"},
		{"bad CIDR", []string{"a:1", "--trusted-proxies", "10.0.0.0/99"}, nil, "trusted-proxies"},
		{"bad header", []string{"a:1", "--header", "novalue"}, nil, "header"},
		{"too many args", []string{"a:1", "3", "x"}, nil, "too many"},
		{"public API without token", []string{"--api", "0.0.0.0:8001"}, nil, "--api-token"},
		{"bad layout", []string{"--layout", "zip"}, nil, "layout"},
		{"bad bool", []string{"--allow-privileged=maybe"}, nil, "allow-privileged"},
		{"public drop-in API without token", []string{"a:1", "--api", "0.0.0.0:8001"}, nil, "--api-token"},
		{"tiny default memory", []string{"--default-memory", "1k"}, nil, "default-memory"},
		{"zero pids limit", []string{"--pids-limit", "0"}, nil, "pids-limit"},
		{"negative threads", []string{"a:1", "--threads", "-2"}, nil, "threads"},
		{"negative restarts", []string{"--restart-attempts", "-1"}, nil, "restart-attempts"},
		{"bad ttl", []string{"--launched-ttl", "never"}, nil, "launched-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(tt.args, tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %q", msg, tt.want)
			}
		})
	}
}

// The real binary: a bad value exits non-zero with one line on stderr; a
// good run proxies, logs, and stops with exit 0 on SIGTERM.
func TestServeBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "serve", "--workers", "-3", "127.0.0.1:1")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
		t.Fatalf("bad workers: err %v, stderr %q", err, stderr.String())
	}

	// An error at start-up (the address is taken) ends the process with
	// one line, whatever goroutines the start had begun.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	stderr.Reset()
	cmd = exec.Command(bin, "serve", "--listen", taken.Addr().String(), "127.0.0.1:1")
	cmd.Stderr = &stderr
	ended := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ended <- cmd.Wait() }()
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(stderr.String(), "address already in use") {
			t.Fatalf("listen address taken: err %v, stderr %q", err, stderr.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("listen address taken: still running after a minute; stderr %q", stderr.String())
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Write([]byte("app"))
	}))
	defer app.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Addr().String()
	l.Close()
	logFile := filepath.Join(t.TempDir(), "access.log")
	cmd = exec.Command(bin, "serve", "--listen", ln, "--log-address", logFile, app.Listener.Addr().String(), "2")
	cmd.Env = append(os.Environ(), "HEADER_X_TEST=yes")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var resp *http.Response
	for i := 0; i < 300; i++ {
		if resp, err = http.Get("http://" + ln + "/hello"); err == nil {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Test") != "yes" {
		t.Fatalf("through the binary: %v %v", resp, err)
	}
	resp.Body.Close()
	// SIGHUP without TLS changes nothing: the proxy keeps serving.
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond)
	if resp, err = http.Get("http://" + ln + "/after-hup"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after SIGHUP: %v %v", resp, err)
	}
	resp.Body.Close()
	// SIGTERM with a request in flight: it finishes, then exit 0.
	done := make(chan int, 1)
	go func() {
		r, err := http.Get("http://" + ln + "/inflight")
		if err != nil {
			done <- 0
			return
		}
		r.Body.Close()
		done <- r.StatusCode
	}()
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := <-done; code != 200 {
		t.Fatalf("in-flight request during SIGTERM: %d", code)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), `"GET /hello HTTP/1.1" 200`) || !strings.Contains(string(b), "/inflight") {
		t.Fatalf("access log: %q", b)
	}
}
