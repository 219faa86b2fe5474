package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/ids"
)

// lostAnswerWait is how long deploy asks a switchyard that went away
// during the switch (a restart, an upgrade) whether the switch happened.
var lostAnswerWait = 10 * time.Second

// switchLost is deploy's answer when the switch to id got no answer at all
// (err is no API error: the API went away, most often while the old
// container drained). The switch may well have happened: traffic moves
// before the drain. It asks /status until switchyard answers again and
// says what it finds (nil: the switch happened). lost is false when err
// was an answer of the API.
func switchLost(ctx context.Context, r *clientRun, id string, err error) (lost bool, _ error) {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return false, nil
	}
	short := ids.Short(id)
	deadline := time.Now().Add(lostAnswerWait)
	for {
		st, serr := r.api.Status(ctx)
		if serr == nil {
			if st.Active != nil && st.Active.ID == id {
				fmt.Fprintf(r.stderr, "switched to %s; the API went away while the old container drained (%v): see switchyard status\n", short, err)
				return true, nil
			}
			return true, &hintError{err, fmt.Sprintf("the API went away during the switch, and container %s is not active now; see switchyard status", short)}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return true, &exitError{exitUnknown, fmt.Errorf("the API went away during the switch to %s and has not come back: whether traffic moved "+
				"is not known until it answers; see switchyard status (%w)", short, err)}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
