package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// outcome is what happened to one request.
type outcome struct {
	status     int           // 0 when the request failed without a response
	retryAfter bool          // a Retry-After header came with it
	latency    time.Duration // from its scheduled send time to the end of the body
	err        string        // the failure, when status is 0
}

// newClient returns a keep-alive client with room for every request in
// flight at the offered rate, that never asks for compression (so that no
// proxy compresses) and gives up on a request after timeout.
func newClient(maxConns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        maxConns,
			MaxIdleConnsPerHost: maxConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// openLoop sends a GET to url at start + each of at, whatever happened to
// the earlier ones (no coordinated omission: a slow answer does not delay
// the next send, and latency is measured from the scheduled time), each in
// its own goroutine. It returns when every request has finished or timed
// out, and the time that took from start.
func openLoop(ctx context.Context, client *http.Client, url string, at []time.Duration, start time.Time) ([]outcome, time.Duration) {
	out := make([]outcome, len(at))
	n := len(at)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ { // bounded by len(at)
		when := start.Add(at[i])
		if d := time.Until(when); d > 0 {
			select {
			case <-ctx.Done():
				n = i
			case <-time.After(d):
			}
		}
		if i >= n {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = do(ctx, client, url, when)
		}()
	}
	wg.Wait() // each request is bounded by the client's timeout
	return out[:n], time.Since(start)
}

func do(ctx context.Context, client *http.Client, url string, at time.Time) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return outcome{err: err.Error(), latency: time.Since(at)}
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: classify(err), latency: time.Since(at)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	o := outcome{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After") != "", latency: time.Since(at)}
	if err != nil {
		o.status, o.err = 0, "body: "+classify(err)
	}
	return o
}

// classify shortens a client error to its kind, so that a table can count them.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Sprintf("%s: %v", oe.Op, oe.Err)
	}
	return err.Error()
}
