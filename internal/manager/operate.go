package manager

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// operate runs one operation (switch, rollback, a restart, a discard) the
// way every one runs: in the one-operation slot, named op in /status and
// ErrBusy messages; detached from the caller's cancellation, since a switch
// whose client hangs up must still finish; cancellable by an operator
// (Cancel) and by a rollback (preempt); cancelled when the manager closes;
// timed; and recorded in the history as e, which do completes with what it
// learns (the config and container ids).
func (m *Manager) operate(ctx context.Context, op string, e Event, do func(ctx context.Context, e *Event) error) error {
	return m.run(ctx, op, e, false, do)
}

// operateAttached is operate for a launch: it is cancelled, too, when its
// caller goes away (the API's client disconnects), because nobody would
// switch to the container it makes; the launch then removes it.
func (m *Manager) operateAttached(ctx context.Context, op string, e Event, do func(ctx context.Context, e *Event) error) error {
	return m.run(ctx, op, e, true, do)
}

// errNothingToDo ends an operation that found, once in the slot, that it
// has nothing to do (what it was for changed meanwhile): it is not
// recorded, and the caller gets nil.
var errNothingToDo = errors.New("nothing to do")

// clientGoneGrace is how long after its client went away a launch is
// cancelled.
const clientGoneGrace = time.Second

// errClientGone is why a launch stops when its client disconnects.
var errClientGone = errors.New("the client that asked for it went away, and nobody else would switch to it")

func (m *Manager) run(ctx context.Context, op string, e Event, attached bool, do func(ctx context.Context, e *Event) error) error {
	end, err := m.begin(op)
	if err != nil {
		return err
	}
	opCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	if attached {
		// A beat later, so that a client cut off because switchyard stops
		// (its API closes the connections, then the manager closes) is
		// recorded as the stop it is.
		stop := context.AfterFunc(ctx, func() {
			time.AfterFunc(clientGoneGrace, func() { cancel(fmt.Errorf("%w: %w", ErrCancelled, errClientGone)) })
		})
		defer stop()
	}
	ctl := &opControl{cancel: cancel, done: make(chan struct{})}
	opCtx, unbind := m.bound(opCtx)
	m.mu.Lock()
	m.ctl = ctl
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.ctl = nil
		m.mu.Unlock()
		unbind()
		cancel(nil)
		end()
		close(ctl.done) // after end: a preempting rollback takes the slot now
	}()
	start := time.Now()
	e.began = start
	err = do(opCtx, &e)
	if errors.Is(err, errNothingToDo) || (e.recorded && err == nil) {
		return nil
	}
	if err != nil && opCtx.Err() != nil && !errors.Is(err, context.Cause(opCtx)) {
		err = fmt.Errorf("%w: %w", context.Cause(opCtx), err)
	}
	e.Duration = time.Since(start)
	e.Result, e.Error = outcome(err)
	m.record(e)
	return err
}

// recordNow records an operation's event before the operation ends, as
// done so far; operate then records it again only if the rest fails.
func (m *Manager) recordNow(e *Event) {
	if e.recorded {
		return
	}
	ev := *e
	ev.Duration = time.Since(e.began)
	if e.began.IsZero() {
		ev.Duration = 0
	}
	ev.Result, ev.Error = resultOK, ""
	m.record(ev)
	e.recorded = true
}

// opControl is what cancels the running operation from outside it.
type opControl struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed once the operation gave its slot back
}

// outcome is an Event's Result and Error for err.
func outcome(err error) (result, text string) {
	if err != nil {
		return resultError, err.Error()
	}
	return resultOK, ""
}

// Cancel cancels the running operation, op when not empty (its name as
// /status shows it: cancelling only what the caller means), and waits until
// it has cleaned up and ended, or ctx ends. A launch removes its new
// container; a switch is cut short in its drain (traffic has moved: the old
// container is stopped with what it still runs); a restart stops trying.
// It returns the name of what it cancelled. The start-up cannot be
// cancelled.
func (m *Manager) Cancel(ctx context.Context, op, who string) (string, error) {
	m.mu.Lock()
	running, ctl := m.op, m.ctl
	m.mu.Unlock()
	switch {
	case running == "":
		return "", fmt.Errorf("%w: nothing is running", ErrNoOperation)
	case op != "" && op != running:
		return "", fmt.Errorf("%w: %q is not running (the running operation is %q)", ErrNoOperation, op, running)
	case ctl == nil:
		return "", fmt.Errorf("%w: %s cannot be cancelled; it ends by itself", ErrBusy, running)
	}
	ctl.cancel(fmt.Errorf("%w by %s", ErrCancelled, who)) // the operation records it
	select {
	case <-ctl.done:
		return running, nil
	case <-ctx.Done():
		return running, fmt.Errorf("cancelled %s, which has not ended yet: %w", running, context.Cause(ctx))
	}
}

// preempt cancels the running operation, if it can be cancelled, for an
// emergency (a rollback), and waits for it to end. Operations that cannot
// be cancelled (the start-up) are waited for by nobody: the caller gets
// ErrBusy from begin as usual.
func (m *Manager) preempt(ctx context.Context, by, who string) {
	m.mu.Lock()
	running, ctl := m.op, m.ctl
	m.mu.Unlock()
	if ctl == nil {
		return
	}
	m.log.Warn().Str("operation", running).Str("who", who).Msg(by + " preempts the running operation")
	ctl.cancel(fmt.Errorf("%w: preempted by %s (%s)", ErrCancelled, by, who))
	select {
	case <-ctl.done:
	case <-ctx.Done():
	}
}
