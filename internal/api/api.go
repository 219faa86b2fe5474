// Package api is switchyard's management HTTP API: routing, auth, JSON in
// and out, errors. The server (New) only parses, authorizes, calls the
// manager and writes JSON. Client is its typed caller, used by the CLI and
// the end-to-end tests; the request and answer types and the error kinds
// they share are in types.go.
//
// Routes (all answer JSON; errors are {"error": "...", "kind": "..."}):
//
//	POST /launch       {"id": "<config id>"} or the bare id as text  → 200 manager.ContainerInfo
//	POST /switch       {"container": "<ref>"}, {"id": "<ref>"} or the bare ref → 200 manager.SwitchResult
//	POST /rollback     no body                                        → 200 manager.SwitchResult
//	GET  /status       200 Status when healthy, 503 with the same body otherwise
//	GET  /deployments  {"deployments": [manager.Event...]} newest first; ?limit=N
//	GET  /version      {"version": "..."}
//	GET  /             the status page (HTML) for browsers; JSON clients get a 404
//	GET  /ui/{file}    the status page's script and style sheet
//
// GET /status answers the status page too when the request's Accept header
// prefers text/html over application/json (a browser); see statuspage.go.
//
// Every route, /status and the page included, needs "Authorization: Bearer
// <token>" when a token is configured. HTTP Basic auth with the token as the
// password (any user name) is accepted as well, because a browser cannot
// send a bearer token when navigating. A load balancer health-checking a
// host either gets the token too, or checks the proxy's health path instead,
// which goes straight to the active container and needs no token.
package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/manager"
)

// Manager is what the API needs of the deploy manager (*manager.Manager
// implements it). who names the caller for the deployment history.
type Manager interface {
	// Launch fetches config id, pulls its image, starts a container and
	// waits until it is healthy.
	Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error)
	// Switch makes the launched container ref (container id, short id, or a
	// config id prefix) the active one, then drains and stops the old one.
	Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error)
	// Rollback launches the previous config and switches to it.
	Rollback(ctx context.Context, who string) (manager.SwitchResult, error)
	// Status is the whole state for /status.
	Status() manager.Status
	// History is the deployment history, newest first.
	History() []manager.Event
}

// Options configure New.
type Options struct {
	// Manager does the work. Required.
	Manager Manager
	// Token, when not empty, is the bearer token every request must carry.
	// Empty means no auth; the command only allows that on a loopback
	// listener.
	Token string
	// Logger receives one info line per call and a warning per failed
	// auth. Default: the zero Logger, which writes nothing.
	Logger zerolog.Logger
	// Version is reported by /version and /status.
	Version string
	// Metrics, when set, serves GET /metrics (Prometheus text format),
	// behind the same auth as every route.
	Metrics http.Handler
}

// maxBodySize is the largest request body read (64 KiB); an id needs far
// less, and the limit keeps a wrong client from making the API buffer much.
const maxBodySize = 64 << 10

// UserHeader names the caller for the deployment history. Without it the
// caller is its remote IP address.
const UserHeader = "X-Switchyard-User"

// MaxUserLen is the most characters UserHeader may hold.
const MaxUserLen = 100

// route is one endpoint; the table also answers 405s with an Allow header.
type route struct {
	method, path string
	long         bool // may take minutes: no write deadline
	handle       func(*server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{http.MethodPost, "/launch", true, (*server).launch},
	{http.MethodPost, "/switch", true, (*server).switchTo},
	{http.MethodPost, "/rollback", true, (*server).rollback},
	{http.MethodGet, "/status", false, (*server).statusOrPage},
	{http.MethodGet, "/deployments", false, (*server).deployments},
	{http.MethodGet, "/version", false, (*server).version},
	{http.MethodGet, "/", false, (*server).page},
	{http.MethodGet, "/ui/*", false, (*server).asset},
}

// server holds the handlers' dependencies.
type server struct {
	o   Options
	log zerolog.Logger
}

// New returns the API's handler. Serve it with read-header and idle
// timeouts but no write timeout that would cut a launch short (the long
// routes clear the write deadline themselves, in case one is set).
func New(o Options) http.Handler {
	s := &server{o: o, log: o.Logger}
	r := chi.NewRouter()
	r.Use(s.withAccessLog, s.withAuth)
	for _, rt := range routes {
		r.Method(rt.method, rt.path, s.handler(rt))
	}
	if o.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", o.Metrics)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, KindUnknownRoute,
			"no route "+r.URL.Path+": the API has /launch, /switch, /rollback, /status, /deployments, /metrics, /version")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		allowed := ""
		for _, rt := range routes {
			prefix, wildcard := strings.CutSuffix(rt.path, "*")
			if rt.path == r.URL.Path || wildcard && strings.HasPrefix(r.URL.Path, prefix) {
				allowed = rt.method
				w.Header().Set("Allow", allowed)
			}
		}
		writeError(w, http.StatusMethodNotAllowed, KindMethodNotAllowed,
			r.Method+" "+r.URL.Path+" is not allowed: use "+allowed)
	})
	return r
}

// handler wraps a route's function with what every route needs: the
// caller's name and, for long routes, no write deadline.
func (s *server) handler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.long {
			// A launch pulls an image and waits for health checks: minutes.
			// Not every writer supports deadlines (httptest's does not).
			_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		}
		rt.handle(s, w, r)
	})
}
