package manager

import (
	"strings"
	"testing"
)

// Every move the package doc draws is allowed, every other one refused.
func TestRoleTransitions(t *testing.T) {
	allowed := map[[2]Role]bool{
		{Launching, Launched}: true, {Launching, Active}: true, {Launching, Failed}: true,
		{Launched, Active}: true, {Launched, Gone}: true, {Active, Retiring}: true, {Retiring, Gone}: true,
	}
	roles := []Role{Launching, Launched, Active, Retiring, Gone, Failed}
	for _, from := range roles {
		for _, to := range roles {
			if got := from.canBecome(to); got != allowed[[2]Role{from, to}] {
				t.Errorf("%s → %s allowed %v, want %v", from, to, got, !got)
			}
		}
	}
	names := map[Role]string{Launching: "launching", Launched: "launched", Active: "active", Retiring: "retiring",
		Gone: "gone", Failed: "failed", Role(42): "Role(42)"}
	for r, want := range names {
		if r.String() != want {
			t.Errorf("Role %d is %q, want %q", int(r), r.String(), want)
		}
	}
}

// A move the table refuses is a bug: moveLocked panics rather than let the
// state machine drift, and changes nothing.
func TestIllegalMovePanics(t *testing.T) {
	m := &Manager{deployments: map[string]*deployment{}}
	d := &deployment{info: ContainerInfo{ID: "c1"}, role: Launched}
	m.deployments["c1"] = d
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "from launched to retiring") {
			t.Fatalf("panic %v, want one naming the move", r)
		}
		if d.role != Launched || m.deployments["c1"] != d {
			t.Fatalf("the refused move changed the deployment: %s", d.role)
		}
	}()
	m.moveLocked(d, Retiring)
}

// Dead is final; the other health changes apply once.
func TestSetHealth(t *testing.T) {
	d := &deployment{info: ContainerInfo{Health: HealthStarting}}
	steps := []struct {
		to      Health
		changed bool
	}{{HealthHealthy, true}, {HealthHealthy, false}, {HealthUnhealthy, true}, {HealthDead, true}, {HealthHealthy, false}}
	for _, s := range steps {
		if got := setHealthLocked(d, s.to); got != s.changed {
			t.Fatalf("to %s: changed %v, want %v (now %s)", s.to, got, s.changed, d.info.Health)
		}
	}
	if d.info.Health != HealthDead {
		t.Fatalf("health %s after death", d.info.Health)
	}
}
