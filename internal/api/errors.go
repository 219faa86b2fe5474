package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/manager"
)

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	// Error says what failed, with which input, and what to do.
	Error string `json:"error"`
	// Kind is a stable machine-readable name for the failure (Kind*).
	Kind string `json:"kind"`
}

// Error kinds, the "kind" of an ErrorResponse.
const (
	KindBusy                    = "busy"                      // 409: another operation is running
	KindNotFound                = "not_found"                 // 404: no such deployment config
	KindUnknownContainer        = "unknown_container"         // 404: switch named no launched container
	KindNoPrevious              = "no_previous"               // 409: nothing to roll back to
	KindHashMismatch            = "hash_mismatch"             // 422: config content is not its id
	KindInvalidConfig           = "invalid_config"            // 422: malformed id or config
	KindAmbiguousID             = "ambiguous_id"              // 422: id prefix matches several configs
	KindPolicy                  = "policy"                    // 422: config refused by the operator's policy
	KindUnhealthy               = "unhealthy"                 // 422: container did not become healthy
	KindImagePull               = "image_pull"                // 502: the registry refused or failed the pull
	KindConfigSourceUnavailable = "config_source_unavailable" // 503: S3 (or the directory) unreadable
	KindDockerUnavailable       = "docker_unavailable"        // 503: the Docker daemon failed
	KindBadRequest              = "bad_request"               // 400: the request itself is wrong
	KindTooLarge                = "too_large"                 // 413: body over MaxBodySize
	KindUnauthorized            = "unauthorized"              // 401: missing or wrong token
	KindUnknownRoute            = "unknown_route"             // 404: no such path
	KindMethodNotAllowed        = "method_not_allowed"        // 405: path exists, method does not
	KindCanceled                = "canceled"                  // 499: the client went away first
	KindInternal                = "internal"                  // 500: anything else
)

// StatusClientClosed is logged when the client disconnected before the
// answer (nginx's convention); nobody receives it.
const StatusClientClosed = 499

// errorKinds maps sentinels to answers, most specific first: an error may
// wrap several (a manager error wrapping a source or Docker one), and the
// first match wins. ErrDocker is last because the manager may wrap an image
// pull or unhealthy failure in it.
var errorKinds = []struct {
	err    error
	status int
	kind   string
}{
	{manager.ErrBusy, http.StatusConflict, KindBusy},
	{manager.ErrNoPrevious, http.StatusConflict, KindNoPrevious},
	{manager.ErrUnknownContainer, http.StatusNotFound, KindUnknownContainer},
	{deployconfig.ErrNotFound, http.StatusNotFound, KindNotFound},
	{deployconfig.ErrHashMismatch, http.StatusUnprocessableEntity, KindHashMismatch},
	{deployconfig.ErrAmbiguous, http.StatusUnprocessableEntity, KindAmbiguousID},
	{deployconfig.ErrPolicy, http.StatusUnprocessableEntity, KindPolicy},
	{deployconfig.ErrInvalid, http.StatusUnprocessableEntity, KindInvalidConfig},
	{manager.ErrUnhealthy, http.StatusUnprocessableEntity, KindUnhealthy},
	{dockerctl.ErrImagePull, http.StatusBadGateway, KindImagePull},
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
		return StatusClientClosed, KindCanceled
	}
	return http.StatusInternalServerError, KindInternal
}

// writeManagerError answers a failed manager call.
func (s *server) writeManagerError(w http.ResponseWriter, r *http.Request, op string, err error) {
	status, kind := classify(r.Context(), err)
	ev := s.log.Info()
	if status >= 500 && status != StatusClientClosed {
		ev = s.log.Error()
	}
	ev.Str("op", op).Str("kind", kind).Err(err).Msg("api call failed")
	writeError(w, status, kind, err.Error())
}

// writeError writes an ErrorResponse.
func writeError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg, Kind: kind})
}
