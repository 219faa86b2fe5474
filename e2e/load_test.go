package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// openLoad sends GET requests at a fixed rate whatever the answers take
// (open loop), each on a new connection so that a refused connection is
// seen as such, and records every outcome.
type openLoad struct {
	url    string
	rate   int
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    []outcome
}

// outcome is one request's: when it was sent, its status (0: no answer)
// and, without one, why.
type outcome struct {
	at      time.Time
	status  int
	refused bool
	err     error
}

var loadClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// startOpenLoad sends rate requests a second to url until stop.
func startOpenLoad(url string, rate int) *openLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &openLoad{url: url, rate: rate, cancel: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				l.wg.Add(1)
				go func() { defer l.wg.Done(); l.one() }()
			}
		}
	}()
	return l
}

func (l *openLoad) one() {
	o := outcome{at: time.Now()}
	resp, err := loadClient.Get(l.url)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
	} else {
		o.err, o.refused = err, errors.Is(err, syscall.ECONNREFUSED)
	}
	l.mu.Lock()
	l.res = append(l.res, o)
	l.mu.Unlock()
}

// stop ends the load and waits for the requests in flight.
func (l *openLoad) stop() loadSummary {
	l.cancel()
	l.wg.Wait()
	var s loadSummary
	var first, last time.Time
	for _, o := range l.res {
		s.sent++
		failed := true
		switch {
		case o.refused:
			s.refused++
		case o.err != nil:
			s.otherErrors++
			s.lastErr = o.err
		case o.status == http.StatusServiceUnavailable:
			s.unavailable++
		case o.status != http.StatusOK:
			s.otherStatus++
		default:
			failed = false
		}
		if failed {
			if first.IsZero() || o.at.Before(first) {
				first = o.at
			}
			if o.at.After(last) {
				last = o.at
			}
		}
	}
	if !first.IsZero() {
		s.gap = last.Sub(first) + time.Second/time.Duration(l.rate)
	}
	return s
}

// loadSummary counts the outcomes; gap is the time from the first failed
// request to the last (plus one interval): the restart gap clients saw.
type loadSummary struct {
	sent, refused, unavailable, otherErrors, otherStatus int
	gap                                                  time.Duration
	lastErr                                              error
}

func (s loadSummary) failed() int { return s.refused + s.unavailable + s.otherErrors + s.otherStatus }

func (s loadSummary) String() string {
	return fmt.Sprintf("%d requests: %d refused, %d answered 503, %d other errors (last: %v), %d other statuses; gap %v",
		s.sent, s.refused, s.unavailable, s.otherErrors, s.lastErr, s.otherStatus, s.gap.Round(time.Millisecond))
}

// logLoad logs a summary for the report.
// stopNoneFailed lets the last second's requests end, stops the load, logs
// it as what, and fails the test if any request failed.
func (l *openLoad) stopNoneFailed(t *testing.T, what string) loadSummary {
	t.Helper()
	time.Sleep(time.Second)
	s := l.stop()
	logLoad(t, what, s)
	if s.failed() != 0 {
		t.Fatalf("%s: want none failed", s)
	}
	return s
}

func logLoad(t *testing.T, what string, s loadSummary) {
	t.Helper()
	t.Logf("LOAD %s: %s", what, s)
}
