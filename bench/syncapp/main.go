// Command syncapp imitates an app server with synchronous workers (gunicorn's
// sync worker class) for the load-shedding benchmarks.
//
// Each request needs one of -workers workers, handed out first come first
// served, and holds it for -service. A health request (-health-path) also
// needs a worker but holds it for ~0, as a gunicorn health view would. The
// app counts the requests it holds — running or waiting for a worker, which is
// what gunicorn's listen backlog holds — and records the peak of non-health
// ones (the number a shedding proxy must keep at or under -workers) and the
// peak of all.
//
//	GET  /_stats  {"peak":…, "peak_all":…, "served":…, "health_served":…}; needs no worker
//	POST /_reset  zero the counters (peaks restart from what is inside now)
//
// -workers 0 is the fast mode for the CPU benchmark: no workers, no sleep,
// every request answered at once with the same ~100-byte body, or with N
// bytes for GET /size/N (N up to 1 MiB).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

// body is the fixed response: 100 bytes.
var body = []byte("ok: this is syncapp, an imitation of a gunicorn sync-worker app server; fixed 100-byte body .......\n")

// big holds the bodies of /size/N.
var big = bytes.Repeat([]byte("0123456789abcdef"), 1<<16)

// app is the imitation app server.
type app struct {
	// workers is a semaphore of capacity -workers; nil when unlimited. Go
	// queues goroutines blocked on a full channel in FIFO order, so workers
	// are handed out first come first served.
	workers    chan struct{}
	service    time.Duration
	healthPath string

	inside, insideAll atomic.Int64 // requests held now: non-health, all
	peak, peakAll     atomic.Int64
	served, healthOK  atomic.Int64
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_stats":
		a.writeStats(w)
		return
	case "/_reset":
		if r.Method != http.MethodPost {
			http.Error(w, "POST /_reset", http.StatusMethodNotAllowed)
			return
		}
		a.reset()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	health := r.URL.Path == a.healthPath
	a.enter(health)
	defer a.leave(health)

	// Like a sync worker, finish the request even if the client has gone:
	// gunicorn does not notice a disconnect while it waits or works.
	if a.workers != nil {
		a.workers <- struct{}{}
		if !health {
			time.Sleep(a.service)
		}
		<-a.workers
	}
	_, _ = io.Copy(io.Discard, r.Body)
	b := body
	if n, ok := strings.CutPrefix(r.URL.Path, "/size/"); ok {
		if size, err := strconv.Atoi(n); err == nil && size >= 0 && size <= len(big) {
			b = big[:size]
		}
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	_, _ = w.Write(b)
	if health {
		a.healthOK.Add(1)
	} else {
		a.served.Add(1)
	}
}

func (a *app) enter(health bool) {
	raise(&a.peakAll, a.insideAll.Add(1))
	if !health {
		raise(&a.peak, a.inside.Add(1))
	}
}

func (a *app) leave(health bool) {
	a.insideAll.Add(-1)
	if !health {
		a.inside.Add(-1)
	}
}

// raise sets *p to n if n is larger.
func raise(p *atomic.Int64, n int64) {
	for {
		old := p.Load()
		if n <= old || p.CompareAndSwap(old, n) {
			return
		}
	}
}

func (a *app) reset() {
	a.peak.Store(a.inside.Load())
	a.peakAll.Store(a.insideAll.Load())
	a.served.Store(0)
	a.healthOK.Store(0)
}

// Stats is the /_stats answer.
type Stats struct {
	Peak         int64 `json:"peak"`          // most non-health requests held at once
	PeakAll      int64 `json:"peak_all"`      // most requests of any kind held at once
	Served       int64 `json:"served"`        // non-health requests answered
	HealthServed int64 `json:"health_served"` // health requests answered
	Inside       int64 `json:"inside"`        // non-health requests held now
}

func (a *app) writeStats(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Stats{
		Peak: a.peak.Load(), PeakAll: a.peakAll.Load(),
		Served: a.served.Load(), HealthServed: a.healthOK.Load(), Inside: a.inside.Load(),
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	workers := flag.Int("workers", 3, "sync workers; 0 = unlimited and instant (CPU bench mode)")
	service := flag.Duration("service", 50*time.Millisecond, "time a request holds its worker")
	healthPath := flag.String("health-path", "/healthcheck", "path of the health view (holds a worker for ~0)")
	flag.Parse()

	a := &app{service: *service, healthPath: *healthPath}
	if *workers > 0 {
		a.workers = make(chan struct{}, *workers)
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	launch.ServeUntilSignal("syncapp", srv)
}
