package manager

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/proxy"
)

func TestValidHostID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"web-1", true},
		{"ip-10-0-0-1.eu-west-1.compute.internal", true},
		{"a", true},
		{"A_b.9", true},
		{"", false},
		{"-web", false},
		{".web", false},
		{"web 1", false},
		{"web/1", false},
		{strings.Repeat("h", 63), true},
		{strings.Repeat("h", 64), false},
	} {
		if err := ValidHostID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidHostID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
	if err := ValidHostID(DefaultHostID()); err != nil {
		t.Errorf("DefaultHostID() %q: %v", DefaultHostID(), err)
	}
}

// Two switchyards of the app on one Docker daemon with their own host ids
// (and state directories) each adopt only their own containers; the host
// id is in the state file and on the containers.
func TestTwoHostsOnOneDaemonAdoptTheirOwn(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	stateA, stateB := e.state, t.TempDir()
	a := e.newManager(func(o *Options) { o.HostID = "host-a" })
	e.m = a
	rA := e.deploy("v1")
	pb, err := proxy.New(proxy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	b := e.newManager(func(o *Options) { o.HostID = "host-b"; o.StateDir = stateB; o.Proxy = pb })
	if err := b.Start(e.ctx); err != nil {
		t.Fatalf("second host on the daemon: %v", err)
	}
	if st := b.Status(); st.Active != nil || len(st.Launched) != 0 {
		t.Fatalf("host-b adopted host-a's container: %+v", st)
	}
	e.m = b
	info, err := b.Launch(e.ctx, e.configs["v2"], "test")
	if err != nil {
		t.Fatal(err)
	}
	rB, err := b.Switch(e.ctx, info.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	if l := e.docker.ctrs[rA.Active.ID].spec.Labels; l[LabelHost] != "host-a" || l[LabelApp] != "shop" {
		t.Fatalf("labels of host-a's container: %v", l)
	}
	if b, _ := os.ReadFile(filepath.Join(stateA, "state.json")); !strings.Contains(string(b), `"host_id": "host-a"`) {
		t.Fatalf("state file of host-a: %s", b)
	}
	for _, h := range []struct{ host, dir, want string }{{"host-a", stateA, rA.Active.ID}, {"host-b", stateB, rB.Active.ID}} {
		e.proxy.ClearTarget()
		// No --host-id on restart: the state file's is kept.
		m := e.newManager(func(o *Options) { o.StateDir = h.dir })
		if err := m.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		st := m.Status()
		if m.HostID() != h.host || st.Active == nil || st.Active.ID != h.want || len(st.Launched) != 0 {
			t.Fatalf("restart of %s adopted %+v (host id %s)", h.host, st, m.HostID())
		}
		m.Close()
	}
}

// A second switchyard for the same app and host id, with another state
// directory, refuses to start and names the first; one sharing the state
// directory (a self-upgrade) does not.
func TestSecondInstanceRefused(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	e.m = e.newManager(func(o *Options) { o.HostID = "web-1" })
	e.deploy("v1")
	other := t.TempDir()
	second, err := New(Options{App: "shop", HostID: "web-1", Source: e.m.o.Source, Docker: e.docker, Proxy: e.proxy, StateDir: other})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	err = second.Start(e.ctx)
	if !errors.Is(err, ErrOtherInstance) || !strings.Contains(err.Error(), e.state) || !strings.Contains(err.Error(), "--host-id") {
		t.Fatalf("second instance: %v", err)
	}
	// Nothing was touched: the first still serves.
	if code, body := e.get("/"); code != 200 || body != "v1" {
		t.Fatalf("after the refusal: %d %q", code, body)
	}
	// And it may not launch either.
	if _, err := second.Launch(e.ctx, e.configs["v2"], "test"); !errors.Is(err, ErrOtherInstance) {
		t.Fatalf("launch by the second instance: %v", err)
	}
	upgrade := e.newManager()
	if err := upgrade.Start(e.ctx); err != nil {
		t.Fatalf("a process sharing the state directory: %v", err)
	}
}

// A host id given that differs from the state file's is refused; the
// state file of a version before host ids adopts its unlabelled containers.
func TestHostIDAndStateFile(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	e.m = e.newManager(func(o *Options) { o.HostID = "web-1" })
	e.m.Close()
	if err := os.WriteFile(filepath.Join(e.state, "state.json"), []byte(`{"app":"shop","host_id":"web-1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{App: "shop", HostID: "web-2", Source: e.m.o.Source, Docker: e.docker, Proxy: e.proxy, StateDir: e.state})
	if err == nil || !strings.Contains(err.Error(), `belongs to host id "web-1"`) {
		t.Fatalf("host id against the state file: %v", err)
	}
	if _, err := New(Options{App: "shop", HostID: "no/slash", Source: e.m.o.Source, Docker: e.docker, Proxy: e.proxy, StateDir: t.TempDir()}); err == nil {
		t.Fatal("an invalid host id was accepted")
	}
}

func TestLegacyStateAdoptsUnlabelled(t *testing.T) {
	e := newEnv(t)
	r := e.deploy("v1")
	e.m.Close()
	// As an older switchyard left them: no host or owner labels, no host id
	// in the state file.
	c := e.docker.ctrs[r.Active.ID]
	delete(c.spec.Labels, LabelHost)
	delete(c.spec.Labels, LabelOwner)
	b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	b = []byte(strings.Replace(string(b), `"host_id"`, `"old_host_id"`, 1))
	if err := os.WriteFile(filepath.Join(e.state, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.proxy.ClearTarget()
	m := e.newManager(func(o *Options) { o.HostID = "web-9" })
	if err := m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.Active == nil || st.Active.ID != r.Active.ID {
		t.Fatalf("legacy container not adopted: %+v", st)
	}
}
