package main

import (
	"fmt"
	"net/http"
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

	// responseHeaders, when set (by runServe, from --header and HEADER_*),
	// are added to static responses too. Unset, they reach app responses
	// only: the proxy adds them to those itself.
	responseHeaders []proxy.Header
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
	s.integer(&e.compressMin, "compress-min-size", []string{"SWITCHYARD_COMPRESS_MIN_SIZE"}, "1024",
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

// validate checks them after parsing: the directory opens, the prefix
// and the types are well-formed.
func (e *edgeSettings) validate() error {
	if e.staticDir != "" {
		st, err := proxy.NewStatic(e.staticConfig(), nil)
		if err != nil {
			return fmt.Errorf("%w (--static wants an existing directory, --static-prefix a path such as /static)", err)
		}
		st.Close()
	}
	if e.compress {
		if _, err := compress.New(e.compressConfig(), nil); err != nil {
			return fmt.Errorf("--compress-types: %w", err)
		}
	}
	return nil
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

// wrap puts the edge handlers in front of the proxy handler h: static files
// first (try_files $uri @app), then compression around both.
func (e *edgeSettings) wrap(h http.Handler, logger zerolog.Logger) (http.Handler, error) {
	if e.staticDir != "" {
		st, err := proxy.NewStatic(e.staticConfig(), h)
		if err != nil {
			return nil, err
		}
		h = st
		logger.Info().Str("dir", e.staticDir).Str("prefix", e.staticPrefix).Dur("max_age", e.staticMaxAge).
			Msg("serving static files")
	}
	if e.compress {
		c, err := compress.New(e.compressConfig(), h)
		if err != nil {
			return nil, fmt.Errorf("--compress-types: %w", err)
		}
		h = c
		logger.Info().Int("min_size", e.compressConfig().MinSize).Strs("types", e.compressTypes).
			Msg("compressing responses (zstd, gzip)")
	}
	return h, nil
}
