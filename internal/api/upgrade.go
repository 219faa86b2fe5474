package api

import (
	"context"
	"net/http"
)

// UpgradeResult is the answer of POST /upgrade: the process that answered
// (it stops now) and the one that took over (0 when it is not known: no
// pid file).
type UpgradeResult struct {
	OldPID int `json:"old_pid"`
	NewPID int `json:"new_pid,omitempty"`
}

// UpgradeFunc starts the binary on disk as a new switchyard process with
// this one's listening sockets and returns once it has taken over, or why
// it did not (this process then keeps serving).
type UpgradeFunc func(ctx context.Context, who string) (UpgradeResult, error)

// upgrade is POST /upgrade.
func (s *server) upgrade(w http.ResponseWriter, r *http.Request) {
	if s.o.Upgrade == nil {
		writeError(w, http.StatusNotFound, KindUnknownRoute, "this switchyard cannot upgrade itself")
		return
	}
	if who, ok := s.who(w, r); ok {
		res, err := s.o.Upgrade(r.Context(), who)
		s.answer(w, r, "upgrade", res, err)
	}
}
