package launch

import (
	"fmt"
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
