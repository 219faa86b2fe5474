// Package e2e runs switchyard end to end: the real binary, the machine's
// Docker daemon, an S3-compatible server (versitygw) and a registry
// (docker-registry) on 127.0.0.1. Nothing here is mocked.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/testservers"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// switchyardBinary builds the binary once per test process.
//
// SWITCHYARD_E2E_BIN names another binary to run instead (to measure an
// older version with the same tests).
func switchyardBinary(t *testing.T) string {
	if bin := os.Getenv("SWITCHYARD_E2E_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchyard")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/switchyard")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// stack is one switchyard with its S3 server, registry and Docker.
type stack struct {
	t        *testing.T
	app      string
	bin      string
	s3       *testservers.S3
	reg      *testservers.Registry
	docker   *dockerctl.Client
	bucket   string
	prefix   string
	stateDir string
	token    string
	proxy    string // http://addr
	api      string // http://addr
	listen   string
	apiAddr  string
	cmd      *exec.Cmd
	logs     *syncBuffer
	client   *api.Client // the API, as the CLI calls it
	args     []string    // more serve flags, for start
	serveBin string      // the binary start runs, when not bin (the CLI's)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStack(t *testing.T) *stack {
	ctx := context.Background()
	dc, err := dockerctl.New(ctx)
	if err != nil {
		testservers.Missing(t, "docker daemon", err)
	}
	t.Cleanup(func() { dc.Close() })
	st := &stack{
		t: t, app: fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e6), bin: switchyardBinary(t),
		s3: testservers.StartS3(t), reg: testservers.StartRegistry(t), docker: dc,
		bucket: "deploys", prefix: "shop", stateDir: t.TempDir(), token: "s3cret-token",
		listen: testservers.FreeAddr(t), apiAddr: testservers.FreeAddr(t),
	}
	st.proxy, st.api = "http://"+st.listen, "http://"+st.apiAddr
	if st.client, err = api.NewClient(st.api, api.ClientOptions{Token: st.token, User: "e2e", Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	st.s3.CreateBucket(t, st.bucket)
	t.Cleanup(st.removeContainers)
	return st
}

// image builds the test app at version, pushes it to the registry and
// removes it locally, so that a launch really pulls it.
func (st *stack) image(version string) string {
	ref := st.reg.Ref("testapp:" + version)
	testservers.BuildTestApp(st.t, ref, version)
	testservers.PushImage(st.t, ref)
	testservers.RemoveLocalImage(st.t, ref)
	return ref
}

// config uploads a deployment config and returns its id.
func (st *stack) config(body string) string {
	id := deployconfig.ID([]byte(body))
	st.s3.Put(st.t, st.bucket, st.prefix+"/"+id+".json", []byte(body))
	return id
}

func appConfig(image string, extra string) string {
	return `{"image":"` + image + `","port":8080,"workers":4,` + extra +
		`"health":{"path":"/healthcheck","interval":"100ms","timeout":"2s","start_timeout":"30s"},` +
		`"stop":{"timeout":"5s","drain_timeout":"15s"}}`
}

// start runs switchyard serve and waits until its API answers.
func (st *stack) start() {
	st.t.Helper()
	st.logs = &syncBuffer{}
	bin := st.bin
	if st.serveBin != "" {
		bin = st.serveBin
	}
	cmd := exec.Command(bin, "serve",
		"--app", st.app, "--listen", st.listen, "--api", st.apiAddr, "--api-token", st.token,
		"--configs", "s3://"+st.bucket+"/"+st.prefix, "--s3-endpoint", st.s3.Endpoint,
		"--state-dir", st.stateDir, "--queue-timeout", "10s", "--log-address", "stderr", "--log-level", "debug")
	cmd.Args = append(cmd.Args, st.args...)
	cmd.Env = append(os.Environ(), st.s3.Env()...)
	cmd.Stdout, cmd.Stderr = st.logs, st.logs
	if err := cmd.Start(); err != nil {
		st.t.Fatal(err)
	}
	st.cmd = cmd
	st.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if st.t.Failed() {
			st.t.Logf("switchyard output:\n%s", tail(st.logs.String(), 12000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := st.status(); err == nil {
			return // 200 or 503: the API answers
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("switchyard API did not come up; output:\n%s", st.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops switchyard with SIGKILL: no chance to clean up.
func (st *stack) kill() {
	st.cmd.Process.Kill()
	st.cmd.Wait()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// call makes an API call with the token and returns status and body.
func (st *stack) call(method, path, body string) (int, string) {
	return st.callToken(method, path, body, st.token)
}

func (st *stack) callToken(method, path, body, token string) (int, string) {
	req, _ := http.NewRequest(method, st.api+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// status reads /status with the API client: healthy or not, or an error
// when no answer came.
func (st *stack) status() (api.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return st.client.Status(ctx)
}

func activeID(s api.StatusResponse) string {
	if s.Active == nil {
		return ""
	}
	return s.Active.ID
}

// waitHealthy waits until /status answers 200 with an active container.
func (st *stack) waitHealthy(timeout time.Duration) api.StatusResponse {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := st.status()
		if err == nil && s.Healthy && activeID(s) != "" {
			return s
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("not healthy after %v: %v %+v", timeout, err, s.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches a path through the proxy.
func (st *stack) get(path string) (int, string) {
	resp, err := proxyClient.Get(st.proxy + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

var proxyClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}

// containers lists the app's containers on the daemon.
func (st *stack) containers() []dockerctl.Container {
	cs, err := st.docker.List(context.Background(), map[string]string{"switchyard.app": st.app})
	if err != nil {
		st.t.Fatal(err)
	}
	return cs
}

func (st *stack) removeContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _ := st.docker.List(ctx, map[string]string{"switchyard.app": st.app})
	for _, c := range cs {
		st.docker.Remove(ctx, c.ID)
	}
}

// cli runs the switchyard CLI against the stack's API.
func (st *stack) cli(args ...string) (int, string, string) {
	cmd := exec.Command(st.bin, args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_API="+st.apiAddr, "SWITCHYARD_API_TOKEN="+st.token, "SWITCHYARD_USER=e2e-ci")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		st.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}
