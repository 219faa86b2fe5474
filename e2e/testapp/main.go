// Command testapp is the small HTTP app that switchyard's tests run in
// containers. It is built static (CGO_ENABLED=0) into a FROM scratch image,
// with its version set at build time:
//
//	CGO_ENABLED=0 go build -ldflags "-X main.version=v1" -o testapp ./e2e/testapp
//
// Endpoints:
//
//	GET  /               the version and a newline (every answer also carries X-App-Version)
//	GET  /healthcheck    200 "ok"; 500 when NEVER_HEALTHY=1 or after POST /unhealthy
//	POST /unhealthy      makes /healthcheck fail from now on
//	GET  /slow?ms=N      sleeps N ms, then answers like GET /
//	GET  /env?k=NAME     the value of environment variable NAME (404 when unset)
//	GET  /headers        the request headers as JSON, with "Host" added
//	GET  /_stats         {"inflight":..,"peak":..,"served":..} of all other requests
//
// It listens on $HOST:$PORT (default all interfaces, port 8080) and shuts
// down gracefully on SIGTERM or SIGINT, letting in-flight requests finish
// for up to 10 s. With CRASH_ON_RESTART=1 it runs normally the first time
// its container starts and exits with code 3 at once on every later start
// (a mark in the container's filesystem remembers): a crash loop.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// shutdownTimeout bounds the graceful shutdown on SIGTERM.
const shutdownTimeout = 10 * time.Second

// crashMark is the file CRASH_ON_RESTART leaves at the first start.
const crashMark = "/.testapp-started"

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stderr)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if os.Getenv("CRASH_ON_RESTART") == "1" {
		if _, err := os.Stat(crashMark); err == nil {
			log.Printf("testapp %s: started again: crashing (CRASH_ON_RESTART)", version)
			os.Exit(3)
		}
		if err := os.WriteFile(crashMark, nil, 0o644); err != nil {
			log.Printf("testapp: %v", err)
		}
	}
	a := &app{}
	a.unhealthy.Store(os.Getenv("NEVER_HEALTHY") == "1")
	srv := &http.Server{
		Addr:              net.JoinHostPort(os.Getenv("HOST"), port),
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}

	// As PID 1 in a container a signal without a handler is ignored, so the
	// handler is what makes `docker stop` graceful instead of a SIGKILL.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("testapp %s listening on :%s (pid %d)", version, port, os.Getpid())

	select {
	case err := <-errc:
		log.Printf("testapp: %v", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	log.Printf("testapp: signal received, draining %d in-flight requests", a.inflight.Load())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("testapp: shutdown: %v", err)
		os.Exit(1)
	}
	log.Printf("testapp: stopped after serving %d requests", a.served.Load())
}

type app struct {
	inflight, peak, served atomic.Int64
	unhealthy              atomic.Bool
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.version)
	mux.HandleFunc("GET /healthcheck", a.healthcheck)
	mux.HandleFunc("POST /unhealthy", func(w http.ResponseWriter, r *http.Request) {
		a.unhealthy.Store(true)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /slow", a.slow)
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("k"))
		if !ok {
			http.Error(w, "unset", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host) // Go moves Host out of the header map.
		writeJSON(w, h)
	})
	counted := a.count(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App-Version", version)
		// /_stats is left out of the counts so that watching does not disturb them.
		if r.URL.Path == "/_stats" {
			writeJSON(w, map[string]int64{
				"inflight": a.inflight.Load(),
				"peak":     a.peak.Load(),
				"served":   a.served.Load(),
			})
			return
		}
		counted.ServeHTTP(w, r)
	})
}

// count tracks concurrent requests and their peak, which the proxy tests use
// to check that the app never sees more than its workers.
func (a *app) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.inflight.Add(1)
		for {
			p := a.peak.Load()
			if n <= p || a.peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer func() {
			a.inflight.Add(-1)
			a.served.Add(1)
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *app) version(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, version)
}

func (a *app) healthcheck(w http.ResponseWriter, r *http.Request) {
	if a.unhealthy.Load() {
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	fmt.Fprint(w, "ok")
}

func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		http.Error(w, "ms must be a non-negative integer", http.StatusBadRequest)
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		// The client went away; graceful shutdown does not cancel this.
		return
	}
	fmt.Fprintln(w, version)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("testapp: write json: %v", err)
	}
}
