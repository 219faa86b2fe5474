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
//	POST /rollback     {} or no body                                  → 200 manager.SwitchResult
//	POST /discard      {"container": "<ref>"} or the bare ref         → 200 manager.ContainerInfo
//	POST /cancel       {"operation": "<name>"}, {} or no body         → 200 {"cancelled": "<name>"}
//	POST /upgrade      {} or no body: the binary on disk takes over   → 200 UpgradeResult
//	GET  /status       200 Status when healthy, 503 with the same body otherwise
//	GET  /deployments  {"deployments": [manager.Event...]} newest first; ?limit=N
//	GET  /series       {"points": [proxy.Point...]}: the last 15 minutes, per sample interval
//	GET  /version      {"version": "..."}
//	GET  /             the status page (HTML) for browsers; JSON clients get a 404
//	GET  /ui/{file}    the status page's script and style sheet
//
// A POST must carry Content-Type: application/json, an X-Switchyard-User
// header or a bearer token, and must not come from another site's page
// (guard.go). Without a token the API answers only requests for a loopback
// Host. A read-only API (Options.Reader, for a static upstream) answers
// the POSTs with 409 read_only.
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

// Reader is what the read-only routes need: /status, /deployments,
// /series and the status page.
type Reader interface {
	// Status is the whole state for /status.
	Status() manager.Status
	// History is the deployment history, newest first.
	History() []manager.Event
	// Series is the proxy's figures per sample interval over the last 15
	// minutes, oldest first.
	Series() []manager.Point
}

// Manager is what the API needs of the deploy manager (*manager.Manager
// implements it). who names the caller for the deployment history.
type Manager interface {
	Reader
	// Launch fetches config id, pulls its image, starts a container and
	// waits until it is healthy.
	Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error)
	// Switch makes the launched container ref (container id, short id, or a
	// config id prefix) the active one, then drains and stops the old one.
	Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error)
	// Rollback launches the previous config and switches to it.
	Rollback(ctx context.Context, who string) (manager.SwitchResult, error)
	// Discard removes a launched container nobody will switch to.
	Discard(ctx context.Context, ref, who string) (manager.ContainerInfo, error)
	// Cancel cancels the running operation (op, when not empty) and
	// returns its name.
	Cancel(ctx context.Context, op, who string) (string, error)
}

// Options configure New.
type Options struct {
	// Manager does the work. Required unless Reader is set.
	Manager Manager
	// Reader, used when Manager is nil, serves the read-only routes of a
	// switchyard without deployments (a static upstream); the others
	// answer 409 read_only.
	Reader Reader
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
	// Upgrade, when set, serves POST /upgrade (upgrade.go), in read-only
	// mode too.
	Upgrade UpgradeFunc
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
	{http.MethodPost, "/discard", true, (*server).discard},
	{http.MethodPost, "/cancel", true, (*server).cancel},
	{http.MethodPost, "/upgrade", true, (*server).upgrade},
	{http.MethodGet, "/status", false, (*server).statusOrPage},
	{http.MethodGet, "/deployments", false, (*server).deployments},
	{http.MethodGet, "/series", false, (*server).series},
	{http.MethodGet, "/version", false, (*server).version},
	{http.MethodGet, "/", false, (*server).page},
	{http.MethodGet, "/ui/*", false, (*server).asset},
}

// server holds the handlers' dependencies.
type server struct {
	o   Options
	rd  Reader // o.Manager, or o.Reader
	log zerolog.Logger
}

// New returns the API's handler. Serve it with read-header and idle
// timeouts but no write timeout that would cut a launch short (the long
// routes clear the write deadline themselves, in case one is set).
func New(o Options) http.Handler {
	s := &server{o: o, rd: o.Reader, log: o.Logger}
	if o.Manager != nil {
		s.rd = o.Manager
	}
	r := chi.NewRouter()
	r.Use(s.withAccessLog, s.withLoopbackHost, s.withAuth)
	for _, rt := range routes {
		r.Method(rt.method, rt.path, s.handler(rt))
	}
	if o.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", o.Metrics)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, KindUnknownRoute,
			"no route "+r.URL.Path+": the API has /launch, /switch, /rollback, /discard, /cancel, /upgrade, /status, /deployments, /series, /metrics, /version")
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

// handler wraps a route's function with what every route needs: the guard
// against other sites for the state-changing ones, and, for long routes, no
// write deadline.
func (s *server) handler(rt route) http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.method != http.MethodGet && s.o.Manager == nil && rt.path != "/upgrade" {
			writeError(w, http.StatusConflict, KindReadOnly, r.URL.Path+": this switchyard proxies to a static upstream "+
				"(serve UPSTREAM WORKERS): it has no deployments to change; start it without UPSTREAM to manage containers")
			return
		}
		if rt.long {
			// A launch pulls an image and waits for health checks: minutes.
			// Not every writer supports deadlines (httptest's does not).
			_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		}
		rt.handle(s, w, r)
	})
	if rt.method == http.MethodGet {
		return h
	}
	return s.withCSRFGuard(h)
}
