package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/manager"
)

// statusClientClosed is logged when the client disconnected before the
// answer (nginx's convention); nobody receives it.
const statusClientClosed = 499

// ErrFollowMode: the host follows current.json (serve --follow), so what
// it serves changes with a release, not with /switch or /rollback.
var ErrFollowMode = errors.New("this host follows current.json")

// errorKinds maps sentinels to answers, most specific first: an error may
// wrap several (a manager error wrapping a source or Docker one), and the
// first match wins. ErrDocker is last because the manager may wrap an image
// pull or unhealthy failure in it.
var errorKinds = []struct {
	err    error
	status int
	kind   string
}{
	{manager.ErrUpgrading, http.StatusServiceUnavailable, KindUpgrading},
	{manager.ErrUpgradeFailed, http.StatusBadGateway, KindUpgradeFailed},
	{ErrFollowMode, http.StatusConflict, KindFollowMode},
	{manager.ErrBusy, http.StatusConflict, KindBusy},
	{manager.ErrCancelled, http.StatusConflict, KindCanceled},
	{manager.ErrNoOperation, http.StatusConflict, KindNoOperation},
	{manager.ErrNoPrevious, http.StatusConflict, KindNoPrevious},
	{manager.ErrUnknownContainer, http.StatusNotFound, KindUnknownContainer},
	{deployconfig.ErrNotFound, http.StatusNotFound, KindNotFound},
	{deployconfig.ErrHashMismatch, http.StatusUnprocessableEntity, KindHashMismatch},
	{deployconfig.ErrAmbiguous, http.StatusUnprocessableEntity, KindAmbiguousID},
	{deployconfig.ErrPolicy, http.StatusUnprocessableEntity, KindPolicy},
	{deployconfig.ErrInvalid, http.StatusUnprocessableEntity, KindInvalidConfig},
	{manager.ErrUnhealthy, http.StatusUnprocessableEntity, KindUnhealthy},
	{dockerctl.ErrImagePull, http.StatusBadGateway, KindImagePull},
	{dockerctl.ErrInvalidSpec, http.StatusUnprocessableEntity, KindInvalidConfig},
	{deployconfig.ErrUnavailable, http.StatusServiceUnavailable, KindConfigSourceUnavailable},
	{manager.ErrDocker, http.StatusServiceUnavailable, KindDockerUnavailable},
}

// classify returns the status and kind for a manager error. ctx is the
// request's: a cancellation caused by the client leaving is not a server
// failure.
func classify(ctx context.Context, err error) (int, string) {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.status, k.kind
		}
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return statusClientClosed, KindCanceled
	}
	return http.StatusInternalServerError, KindInternal
}

// writeManagerError answers a failed manager call.
func (s *server) writeManagerError(w http.ResponseWriter, r *http.Request, op string, err error) {
	status, kind := classify(r.Context(), err)
	ev := s.log.Info()
	if status >= 500 && status != statusClientClosed {
		ev = s.log.Error()
	}
	ev.Str("op", op).Str("kind", kind).Err(err).Msg("api call failed")
	writeError(w, status, kind, err.Error())
}

// writeError writes an ErrorResponse.
func writeError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg, Kind: kind})
}
