package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/deployconfig"
)

// check prints the id and every problem of a config at once, with the
// policy flags serve takes; exit 1 when a launch would refuse it.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := []byte(`{"image": "app", "port": "80", "workerz": 2, "privileged": true, "health": {"interval": "1ms"}, "env_file": ["SECRET"]}`)
	badFile := filepath.Join(dir, "bad.json")
	os.WriteFile(badFile, bad, 0o644)
	envFile := filepath.Join(dir, "app.env")
	os.WriteFile(envFile, []byte("OTHER=1\n"), 0o600)

	code, out, errOut := runCLI("check", badFile, "--env-file", envFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	for _, want := range []string{"id      " + deployconfig.ID(bad), "5 problems: a launch would refuse it",
		"  - port: want an integer", "  - workerz: unknown field", "  - health.interval: 1ms is below the minimum",
		"  - privileged: refused by policy (start switchyard with --allow-privileged", "  - env_file: SECRET not in the operator's env file"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("check", "--allow-privileged", "--json", badFile)
	var r checkReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.OK || len(r.Problems) != 3 || r.ID != deployconfig.ID(bad) {
		t.Fatalf("--json with the privilege allowed: exit %d, %+v (%v)\n%s", code, r, err, out)
	}

	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"image": "app", "port": 80}`), 0o644)
	if code, out, _ := runCLI("check", good); code != 0 || !strings.Contains(out, "ok: a launch would accept it") {
		t.Fatalf("good config: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"check"}, {"check", filepath.Join(dir, "missing.json")}, {"check", good, "--layout", "zip"}} {
		if code, _, errOut := runCLI(args...); code != 2 || !strings.HasPrefix(errOut, "switchyard: check: ") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
