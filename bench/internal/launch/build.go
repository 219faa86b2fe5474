package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is the Go module the benchmark binaries are built from.
const Module = "github.com/switchyard/switchyard"

// Build compiles the package pkg of Module (e.g. "bench/syncapp") into the
// group's directory and returns the binary's path. It runs `go build`, so the
// working directory must be inside the module (run the benchmarks from the
// repository root).
func (g *Group) Build(pkg string) (string, error) {
	out := filepath.Join(g.Dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, Module+"/"+pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run from the repository root): %w\n%s",
			pkg, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// pprofSource is added to a build by BuildProfiled: net/http/pprof on
// $SWITCHYARD_PPROF_ADDR when it is set. It exists only in that build.
const pprofSource = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("SWITCHYARD_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// BuildProfiled is Build with net/http/pprof served on
// $SWITCHYARD_PPROF_ADDR, added to the command's package through a build
// overlay: the source tree is not touched, and no other build has it.
func (g *Group) BuildProfiled(pkg string) (string, error) {
	dir, err := exec.Command("go", "list", "-f", "{{.Dir}}", Module+"/"+pkg).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s (run from the repository root): %w", pkg, err)
	}
	src := filepath.Join(g.Dir, "pprof_overlay.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(strings.TrimSpace(string(dir)), "zz_bench_pprof.go"): src},
	})
	if err != nil {
		return "", err
	}
	ov := filepath.Join(g.Dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(g.Dir, filepath.Base(pkg)+"-pprof")
	cmd := exec.Command("go", "build", "-overlay", ov, "-o", out, Module+"/"+pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -overlay %s: %w\n%s", pkg, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}
