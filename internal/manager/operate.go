package manager

import (
	"context"
	"fmt"
	"time"
)

// operate runs one operation (launch, switch, rollback) the way every one
// runs: in the one-operation slot, named op in /status and ErrBusy
// messages; detached from the caller's cancellation, since a CI client that
// hangs up must not leave a half-made container behind, but cancelled when
// the manager closes; timed; and recorded in the history as e, which do
// completes with what it learns (the config and container ids).
func (m *Manager) operate(ctx context.Context, op string, e Event, do func(ctx context.Context, e *Event) error) error {
	end, err := m.begin(op)
	if err != nil {
		return err
	}
	defer end()
	ctx, cancel := m.bound(context.WithoutCancel(ctx))
	defer cancel()
	start := time.Now()
	err = do(ctx, &e)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	e.Duration = time.Since(start)
	e.Result, e.Error = outcome(err)
	m.record(e)
	return err
}

// outcome is an Event's Result and Error for err.
func outcome(err error) (result, text string) {
	if err != nil {
		return resultError, err.Error()
	}
	return resultOK, ""
}
