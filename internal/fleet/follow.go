package fleet

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/ids"
	"github.com/switchyard/switchyard/internal/manager"
)

// followWho is who the history names for the follower's launches and
// switches.
const followWho = "fleet: current.json"

// Follower keeps a host on what current.json names: it polls it with a
// conditional GET and, when it names another config than the active one,
// launches it and switches to it through the manager (the API's gates:
// the policy, the health checks, one operation at a time). A failed launch
// is recorded and not tried again for the same release until the backoff
// passes; the running version keeps serving.
type Follower struct {
	st  Store
	m   Manager
	log zerolog.Logger
	// Interval is the poll interval (DefaultPollInterval); RetryBackoff the
	// first wait after a failure (DefaultRetryBackoff). Set before Run.
	Interval, RetryBackoff time.Duration

	mu       sync.Mutex
	etag     string
	want     deployconfig.Release
	failure  *LaunchError
	failures int // in a row, for the current release
	srcErr   string
	servedAt string // the ETag of the release last seen served
}

// NewFollower makes a follower of st's current.json driving m.
func NewFollower(st Store, m Manager, log zerolog.Logger) *Follower {
	return &Follower{st: st, m: m, log: log, Interval: DefaultPollInterval, RetryBackoff: DefaultRetryBackoff}
}

// Run polls until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	for {
		f.Poll(ctx)
		// ±20 %: hosts started together spread their reads.
		wait := time.Duration(float64(f.Interval) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Poll reads current.json once (unless unchanged) and converges on it.
func (f *Follower) Poll(ctx context.Context) {
	if !f.read(ctx) {
		return
	}
	f.mu.Lock()
	want, etag, failure := f.want, f.etag, f.failure
	f.mu.Unlock()
	st := f.m.Status()
	if want.ID == "" || f.serves(st, want.ID, etag) {
		return
	}
	if failure != nil && failure.ConfigID == want.ID && failure.Release == etag && time.Now().Before(failure.RetryAt) {
		return // tried and failed: wait for a new release or the backoff
	}
	f.converge(ctx, want.ID, etag, st)
}

// serves says whether the host serves id as released at etag. An active
// container of id that its manager gave up bringing back (a crash loop)
// still counts, until current.json is written again (a release of the
// same id relaunches it): otherwise the follower would crash-loop it too.
func (f *Follower) serves(st manager.Status, id, etag string) bool {
	if st.Active == nil || st.Active.ConfigID != id {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Restart == nil || st.Restart.State != manager.RestartGaveUp {
		f.servedAt = etag
		return true
	}
	return f.servedAt == etag
}

// read does the conditional GET; false when there is nothing to act on.
func (f *Follower) read(ctx context.Context) bool {
	f.mu.Lock()
	etag := f.etag
	f.mu.Unlock()
	data, newTag, err := f.st.Get(ctx, deployconfig.CurrentName, etag)
	switch {
	case errors.Is(err, deployconfig.ErrNotModified):
		f.setSourceErr("")
		return true
	case errors.Is(err, deployconfig.ErrNotFound):
		f.setSourceErr("")
		return false // nothing released yet: the manager keeps what it runs
	case err != nil:
		f.setSourceErr(err.Error())
		return etag != "" // S3 down: still converge on what was read before
	}
	rel, err := f.st.ParseRelease(data)
	if err != nil {
		f.setSourceErr(err.Error())
		return false
	}
	f.mu.Lock()
	changed := rel.ID != f.want.ID
	f.etag, f.want, f.srcErr = newTag, rel, ""
	if changed {
		f.failures = 0
	}
	f.mu.Unlock()
	if changed {
		f.log.Info().Str("config", ids.Short(rel.ID)).Str("by", rel.By).Msg("fleet: current.json names a new release")
	}
	return true
}

func (f *Follower) setSourceErr(msg string) {
	f.mu.Lock()
	changed := msg != f.srcErr
	f.srcErr = msg
	f.mu.Unlock()
	if changed && msg != "" {
		f.log.Warn().Str("error", msg).Msg("fleet: cannot read current.json; what runs keeps running")
	} else if changed {
		f.log.Info().Msg("fleet: current.json readable again")
	}
}

// converge launches id (or takes a launched container of it) and switches.
func (f *Follower) converge(ctx context.Context, id, etag string, st manager.Status) {
	ref := ""
	for _, c := range st.Launched {
		if c.ConfigID == id && c.Health == manager.HealthHealthy {
			ref = c.ID // pre-warmed with /launch
		}
	}
	f.log.Info().Str("config", ids.Short(id)).Msg("fleet: launching the released config")
	if ref == "" {
		info, err := f.m.Launch(ctx, id, followWho)
		if err != nil {
			f.failed(ctx, id, etag, err)
			return
		}
		ref = info.ID
	}
	if _, err := f.m.Switch(ctx, ref, followWho); err != nil {
		f.failed(ctx, id, etag, err)
		return
	}
	f.mu.Lock()
	f.failure, f.failures, f.servedAt = nil, 0, etag
	f.mu.Unlock()
	f.log.Info().Str("config", ids.Short(id)).Msg("fleet: serving the released config")
}

// failed records a failure, unless it says only "later": another operation
// running, an upgrade of switchyard handing over, or the host shutting down.
func (f *Follower) failed(ctx context.Context, id, etag string, err error) {
	if errors.Is(err, manager.ErrBusy) || errors.Is(err, manager.ErrUpgrading) || ctx.Err() != nil {
		f.log.Info().Err(err).Msg("fleet: launch put off; trying again at the next poll")
		return
	}
	f.mu.Lock()
	f.failures++
	backoff := min(f.RetryBackoff<<(f.failures-1), MaxRetryBackoff)
	now := time.Now()
	f.failure = &LaunchError{ConfigID: id, Release: etag, Error: err.Error(), Time: now.UTC(), RetryAt: now.Add(backoff).UTC()}
	f.mu.Unlock()
	f.log.Error().Err(err).Str("config", ids.Short(id)).Dur("retry_in", backoff).
		Msg("fleet: the released config failed; the running version keeps serving")
}

// FollowState is what the follower knows, for the heartbeat.
type FollowState struct {
	Want        string
	Release     string
	LaunchError *LaunchError
	SourceError string
}

// State returns it.
func (f *Follower) State() FollowState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FollowState{Want: f.want.ID, Release: f.etag, SourceError: f.srcErr}
	if f.failure != nil {
		e := *f.failure
		s.LaunchError = &e
	}
	return s
}
