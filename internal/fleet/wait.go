package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/ids"
)

// ErrLaunchFailed: a host reported a failed launch of the release.
var ErrLaunchFailed = errors.New("the release failed")

// graceRounds is how many more reads Wait makes after a first host failed,
// so that it can name every host that fails (they try at about the same
// time) rather than the first alone.
const graceRounds = 3

// WaitOptions say what Wait waits for.
type WaitOptions struct {
	// Released is what Release wrote.
	Released Released
	// Every is how often the heartbeats are read. Default 1 s.
	Every time.Duration
	// Progress gets a line whenever a host's state changes.
	Progress func(line string)
}

// hostState is one host's progress on a release.
type hostState struct {
	done   bool
	failed string // the error, when it failed
	line   string
}

// Wait blocks until every live host serves the release healthy (nil), or
// one reports a failed launch of it (ErrLaunchFailed naming each failed
// host and its error), or current.json names another release (ErrRaced),
// or ctx ends.
func Wait(ctx context.Context, st Store, o WaitOptions) error {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	seen := map[string]string{}
	failedRounds := 0
	for {
		states, err := poll(ctx, st, o.Released)
		if err != nil && !errors.Is(err, errTransient) {
			return err
		}
		report(states, seen, o.Progress)
		if over, result := verdict(states, err == nil, &failedRounds); over {
			return result
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited for %s on every live host: %w (hosts: %s)", ids.Short(o.Released.ID), ctx.Err(), pending(states))
		case <-time.After(o.Every):
		}
	}
}

// verdict says whether the wait is over, and how: every live host done
// (read whole: fresh is true), or failed ones named once every host is
// done or failed, or graceRounds reads after the first failure.
func verdict(states map[string]hostState, fresh bool, failedRounds *int) (bool, error) {
	done, failed := summary(states)
	if len(failed) > 0 {
		*failedRounds++
	}
	switch {
	case fresh && len(states) > 0 && done == len(states):
		return true, nil
	case len(failed) > 0 && (done+len(failed) == len(states) || *failedRounds > graceRounds):
		return true, fmt.Errorf("%w on %d of %d hosts: %s; they keep serving what ran before", ErrLaunchFailed,
			len(failed), len(states), strings.Join(failed, "; "))
	}
	return false, nil
}

// errTransient: S3 could not be read this time; Wait tries again.
var errTransient = errors.New("transient")

// poll reads current.json and the heartbeats once and says where each
// live host is.
func poll(ctx context.Context, st Store, rel Released) (map[string]hostState, error) {
	cur, _, err := readCurrent(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTransient, err)
	}
	if cur.ID != rel.ID {
		return nil, fmt.Errorf("%w: it now names %s (released by %s at %s); stopped waiting for %s",
			ErrRaced, ids.Short(cur.ID), or(cur.By, "someone"), cur.Time.Format(time.RFC3339), ids.Short(rel.ID))
	}
	hosts, err := ReadHosts(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTransient, err)
	}
	now := time.Now()
	states := map[string]hostState{}
	for _, h := range hosts {
		if h.Live(now) {
			states[h.Host] = stateOf(h, rel)
		}
	}
	return states, nil
}

// stateOf is where host h is on release rel.
func stateOf(h Heartbeat, rel Released) hostState {
	short := ids.Short(rel.ID)
	switch e := h.LaunchError; {
	case h.Active == rel.ID && h.Healthy:
		return hostState{done: true, line: "serves " + short + ", healthy"}
	case e != nil && e.ConfigID == rel.ID && sameTag(e.Release, rel.ETag):
		return hostState{failed: e.Error, line: "failed to launch " + short + ": " + e.Error}
	case h.Active == rel.ID:
		return hostState{line: "serves " + short + ", not healthy"}
	case h.Operation != "":
		return hostState{line: h.Operation + " (serves " + or(ids.Short(h.Active), "nothing") + ")"}
	}
	return hostState{line: "serves " + or(ids.Short(h.Active), "nothing") + ", not yet " + short}
}

// sameTag compares ETags as S3 servers quote them, or not.
func sameTag(a, b string) bool { return strings.Trim(a, `"`) == strings.Trim(b, `"`) }

// report sends the lines of hosts whose state changed, and of hosts gone,
// and says once when no host is live.
func report(states map[string]hostState, seen map[string]string, progress func(string)) {
	if progress == nil {
		return
	}
	if states != nil && len(states) == 0 && seen[""] == "" {
		seen[""] = "said"
		progress("no live host: none wrote a heartbeat lately (are they started with --follow?)")
	}
	for _, h := range sortedHosts(states) {
		if l := states[h].line; seen[h] != l {
			seen[h] = l
			progress(h + ": " + l)
		}
	}
	for h := range seen {
		if _, ok := states[h]; !ok && states != nil && h != "" {
			delete(seen, h)
			progress(h + ": gone (no heartbeat)")
		}
	}
}

func summary(states map[string]hostState) (done int, failed []string) {
	for _, h := range sortedHosts(states) {
		switch s := states[h]; {
		case s.done:
			done++
		case s.failed != "":
			failed = append(failed, h+": "+s.failed)
		}
	}
	return done, failed
}

func pending(states map[string]hostState) string {
	var out []string
	for _, h := range sortedHosts(states) {
		if !states[h].done {
			out = append(out, h+" "+states[h].line)
		}
	}
	if len(out) == 0 {
		return "none live"
	}
	return strings.Join(out, "; ")
}

func sortedHosts(states map[string]hostState) []string {
	out := make([]string, 0, len(states))
	for h := range states {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
