package testservers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Registry is a Docker registry (Debian's docker-registry, distribution 2.8)
// serving plain HTTP on 127.0.0.1, which the Docker daemon pushes to and
// pulls from without extra configuration (127.0.0.0/8 is an insecure
// registry by default).
type Registry struct {
	// Addr is host:port, the prefix of the registry's image references.
	Addr string
	// Dir holds the registry's storage.
	Dir string
}

// Ref returns the reference of repository repo (with an optional ":tag") in
// this registry: "<Addr>/<repo>".
func (r *Registry) Ref(repo string) string {
	return r.Addr + "/" + repo
}

// regStartTimeout bounds the wait for the registry's /v2/ to answer.
const regStartTimeout = 15 * time.Second

// StartRegistry starts a registry with temporary storage on a free port,
// waits until GET /v2/ answers 200, and kills it when the test ends.
// A missing docker-registry binary (apt-get install docker-registry) fails
// the test, or skips it under SWITCHYARD_TEST_SKIP_MISSING=1.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	bin, err := FindBinary("docker-registry")
	if err != nil {
		Missing(t, "docker-registry (apt-get install -y --no-install-recommends docker-registry)", err)
	}
	dir := t.TempDir()
	r := &Registry{Addr: FreeAddr(t), Dir: filepath.Join(dir, "data")}
	// The package's default config listens on all interfaces and keeps
	// its data under /var/lib; this one keeps both to the test.
	cfg := fmt.Sprintf(`version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http: {addr: %q, secret: switchyard-test}
`, r.Dir, r.Addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("write registry config: %v", err)
	}
	StartProcess(t, nil, bin, "serve", cfgPath)
	if err := WaitHTTP(context.Background(), "http://"+r.Addr+"/v2/", 200, regStartTimeout); err != nil {
		t.Fatalf("registry on %s did not start: %v", r.Addr, err)
	}
	return r
}
