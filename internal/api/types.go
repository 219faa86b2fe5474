package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/manager"
)

// The answers' types are the manager's; these names let a client of the
// API (the CLI, the end-to-end tests) speak of them without the manager.
type (
	// ContainerInfo is the answer of POST /launch and a container in
	// the others.
	ContainerInfo = manager.ContainerInfo
	// SwitchResult is the answer of POST /switch and POST /rollback.
	SwitchResult = manager.SwitchResult
	// Event is one entry of GET /deployments.
	Event = manager.Event
	// Point is one entry of GET /series.
	Point = manager.Point
)

// LaunchRequest is the JSON body of POST /launch.
type LaunchRequest struct {
	ID string `json:"id"`
}

// SwitchRequest is the JSON body of POST /switch. Container and ID are
// synonyms (ID as wunderproxy's clients send it); give one.
type SwitchRequest struct {
	Container string `json:"container,omitempty"`
	ID        string `json:"id,omitempty"`
}

// DiscardRequest is the JSON body of POST /discard (Container and ID are
// synonyms, as for SwitchRequest).
type DiscardRequest = SwitchRequest

// CancelRequest is the JSON body of POST /cancel. Operation, when set,
// names what to cancel as /status shows it ("launch 3fa4c2e1b5d6"): the
// cancel is refused when something else runs.
type CancelRequest struct {
	Operation string `json:"operation,omitempty"`
}

// CancelResponse is the answer of POST /cancel: what was cancelled (it has
// ended when the answer comes).
type CancelResponse struct {
	Cancelled string `json:"cancelled"`
}

// SeriesResponse is the body of GET /series: the proxy's figures per
// sample interval over the last 15 minutes, oldest first.
type SeriesResponse struct {
	// Now is the server's clock when it answered, so that a client can
	// place the points on its own.
	Now    time.Time       `json:"now"`
	Points []manager.Point `json:"points"`
}

// StatusResponse is the body of GET /status: the manager's Status and the
// server's version.
type StatusResponse struct {
	manager.Status
	Version string `json:"version"`
}

// DeploymentsResponse is the body of GET /deployments.
type DeploymentsResponse struct {
	Deployments []Event `json:"deployments"`
}

// VersionResponse is the body of GET /version.
type VersionResponse struct {
	Version string `json:"version"`
}

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
	KindUpgrading               = "upgrade_in_progress"       // 503: a switchyard upgrade is under way; retry in a few seconds
	KindUpgradeFailed           = "upgrade_failed"            // 502: the new switchyard process did not take over; the old one serves on
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
	KindTooLarge                = "too_large"                 // 413: body over maxBodySize
	KindUnauthorized            = "unauthorized"              // 401: missing or wrong token
	KindUnknownRoute            = "unknown_route"             // 404: no such path
	KindMethodNotAllowed        = "method_not_allowed"        // 405: path exists, method does not
	KindCanceled                = "canceled"                  // 499: the client went away first; 409: an operator or a rollback cancelled the operation
	KindNoOperation             = "no_operation"              // 409: cancel found nothing (or not that) running
	KindReadOnly                = "read_only"                 // 409: a static upstream has no deployments to change
	KindFollowMode              = "follow_mode"               // 409: the host follows current.json: switch and rollback with switchyard release
	KindForbidden               = "forbidden"                 // 403: a cross-site request; 421: a non-loopback Host without a token
	KindUnsupportedMedia        = "unsupported_media_type"    // 415: a POST without JSON, X-Switchyard-User or a bearer token
	KindInternal                = "internal"                  // 500: anything else
)

// Error is an error answer of the API, as Client returns it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Kind is the answer's kind (Kind*), or "" when the answer did not come
	// from the API (a proxy in between).
	Kind string
	// Message says what failed; its lines after the first are details (an
	// unhealthy container's last log lines).
	Message string
}

// Error is one line: the message's first line, the status and the kind.
func (e *Error) Error() string {
	first, _, _ := strings.Cut(e.Message, "\n")
	kind := e.Kind
	if kind == "" {
		kind = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d %s)", first, e.Status, kind)
}

// Details are the message's further lines.
func (e *Error) Details() []string {
	_, rest, _ := strings.Cut(strings.TrimRight(e.Message, "\n"), "\n")
	if rest == "" {
		return nil
	}
	return strings.Split(rest, "\n")
}
