package manager

import (
	"context"
	"encoding/json"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readState reads the state file as the next start-up will.
func (e *env) readState() state {
	e.t.Helper()
	var st state
	b, err := os.ReadFile(filepath.Join(e.state, "state.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) writeState(st state) {
	e.t.Helper()
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(e.state, "state.json"), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// While the old container drains, the switch is already in the history
// and the state file names the old container as retiring: a crash now
// loses neither.
func TestSwitchRecordedBeforeTheDrain(t *testing.T) {
	e := newEnv(t)
	r1 := e.deploy("v1")
	hold := e.docker.holdSlow(r1.Active.ID)
	go e.get("/slow")
	waitFor(t, "a request in flight", func() bool { return e.proxy.Active().InFlight() > 0 })
	info, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	switched := make(chan error, 1)
	go func() { _, err := e.m.Switch(context.Background(), info.ID, "ci"); switched <- err }()
	waitFor(t, "traffic on v2", func() bool { a := e.m.Status().Active; return a != nil && a.ID == info.ID })
	waitFor(t, "the switch in the history", func() bool { return e.m.History()[0].Action == ActionSwitch })
	if h := e.m.History()[0]; h.Container != info.ID || h.Who != "ci" || h.Result != resultOK {
		t.Fatalf("history during the drain: %+v", h)
	}
	if st := e.readState(); st.Active != info.ID || !slices.Equal(st.Retiring, []string{r1.Active.ID}) || len(st.Launching) != 0 {
		t.Fatalf("state file during the drain: %+v", st)
	}
	close(hold)
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	if got := e.actions(); !slices.Equal(got[:2], []string{"retire ok", "switch ok"}) || len(got) != 5 {
		t.Fatalf("history after the drain: %v", got)
	}
	if st := e.readState(); st.Active != info.ID || len(st.Retiring) != 0 {
		t.Fatalf("state file after the drain: %+v", st)
	}
}

// A start-up after switchyard died in a drain and in a launch stops and
// removes the container that was retiring and the one being launched,
// records both, and adopts the active one.
func TestStartRemovesWhatACrashCutShort(t *testing.T) {
	e := newEnv(t)
	old := e.deploy("v1").Active.ID
	active, err := e.m.Launch(context.Background(), e.configs["v2"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	launching, err := e.m.Launch(context.Background(), e.configs["v1"], "ci")
	if err != nil {
		t.Fatal(err)
	}
	e.m.Close()
	// What the state file says when switchyard dies in the drain of old
	// (traffic on active) while launching is being launched.
	e.writeState(state{App: "shop", Active: active.ID, ConfigID: e.configs["v2"],
		Retiring: []string{old}, Launching: []string{launching.ID}, Previous: e.configs["v1"]})
	e.proxy.ClearTarget()
	e.m = e.newManager()
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.docker.running(); !slices.Equal(got, []string{active.ID}) {
		t.Fatalf("running after start-up: %v, want only %s", got, active.ID)
	}
	if !slices.Contains(e.docker.removed, old) || !slices.Contains(e.docker.removed, launching.ID) {
		t.Fatalf("removed: %v", e.docker.removed)
	}
	if code, body := e.get("/"); code != 200 || body != "v2" {
		t.Fatalf("serving after start-up: %d %q", code, body)
	}
	got := e.actions()[:3]
	slices.Sort(got)
	if !slices.Equal(got, []string{"adopt ok", "launch error", "retire ok"}) {
		t.Fatalf("history after start-up: %v", e.actions())
	}
	if st := e.readState(); len(st.Retiring)+len(st.Launching) != 0 || st.Active != active.ID {
		t.Fatalf("state file after start-up: %+v", st)
	}
}

// A reboot (switchyard and the app's containers stopped) brings back the
// state file's active config, here v1 after a rollback, not current.json's.
func TestRebootStartsTheStateFilesConfig(t *testing.T) {
	e := newEnv(t)
	e.deploy("v1")
	e.deploy("v2")
	if _, err := e.m.Rollback(context.Background(), "ops"); err != nil {
		t.Fatal(err)
	}
	atomicfile.Write(filepath.Join(e.dir, "current.json"), []byte(e.configs["v2"]), 0o644)
	e.m.Close()
	for _, id := range e.docker.running() {
		e.docker.rmForce(id)
	}
	e.proxy.ClearTarget()
	e.m = e.newManager()
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a cold start", func() bool { return e.m.Status().Active != nil })
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the reboot: %d %q, want v1 (the state file's)", code, body)
	}
}

// Adoption checks the policy again: a launched container the policy now
// refuses is removed; the active one keeps serving (removing it would take
// the app down) and the breach is in the history.
func TestAdoptionChecksThePolicy(t *testing.T) {
	e := newEnv(t)
	priv := e.put(`{"image":"app:v1","port":8080,"privileged":true,"env":{"VERSION":"p"},"workers":2,` +
		`"health":{"interval":"100ms","timeout":"1s","start_timeout":"1s"},"stop":{"timeout":"1s","drain_timeout":"2s"}}`)
	e.m = e.newManager(func(o *Options) { o.Policy.AllowPrivileged = true })
	e.configs["p"] = priv
	active := e.deploy("p").Active.ID
	spare, err := e.m.Launch(context.Background(), priv, "ci")
	if err != nil {
		t.Fatal(err)
	}
	e.m.Close()
	e.proxy.ClearTarget()
	e.m = e.newManager() // the policy no longer allows privileged containers
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.docker.running(); !slices.Equal(got, []string{active}) || !slices.Contains(e.docker.removed, spare.ID) {
		t.Fatalf("running %v, removed %v: want the active one kept and the spare removed", got, e.docker.removed)
	}
	if code, body := e.get("/"); code != 200 || body != "p" {
		t.Fatalf("serving after start-up: %d %q", code, body)
	}
	var breach *Event
	for _, h := range e.m.History() {
		if h.Action == ActionAdopt && h.Result == resultError {
			breach = &h
		}
	}
	if breach == nil || breach.Container != active {
		t.Fatalf("no policy breach in the history: %v", e.actions())
	}
}
