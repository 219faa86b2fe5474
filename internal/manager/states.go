// Package manager runs an app's deployments: launch a container from a
// config, wait for it to be healthy, switch the proxy to it, drain and stop
// the old one; roll back; adopt the running containers after a restart. It
// runs one operation at a time and keeps the state of record in container
// labels and a state file.
//
// # States and transitions
//
// A deployment is one container the manager runs, from its creation to its
// removal. Its Role says where it stands; every change of role goes through
// Manager.moveLocked, which refuses a move the table below does not allow:
//
//	launching ──healthy──▶ launched ──switch──▶ active ──switch to another──▶ retiring ──stopped──▶ gone
//	    │                      │                                                                  ▲
//	    │                      └──── discarded, expired, removed behind switchyard's back ────────┘
//	    └─ exited, unhealthy, Docker error ─────────────────────────────────▶ failed
//	(start-up adopts a running container as launched or, from the state file, as active)
//
// Only an active deployment serves traffic, and there is at most one. A
// launched deployment is healthy and waits beside it for a switch. A
// retiring one finishes its requests (the drain), then is stopped and
// removed. Gone and failed are final: the container no longer exists.
//
// Health is the other axis, driven by the health checker (health.go) and by
// Docker's events (events.go): starting → healthy ⇄ unhealthy, and dead.
// Health never changes the role. An active container that dies stays
// active while the manager brings it back (restart.go): its requests wait
// in the proxy's queue, the container is started again (or, when it was
// removed, its config launched again and switched to) and is healthy once
// more. After a few tries in a row the manager gives up; the container then
// stays active and dead (the proxy answers 502, /status 503) until a
// switch or rollback.
//
// Operations (Launch, Switch, Rollback, the start-up) run one at a time
// through operate (operate.go) and are recorded in the history. The manager
// sees Docker, the config source and the proxy through small interfaces, so
// that this state machine is tested with a fake Docker.
package manager

import "fmt"

// Role is where a deployment stands in its life (see the package doc).
type Role int

// The roles, in the order a deployment goes through them.
const (
	Launching Role = iota // created and started, waiting for its health checks
	Launched              // healthy, beside the active one, ready for a switch
	Active                // the proxy's target
	Retiring              // replaced: draining, then stopped and removed
	Gone                  // stopped and removed after it served (final)
	Failed                // never became healthy, or Docker failed: removed (final)
)

var roleNames = [...]string{"launching", "launched", "active", "retiring", "gone", "failed"}

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// transitions are the moves a deployment may make. Launching → active is
// the adoption of the running active container at start-up.
var transitions = map[Role][]Role{
	Launching: {Launched, Active, Failed},
	Launched:  {Active, Gone},
	Active:    {Retiring},
	Retiring:  {Gone},
}

// canBecome says whether the table allows the move from r to next.
func (r Role) canBecome(next Role) bool {
	for _, to := range transitions[r] {
		if to == next {
			return true
		}
	}
	return false
}

// moveLocked moves d to role next and keeps m.deployments, which holds the
// deployments that have a container, in step. A move the table does not
// allow is a bug in the manager, not a runtime condition: it panics.
// Caller holds m.mu.
func (m *Manager) moveLocked(d *deployment, next Role) {
	if !d.role.canBecome(next) {
		panic(fmt.Sprintf("manager: deployment %s cannot go from %s to %s", d.info.ID, d.role, next))
	}
	d.role = next
	if next == Gone || next == Failed {
		delete(m.deployments, d.info.ID)
	}
}

// Health is what the health checks and Docker say of a container.
type Health string

// The health states. Dead is final for the health checks and Docker's
// events: only the manager's restart of the container (reviveLocked) brings
// it back.
const (
	HealthStarting  Health = "starting"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthDead      Health = "dead"
)

// setHealthLocked changes d's health and reports whether it changed; dead is
// final. Caller holds m.mu.
func setHealthLocked(d *deployment, h Health) bool {
	if d.info.Health == h || d.info.Health == HealthDead {
		return false
	}
	d.info.Health = h
	return true
}

// Action names an entry of the deployment history.
type Action string

// The history's actions: the operations, and what start-up, the health
// checks and Docker report.
const (
	ActionLaunch    Action = "launch"
	ActionSwitch    Action = "switch"
	ActionRollback  Action = "rollback"
	ActionStart     Action = "start"     // the cold start launched current.json
	ActionAdopt     Action = "adopt"     // start-up took over the running active container
	ActionDied      Action = "died"      // Docker reported the container's death
	ActionHealthy   Action = "healthy"   // the health checks passed again
	ActionUnhealthy Action = "unhealthy" // the health checks failed
	ActionRestart   Action = "restart"   // the dead active container was brought back (or not)
	ActionDiscard   Action = "discard"   // an operator removed a launched container
	ActionExpire    Action = "expire"    // a launched container nobody switched to was removed
	ActionRemoved   Action = "removed"   // a container was removed behind switchyard's back
	ActionUpgrade   Action = "upgrade"   // switchyard handed over to a new process of itself (or failed to)
	ActionRetire    Action = "retire"    // a replaced container was drained (or its drain cut), stopped and removed
)

// Results of an Event.
const (
	resultOK    = "ok"
	resultError = "error"
)
