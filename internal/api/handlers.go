package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/manager"
)

// launch is POST /launch.
func (s *server) launch(w http.ResponseWriter, r *http.Request) {
	if who, id, ok := s.parsePost(w, r, "id"); ok {
		info, err := s.o.Manager.Launch(r.Context(), id, who)
		s.answer(w, r, "launch "+id, info, err)
	}
}

// switchTo is POST /switch.
func (s *server) switchTo(w http.ResponseWriter, r *http.Request) {
	if who, ref, ok := s.parsePost(w, r, "container", "id"); ok {
		res, err := s.o.Manager.Switch(r.Context(), ref, who)
		s.answer(w, r, "switch "+ref, res, err)
	}
}

// rollback is POST /rollback. A body, if any, is ignored.
func (s *server) rollback(w http.ResponseWriter, r *http.Request) {
	if who, ok := s.who(w, r); ok {
		res, err := s.o.Manager.Rollback(r.Context(), who)
		s.answer(w, r, "rollback", res, err)
	}
}

// discard is POST /discard.
func (s *server) discard(w http.ResponseWriter, r *http.Request) {
	if who, ref, ok := s.parsePost(w, r, "container", "id"); ok {
		info, err := s.o.Manager.Discard(r.Context(), ref, who)
		s.answer(w, r, "discard "+ref, info, err)
	}
}

// cancel is POST /cancel, with {"operation": name} or no body (whatever
// runs).
func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	who, ok := s.who(w, r)
	if !ok {
		return
	}
	op, err := readOptionalRef(w, r, "operation")
	if err != nil {
		s.badBody(w, r, err)
		return
	}
	name, err := s.o.Manager.Cancel(r.Context(), op, who)
	s.answer(w, r, "cancel", CancelResponse{Cancelled: name}, err)
}

// series is GET /series.
func (s *server) series(w http.ResponseWriter, r *http.Request) {
	points := s.rd.Series()
	if points == nil {
		points = []manager.Point{}
	}
	writeJSON(w, http.StatusOK, SeriesResponse{Now: time.Now().UTC(), Points: points})
}

// answer writes the result of the manager's operation op: v, or the error.
// The handlers pass r.Context() to the manager, which detaches what must
// not be cancelled when the client leaves (a container half started is
// cleaned up by it).
func (s *server) answer(w http.ResponseWriter, r *http.Request, op string, v any, err error) {
	if err != nil {
		s.writeManagerError(w, r, op, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// status is GET /status: 503 when not healthy so that a load balancer can
// use it as is; the body is the same either way.
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st := s.rd.Status()
	code := http.StatusOK
	if !st.Healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, StatusResponse{Status: st, Version: s.o.Version})
}

// deployments is GET /deployments[?limit=N].
func (s *server) deployments(w http.ResponseWriter, r *http.Request) {
	events := s.rd.History() // newest first
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, KindBadRequest,
				fmt.Sprintf("limit %q: want a whole number of at least 1", v))
			return
		}
		events = events[:min(n, len(events))]
	}
	if events == nil {
		events = []manager.Event{} // [] rather than null for clients
	}
	writeJSON(w, http.StatusOK, DeploymentsResponse{Deployments: events})
}

// version is GET /version.
func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionResponse{Version: s.o.Version})
}

// parsePost reads the caller and the reference a POST carries; on failure it
// has answered 400 (or 413) and returns ok false.
func (s *server) parsePost(w http.ResponseWriter, r *http.Request, fields ...string) (who, ref string, ok bool) {
	if who, ok = s.who(w, r); !ok {
		return "", "", false
	}
	ref, err := readRef(w, r, fields...)
	if err != nil {
		s.badBody(w, r, err)
		return "", "", false
	}
	return who, ref, true
}

// badBody answers a request whose body could not be read: 400, or 413.
func (s *server) badBody(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	kind := KindBadRequest
	if errors.Is(err, errTooLarge) {
		status, kind = http.StatusRequestEntityTooLarge, KindTooLarge
	}
	writeError(w, status, kind, r.URL.Path+": "+err.Error())
}

// who is caller(r), answering 400 when the header is unusable.
func (s *server) who(w http.ResponseWriter, r *http.Request) (string, bool) {
	who, err := caller(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, KindBadRequest, err.Error())
		return "", false
	}
	return who, true
}

// writeJSON writes v indented (people read it with curl) with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only a programming error (an unencodable type) gets here.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorResponse{Error: "encoding the answer: " + err.Error(), Kind: KindInternal})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
