package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/proxy/compress"
)

// edgeSettings are the settings of the handlers in front of the proxy:
// static files, then compression around both the static responses and the
// app's.
type edgeSettings struct {
	staticDir     string
	staticPrefix  string
	staticMaxAge  time.Duration
	compress      bool
	compressMin   int
	compressTypes []string

	// responseHeaders (set by parseServe, from --header and HEADER_*) are
	// added to static responses too; the proxy adds them to the app's.
	responseHeaders []proxy.Header

	// Built once by build, at parse time: the handlers in front of app,
	// which wrap binds to the proxy once it exists.
	app     lateHandler
	handler http.Handler  // nil: neither static files nor compression
	static  *proxy.Static // closed by close
}

// addEdgeSettings declares their flags and environment variables.
func addEdgeSettings(s *settings, e *edgeSettings) {
	s.str(&e.staticDir, "static", []string{"SWITCHYARD_STATIC"}, "",
		"directory of static files served before the app: a file that exists wins, any other path goes to the app (off when empty)")
	s.str(&e.staticPrefix, "static-prefix", []string{"SWITCHYARD_STATIC_PREFIX"}, "/",
		"URL path mapped to --static: with /static, /static/app.css is DIR/app.css (/: the whole URL space)")
	s.add("static-max-age", []string{"SWITCHYARD_STATIC_MAX_AGE"}, "1h",
		"Cache-Control: public, max-age of static responses, a duration with a unit such as 1h (0: no Cache-Control)", func(v string) error {
			v = strings.TrimSpace(v)
			if v == "0" {
				e.staticMaxAge = 0
				return nil
			}
			// Not parseDuration: a bare number would be milliseconds there,
			// and Cache-Control counts seconds; a unit avoids the mix-up.
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%q: want 0 or a duration with a unit, such as 3600s or 1h", v)
			}
			if d > 0 && d < time.Second {
				return fmt.Errorf("%q is under a second: want 0 or a duration such as 1h", v)
			}
			e.staticMaxAge = d
			return nil
		})
	s.boolean(&e.compress, "compress", []string{"SWITCHYARD_COMPRESS"}, "true",
		"compress responses with zstd or gzip for clients that accept it (--compress=false: off)")
	s.integer(&e.compressMin, "compress-min-size", []string{"SWITCHYARD_COMPRESS_MIN_SIZE"}, strconv.Itoa(compress.DefaultMinSize),
		"smallest response body compressed, in bytes (without a Content-Length, this much is held back to decide; 0: all)", 0)
	s.add("compress-types", []string{"SWITCHYARD_COMPRESS_TYPES"}, strings.Join(compress.DefaultTypes, ","),
		"comma-separated media types compressed: type/subtype, type/*, type/*+suffix (images, video, archives, woff2 and text/event-stream never are)", func(v string) error {
			e.compressTypes = nil
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					e.compressTypes = append(e.compressTypes, t)
				}
			}
			return nil
		})
}

// build makes the edge handlers, once, in front of a handler wrap binds
// later: static files first (try_files $uri @app), then compression around
// both. Their constructors check the settings (the directory opens, the
// prefix and the types are well-formed); their errors name the setting.
func (e *edgeSettings) build() error {
	var h http.Handler = &e.app
	if e.staticDir != "" {
		st, err := proxy.NewStatic(e.staticConfig(), h)
		if err != nil {
			return fmt.Errorf("%w (--static wants an existing directory, --static-prefix a path such as /static)", err)
		}
		e.static, h = st, st
	}
	if e.compress {
		c, err := compress.New(e.compressConfig(), h)
		if err != nil {
			e.close()
			return fmt.Errorf("--compress-types: %w", err)
		}
		h = c
	}
	if h != &e.app {
		e.handler = h
	}
	return nil
}

// close releases the static files' directory.
func (e *edgeSettings) close() {
	if e.static != nil {
		e.static.Close()
		e.static = nil
	}
}

func (e *edgeSettings) staticConfig() proxy.StaticConfig {
	return proxy.StaticConfig{Dir: e.staticDir, Prefix: e.staticPrefix, MaxAge: e.staticMaxAge, Headers: e.responseHeaders}
}

func (e *edgeSettings) compressConfig() compress.Config {
	c := compress.Config{MinSize: e.compressMin, Types: e.compressTypes}
	if c.MinSize == 0 {
		c.MinSize = 1 // 0 means every body here; in CompressConfig it means the default
	}
	if c.Types == nil {
		c.Types = []string{} // an empty --compress-types is an error, not the default
	}
	return c
}

// wrap puts the edge handlers that build made in front of h, the proxy,
// and returns the handler to serve: h itself when there are none. It is
// called once, before serving.
func (e *edgeSettings) wrap(h http.Handler, logger zerolog.Logger) (http.Handler, error) {
	if e.handler == nil {
		return h, nil
	}
	e.app.h = h
	if e.static != nil {
		logger.Info().Str("dir", e.staticDir).Str("prefix", e.staticPrefix).Dur("max_age", e.staticMaxAge).
			Msg("serving static files")
	}
	if e.compress {
		logger.Info().Int("min_size", e.compressConfig().MinSize).Strs("types", e.compressTypes).
			Msg("compressing responses (zstd, gzip)")
	}
	return e.handler, nil
}

// lateHandler serves with a handler set after the chain around it was
// built.
type lateHandler struct{ h http.Handler }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.h.ServeHTTP(w, r) }
