package dockerctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// Event is one container lifecycle event.
type Event struct {
	ContainerID string
	Name        string // container name
	// Action is what happened: create, start, die, stop, kill, oom, destroy,
	// health_status, exec_start... For actions the daemon reports as
	// "action: detail" ("health_status: healthy", "exec_start: sh"), Action
	// is the part before the colon and Detail the rest.
	Action string
	Detail string
	// ExitCode is the container's exit code on "die", else 0.
	ExitCode int
	// Labels are the container's labels. The daemon sends them mixed with
	// its own attributes (name, image, exitCode, signal, execID), which are
	// left out, and so would be labels with those names.
	Labels map[string]string
	Time   time.Time
}

// daemonAttributes are the event attributes that are not container labels.
var daemonAttributes = map[string]bool{"name": true, "image": true, "exitCode": true, "signal": true, "execID": true}

// Events streams lifecycle events of the containers carrying all of labels
// until ctx ends. It returns once the daemon has accepted the subscription,
// so nothing that happens after it returns is missed.
//
// Both channels are closed when the stream ends. The error channel gets at
// most one error, when the stream fails (the daemon restarted, say), and none
// when ctx ended; reconnecting, and catching up on what happened meanwhile
// with List, is the caller's job.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	f := client.Filters{}.Add("type", string(events.ContainerEventType))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	res := c.api.Events(ctx, client.EventsListOptions{Filters: f})
	msgs, errs := res.Messages, res.Err
	out := make(chan Event, 16)
	outErr := make(chan error, 1)
	go func() {
		defer close(outErr)
		defer close(out)
		for {
			select {
			case m := <-msgs:
				select {
				case out <- fromMessage(m):
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					outErr <- fmt.Errorf("docker events for containers labelled %v: %w", labels, err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, outErr
}

func fromMessage(m events.Message) Event {
	action, detail, _ := strings.Cut(string(m.Action), ":")
	e := Event{
		ContainerID: m.Actor.ID,
		Name:        m.Actor.Attributes["name"],
		Action:      action,
		Detail:      strings.TrimSpace(detail),
		Labels:      map[string]string{},
		Time:        time.Unix(0, m.TimeNano),
	}
	if m.TimeNano == 0 {
		e.Time = time.Unix(m.Time, 0)
	}
	if code, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
		e.ExitCode = code
	}
	for k, v := range m.Actor.Attributes {
		if !daemonAttributes[k] {
			e.Labels[k] = v
		}
	}
	return e
}
