package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// driveResult is what a client reports after driving requests.
type driveResult struct {
	requests int           // responses received
	errors   int           // non-2xx/3xx responses and socket errors
	elapsed  time.Duration // the client's own measure of the run
}

// driver sends about n requests of scenario sc to base+sc.path over conns
// connections.
type driver func(ctx context.Context, base string, sc scenario, n, conns int, limit time.Duration) (driveResult, error)

// wrkMarker is the line the Lua script prints at the n-th response.
const wrkMarker = "WRK-COUNT-REACHED"

// wrkScript stops wrk's (single) thread at the n-th response and says so.
// thread:stop() alone is not enough: wrk's main thread sleeps for the whole
// -d before it prints, so the driver sends SIGINT when it reads the marker,
// which makes wrk print its summary at once.
const wrkScript = `local n, limit = 0, %d
%s
function response(status, headers, body)
  n = n + 1
  if n == limit then
    io.write("` + wrkMarker + `\n"); io.flush()
    wrk.thread:stop()
  end
end
`

// wrkSetup is the scenario's request in wrk's Lua: its method, body and
// Connection field.
func wrkSetup(sc scenario) string {
	var b strings.Builder
	if sc.method != "" && sc.method != http.MethodGet {
		fmt.Fprintf(&b, "wrk.method = %q\n", sc.method)
	}
	if sc.body > 0 {
		fmt.Fprintf(&b, "wrk.body = string.rep(\"b\", %d)\n", sc.body)
		b.WriteString("wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n")
	}
	if sc.close {
		b.WriteString("wrk.headers[\"Connection\"] = \"close\"\n")
	}
	return b.String()
}

// wrkDriver drives with wrk -t1: conns connections, stopping after n
// responses or after limit, whichever is first.
func wrkDriver(dir string) driver {
	return func(ctx context.Context, base string, sc scenario, n, conns int, limit time.Duration) (driveResult, error) {
		script, err := os.CreateTemp(dir, "count-*.lua")
		if err != nil {
			return driveResult{}, err
		}
		defer os.Remove(script.Name())
		fmt.Fprintf(script, wrkScript, n, wrkSetup(sc))
		script.Close()
		cmd := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(conns),
			"-d"+strconv.Itoa(int(limit.Seconds()))+"s", "--timeout", "10s", "-s", script.Name(), base+sc.path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return driveResult{}, err
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return driveResult{}, fmt.Errorf("start wrk: %w", err)
		}
		var out strings.Builder
		lines := bufio.NewScanner(stdout)
		for lines.Scan() { // ends when wrk exits: at the marker + SIGINT, or after limit
			line := lines.Text()
			if line == wrkMarker {
				_ = cmd.Process.Signal(syscall.SIGINT)
				continue
			}
			out.WriteString(line + "\n")
		}
		if err := cmd.Wait(); err != nil {
			return driveResult{}, fmt.Errorf("wrk: %w\n%s%s", err, out.String(), stderr.String())
		}
		return parseWrk(out.String())
	}
}

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string) (driveResult, error) {
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return driveResult{}, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	var r driveResult
	r.requests, _ = strconv.Atoi(m[1])
	v, _ := strconv.ParseFloat(m[2], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
	r.elapsed = time.Duration(v * float64(unit))
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	return r, nil
}

// goDriver is the fallback when wrk is not installed: conns goroutines, each
// with its own keep-alive connection (unless the scenario closes them),
// sharing a count of n requests.
func goDriver(ctx context.Context, base string, sc scenario, n, conns int, limit time.Duration) (driveResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true, DisableKeepAlives: sc.close,
	}}
	body := strings.Repeat("b", sc.body)
	method := cmp.Or(sc.method, http.MethodGet)
	defer client.CloseIdleConnections()
	var left, done, failed atomic.Int64
	left.Store(int64(n))
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && ctx.Err() == nil { // bounded by n and limit
				req, _ := http.NewRequestWithContext(ctx, method, base+sc.path, strings.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
				if resp.StatusCode >= 400 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := driveResult{requests: int(done.Load()), errors: int(failed.Load()), elapsed: time.Since(start)}
	if errors.Is(ctx.Err(), context.Canceled) {
		return r, ctx.Err()
	}
	return r, nil
}
