package api

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/go-chi/chi/v5"
)

// The status page: hand-written HTML, CSS and JavaScript embedded in the
// binary, no build step and nothing fetched from elsewhere at run time. The
// script polls /status and /deployments with the browser's credentials and
// keeps the charts' series itself.
//
//go:embed ui
var uiFS embed.FS

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	body        []byte
	contentType string
}

// uiAssets are the files under ui/ by name ("index.html", "app.js", ...),
// read once at start-up.
var uiAssets = loadUIAssets()

func loadUIAssets() map[string]uiAsset {
	m := map[string]uiAsset{}
	entries, err := fs.ReadDir(uiFS, "ui")
	if err != nil {
		panic("api: embedded ui: " + err.Error()) // the embed guarantees the directory
	}
	for _, e := range entries {
		b, err := fs.ReadFile(uiFS, "ui/"+e.Name())
		if err != nil {
			panic("api: embedded ui: " + err.Error())
		}
		ct := mime.TypeByExtension(path.Ext(e.Name())) // Go's built-in table covers .html, .js, .css
		if ct == "" {
			ct = "application/octet-stream"
		}
		m[e.Name()] = uiAsset{body: b, contentType: ct}
	}
	return m
}

// pageCSP allows the page its own script, style and API calls and nothing
// else: no inline script, no other origin, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page is GET /: the status page for clients that prefer HTML (browsers).
// Others get the JSON 404 any unknown path gets, so API clients see JSON
// everywhere.
func (s *server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	if !prefersHTML(r) {
		writeError(w, http.StatusNotFound, KindUnknownRoute,
			"no route / for JSON clients: the API has /launch, /switch, /rollback, /discard, /cancel, /status, /deployments, /series, /version; "+
				"/ is the status page, for browsers (Accept: text/html)")
		return
	}
	serveAsset(w, "index.html")
}

// statusOrPage is GET /status: the page for a browser that asks for HTML,
// the JSON Status to everyone else.
func (s *server) statusOrPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	if prefersHTML(r) {
		serveAsset(w, "index.html")
		return
	}
	s.status(w, r)
}

// asset is GET /ui/{name}: the page's script and style sheet.
func (s *server) asset(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	if _, ok := uiAssets[name]; !ok {
		writeError(w, http.StatusNotFound, KindUnknownRoute, "no file /ui/"+name+": the status page is at /")
		return
	}
	serveAsset(w, name)
}

// serveAsset writes the embedded file name, which must exist.
func serveAsset(w http.ResponseWriter, name string) {
	a := uiAssets[name]
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Small, and a new binary may bring a new page: always revalidate.
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(a.body)
}
