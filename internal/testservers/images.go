package testservers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// imgTimeout bounds one image build, push or removal.
const imgTimeout = 2 * time.Minute

// imgTestAppDir is the test app's package, relative to the module root.
const imgTestAppDir = "e2e/testapp"

// BuildTestApp builds the test app (e2e/testapp) with its version set to
// version into a FROM scratch image tagged tag, and untags it when the test
// ends. The binary is compiled once per version per test process.
func BuildTestApp(t testing.TB, tag, version string) {
	t.Helper()
	api := imgDocker(t)
	bin, err := imgTestAppBinary(version)
	if err != nil {
		t.Fatalf("build test app %s: %v", version, err)
	}
	root, err := imgModuleRoot()
	if err != nil {
		t.Fatalf("build test app %s: %v", version, err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, imgTestAppDir, "Dockerfile"))
	if err != nil {
		t.Fatalf("build test app %s: %v", version, err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("build test app %s: %v", version, err)
	}
	buildCtx, err := imgTar(map[string][]byte{"Dockerfile": dockerfile, "testapp": binary})
	if err != nil {
		t.Fatalf("build test app %s: build context: %v", version, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), imgTimeout)
	defer cancel()
	// The classic builder: BuildKit through the API needs a client session,
	// and no `# syntax` frontend image could be pulled here anyway.
	resp, err := api.ImageBuild(ctx, bytes.NewReader(buildCtx), client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
		// A label unique to this build makes its image id unique: test
		// packages run in parallel and build byte-identical images, and one
		// package's cleanup must not delete the image another is building.
		Labels: map[string]string{"switchyard.test.build": tag + "-" + imgNonce()},
	})
	if err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
	defer resp.Body.Close()
	t.Cleanup(func() { imgRemove(t, api, tag) })
	if err := imgReadStream(resp.Body); err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
}

// PushImage pushes tag (of the form <registry addr>/<repo>:<tag>) to its
// registry.
func PushImage(t testing.TB, tag string) {
	t.Helper()
	api := imgDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), imgTimeout)
	defer cancel()
	// Some daemons reject a push without an X-Registry-Auth header, even
	// for a registry without authentication: send empty credentials.
	auth, err := authconfig.Encode(registry.AuthConfig{})
	if err != nil {
		t.Fatalf("push image %s: %v", tag, err)
	}
	body, err := api.ImagePush(ctx, tag, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatalf("push image %s: %v", tag, err)
	}
	defer body.Close()
	if err := imgReadStream(body); err != nil {
		t.Fatalf("push image %s: %v", tag, err)
	}
}

// RemoveLocalImage removes tag from the daemon, so that a later pull really
// pulls. A tag that is not there is not an error.
func RemoveLocalImage(t testing.TB, tag string) {
	t.Helper()
	api := imgDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), imgTimeout)
	defer cancel()
	if _, err := api.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("remove image %s: %v", tag, err)
	}
}

// imgRemove is RemoveLocalImage for cleanups: it only logs failures.
func imgRemove(t testing.TB, api *client.Client, tag string) {
	ctx, cancel := context.WithTimeout(context.Background(), imgTimeout)
	defer cancel()
	if _, err := api.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		t.Logf("cleanup: remove image %s: %v", tag, err)
	}
}

// imgDocker returns a client for the daemon of the environment (DOCKER_HOST,
// default /var/run/docker.sock), closed when the test ends; an unreachable
// daemon is reported with Missing.
func imgDocker(t testing.TB) *client.Client {
	t.Helper()
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Missing(t, "docker daemon", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := api.Ping(ctx, client.PingOptions{}); err != nil {
		api.Close()
		Missing(t, "docker daemon", err)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

// imgBinaries caches the compiled test app per version for the process.
var imgBinaries struct {
	sync.Mutex
	m map[string]*imgBinary
}

type imgBinary struct {
	once sync.Once
	path string
	err  error
}

// imgTestAppBinary compiles the test app for version once per process. The
// binaries live in one directory under the system temp dir, one file per
// version, replaced by rename so that test processes running at the same
// time never see a half-written file, and the disk use stays bounded.
func imgTestAppBinary(version string) (string, error) {
	if version == "" || strings.ContainsAny(version, " \t\n'\"/\\") {
		return "", fmt.Errorf("version %q: want a non-empty word without quotes or slashes", version)
	}
	imgBinaries.Lock()
	if imgBinaries.m == nil {
		imgBinaries.m = map[string]*imgBinary{}
	}
	b := imgBinaries.m[version]
	if b == nil {
		b = &imgBinary{}
		imgBinaries.m[version] = b
	}
	imgBinaries.Unlock()
	b.once.Do(func() { b.path, b.err = imgCompile(version) })
	return b.path, b.err
}

func imgCompile(version string) (string, error) {
	root, err := imgModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("switchyard-testapp-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op after the rename
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(),
		"-ldflags", "-X main.version="+version, "./"+imgTestAppDir)
	cmd.Dir = root
	// Static, for a FROM scratch image, and for the daemon's platform
	// (the daemon runs on this machine).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", imgTestAppDir, err, out)
	}
	out := filepath.Join(dir, "testapp-"+version)
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// imgModuleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func imgModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// imgTar makes a build context of files, executable so the binary runs.
func imgTar(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(b)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// imgReadStream reads a build or push progress stream to its end and
// returns the error it reports: these operations answer 200 and then fail
// inside the stream.
func imgReadStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// imgNonce is random enough to tell two builds apart.
func imgNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
