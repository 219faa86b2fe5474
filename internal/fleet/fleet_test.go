package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/manager"
)

// memStore is a bucket in memory with S3's conditional semantics; the
// real one (versitygw) is exercised by deployconfig's tests and e2e.
type memStore struct {
	mu        sync.Mutex
	objs      map[string][]byte
	tags      map[string]string
	n         int
	down      bool
	beforePut func(name string) // called once, outside the lock
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}, tags: map[string]string{}} }

var errDown = fmt.Errorf("%w: connection refused", deployconfig.ErrUnavailable)

func (s *memStore) Get(ctx context.Context, name, ifNoneMatch string) ([]byte, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, "", errDown
	}
	b, ok := s.objs[name]
	if !ok {
		return nil, "", deployconfig.ErrNotFound
	}
	if ifNoneMatch != "" && ifNoneMatch == s.tags[name] {
		return nil, ifNoneMatch, deployconfig.ErrNotModified
	}
	return b, s.tags[name], nil
}

func (s *memStore) Put(ctx context.Context, name string, data []byte, c deployconfig.PutCondition) (string, error) {
	if f := s.beforePut; f != nil {
		s.beforePut = nil
		f(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", errDown
	}
	_, exists := s.objs[name]
	if (c.Create && exists) || (c.IfMatch != "" && c.IfMatch != s.tags[name]) {
		return "", deployconfig.ErrPrecondition
	}
	s.n++
	s.objs[name], s.tags[name] = data, fmt.Sprintf(`"%d"`, s.n)
	return s.tags[name], nil
}

func (s *memStore) List(ctx context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	var out []string
	for k := range s.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (s *memStore) ParseRelease(data []byte) (deployconfig.Release, error) {
	var r deployconfig.Release
	err := json.Unmarshal(data, &r)
	return r, err
}

func (s *memStore) Where(name string) string { return "mem://" + name }

func (s *memStore) putHeartbeat(t *testing.T, h Heartbeat) {
	t.Helper()
	b, _ := json.Marshal(h)
	if _, err := s.Put(context.Background(), heartbeatName(h.Host), b, deployconfig.PutCondition{}); err != nil {
		t.Fatal(err)
	}
}

const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	idC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func TestPublishCreateOnly(t *testing.T) {
	st := newMemStore()
	data := []byte(`{"image":"app:v1"}`)
	id, created, err := Publish(context.Background(), st, data)
	if err != nil || !created || id != deployconfig.ID(data) {
		t.Fatalf("first publish: %s %v %v", id, created, err)
	}
	tag := st.tags[id+".json"]
	if _, created, err := Publish(context.Background(), st, data); err != nil || created || st.tags[id+".json"] != tag {
		t.Fatalf("second publish: created=%v err=%v (the object must be left alone)", created, err)
	}
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		prepare func(st *memStore)
		do      func(st *memStore) (Released, error)
		wantID  string
		wantErr error
		errHas  string
	}{
		{name: "first release creates current.json", do: func(st *memStore) (Released, error) { return Release(ctx, st, idA, "ci") }, wantID: idA},
		{name: "next release remembers the previous",
			prepare: func(st *memStore) { Release(ctx, st, idA, "ci") },
			do: func(st *memStore) (Released, error) {
				r, err := Release(ctx, st, idB, "ci")
				if err == nil && r.Previous != idA {
					err = fmt.Errorf("previous %q", r.Previous)
				}
				return r, err
			}, wantID: idB},
		{name: "previous goes back",
			prepare: func(st *memStore) { Release(ctx, st, idA, "ci"); Release(ctx, st, idB, "ci") },
			do:      func(st *memStore) (Released, error) { return ReleasePrevious(ctx, st, "ci") }, wantID: idA},
		{name: "previous without one",
			prepare: func(st *memStore) { Release(ctx, st, idA, "ci") },
			do:      func(st *memStore) (Released, error) { return ReleasePrevious(ctx, st, "ci") },
			wantID:  idA, wantErr: ErrNoPrevious, errHas: "names no previous release"},
		{name: "a race: the one that writes second loses and names the winner",
			prepare: func(st *memStore) {
				Release(ctx, st, idA, "ci")
				st.beforePut = func(string) { Release(ctx, st, idC, "job-2") }
			},
			do:     func(st *memStore) (Released, error) { return Release(ctx, st, idB, "job-1") },
			wantID: idC, wantErr: ErrRaced, errHas: "released by job-2"},
		{name: "S3 down", prepare: func(st *memStore) { st.down = true },
			do:      func(st *memStore) (Released, error) { return Release(ctx, st, idA, "ci") },
			wantErr: deployconfig.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			if tc.prepare != nil {
				tc.prepare(st)
			}
			r, err := tc.do(st)
			if !errors.Is(err, tc.wantErr) || (tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.errHas)
			}
			if err == nil && r.ETag != st.tags[deployconfig.CurrentName] {
				t.Fatalf("etag %s, stored %s", r.ETag, st.tags[deployconfig.CurrentName])
			}
			st.down = false
			cur, _, _ := readCurrent(ctx, st)
			if cur.ID != tc.wantID {
				t.Fatalf("current.json names %q, want %q", cur.ID, tc.wantID)
			}
		})
	}
}

// fakeManager launches every config but those in bad.
type fakeManager struct {
	mu       sync.Mutex
	active   string
	bad      map[string]bool
	busy     bool
	gaveUp   bool // the active container crash-looped
	launches []string
}

func (m *fakeManager) Launch(ctx context.Context, id, who string) (manager.ContainerInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy {
		return manager.ContainerInfo{}, fmt.Errorf("%w: launch x", manager.ErrBusy)
	}
	m.launches = append(m.launches, id)
	if m.bad[id] {
		return manager.ContainerInfo{}, fmt.Errorf("%w: health check 500", manager.ErrUnhealthy)
	}
	return manager.ContainerInfo{ID: "c-" + id, ConfigID: id}, nil
}

func (m *fakeManager) Switch(ctx context.Context, ref, who string) (manager.SwitchResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active, m.gaveUp = strings.TrimPrefix(ref, "c-"), false
	return manager.SwitchResult{}, nil
}

func (m *fakeManager) Status() manager.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := manager.Status{App: "shop"}
	if m.active != "" {
		st.Active, st.Healthy = &manager.ContainerInfo{ConfigID: m.active, Health: manager.HealthHealthy}, true
	}
	if m.gaveUp {
		st.Restart, st.Healthy = &manager.RestartStatus{State: manager.RestartGaveUp}, false
	}
	return st
}

func (m *fakeManager) launched() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.launches)
}

func TestFollower(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	m := &fakeManager{bad: map[string]bool{idB: true}}
	f := NewFollower(st, m, zerolog.Nop())
	f.Poll(ctx) // nothing released: nothing done
	if m.launched() != 0 {
		t.Fatal("launched without a release")
	}
	Release(ctx, st, idA, "ci")
	f.Poll(ctx)
	if m.active != idA {
		t.Fatalf("active %q after the release of A", m.active)
	}
	f.Poll(ctx) // unchanged: nothing more
	rel, _ := Release(ctx, st, idB, "ci")
	f.Poll(ctx)
	f.Poll(ctx)
	s := f.State()
	if m.active != idA || m.launched() != 2 || s.LaunchError == nil || s.LaunchError.ConfigID != idB || s.LaunchError.Release != rel.ETag {
		t.Fatalf("after a failed release: active %q, %d launches, state %+v", m.active, m.launched(), s)
	}
	// The same id released again: tried again at once.
	Release(ctx, st, idB, "ci")
	f.Poll(ctx)
	if m.launched() != 3 {
		t.Fatalf("a new release of a failed id was not tried: %d launches", m.launched())
	}
	// The backoff passed: tried again.
	f.mu.Lock()
	f.failure.RetryAt = time.Now().Add(-time.Second)
	f.mu.Unlock()
	f.Poll(ctx)
	if m.launched() != 4 {
		t.Fatalf("not retried after the backoff: %d launches", m.launched())
	}
	// Busy: put off, not a failure; S3 down: nothing changes.
	m.busy = true
	Release(ctx, st, idC, "ci")
	f.Poll(ctx)
	if s := f.State(); s.LaunchError != nil && s.LaunchError.ConfigID == idC {
		t.Fatalf("a busy manager counted as a failure: %+v", s.LaunchError)
	}
	m.busy, st.down = false, true
	f.Poll(ctx)
	if s := f.State(); s.SourceError == "" || m.active != idC {
		t.Fatalf("with S3 down: %+v, active %q (want C, read before)", s, m.active)
	}
	// A crash loop the manager gave up on is left alone until current.json
	// is written again.
	st.down = false
	n := m.launched()
	m.mu.Lock()
	m.gaveUp = true
	m.mu.Unlock()
	f.Poll(ctx)
	if m.launched() != n {
		t.Fatal("the follower relaunched a crash loop by itself")
	}
	Release(ctx, st, idC, "ci")
	f.Poll(ctx)
	if m.launched() != n+1 || m.gaveUp {
		t.Fatalf("a new release of the crash-looping id was not launched: %d launches", m.launched()-n)
	}
}

func TestWait(t *testing.T) {
	now := time.Now().UTC()
	hb := func(host, active string, healthy bool) Heartbeat {
		return Heartbeat{Host: host, App: "shop", Active: active, Healthy: healthy, Time: now, IntervalSeconds: 1}
	}
	for _, tc := range []struct {
		name   string
		hosts  func(rel Released) []Heartbeat
		after  func(st *memStore)
		want   error
		errHas []string
	}{
		{name: "all serve it", hosts: func(rel Released) []Heartbeat {
			return []Heartbeat{hb("a", idB, true), hb("b", idB, true)}
		}},
		{name: "a stale host does not count", hosts: func(rel Released) []Heartbeat {
			old := hb("gone", idA, true)
			old.Time = now.Add(-time.Minute)
			return []Heartbeat{hb("a", idB, true), old}
		}},
		{name: "failed hosts are named", hosts: func(rel Released) []Heartbeat {
			a, b := hb("a", idA, true), hb("b", idA, true)
			a.LaunchError = &LaunchError{ConfigID: idB, Release: rel.ETag, Error: "container did not become healthy"}
			b.LaunchError = a.LaunchError
			return []Heartbeat{a, b}
		}, want: ErrLaunchFailed, errHas: []string{"a: container did not become healthy", "b: container", "2 of 2"}},
		{name: "an old failure of another release is not this one's", hosts: func(rel Released) []Heartbeat {
			a := hb("a", idA, true)
			a.LaunchError = &LaunchError{ConfigID: idB, Release: `"old"`, Error: "x"}
			return []Heartbeat{a}
		}, after: func(st *memStore) {}, want: context.DeadlineExceeded},
		{name: "no live host: waits, and says so", hosts: func(rel Released) []Heartbeat { return nil },
			want: context.DeadlineExceeded, errHas: []string{"none live"}},
		{name: "superseded", hosts: func(rel Released) []Heartbeat { return []Heartbeat{hb("a", idA, true)} },
			after: func(st *memStore) { Release(context.Background(), st, idC, "other") }, want: ErrRaced, errHas: []string{"released by other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			Release(context.Background(), st, idA, "ci")
			rel, _ := Release(context.Background(), st, idB, "ci")
			for _, h := range tc.hosts(rel) {
				st.putHeartbeat(t, h)
			}
			if tc.after != nil {
				tc.after(st)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			var lines []string
			err := Wait(ctx, st, WaitOptions{Released: rel, Every: 10 * time.Millisecond, Progress: func(l string) { lines = append(lines, l) }})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (progress %q)", err, tc.want, lines)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if len(lines) == 0 && !errors.Is(tc.want, ErrRaced) {
				t.Error("no progress lines")
			}
		})
	}
}

// Heartbeats carry the host's state and list live peers only.
func TestHeartbeats(t *testing.T) {
	st := newMemStore()
	m := &fakeManager{active: idA}
	old := Heartbeat{Host: "old", App: "shop", Addr: "10.0.0.9:80", Healthy: true, Time: time.Now().Add(-time.Hour), IntervalSeconds: 5}
	other := Heartbeat{Host: "web-2", App: "shop", Addr: "10.0.0.2:80", Healthy: true, Time: time.Now(), IntervalSeconds: 5}
	sick := Heartbeat{Host: "web-3", App: "shop", Addr: "10.0.0.3:80", Healthy: false, Time: time.Now(), IntervalSeconds: 5}
	for _, h := range []Heartbeat{old, other, sick} {
		st.putHeartbeat(t, h)
	}
	h := NewHeartbeats(st, HostOptions{Host: "web-1", App: "shop", Addr: "10.0.0.1:80", Version: "v9", Status: m.Status,
		Fallbacks: func() Fallbacks { return Fallbacks{Sent: 2} }}, zerolog.Nop())
	h.Beat(context.Background())
	if got := h.PeerAddrs(); len(got) != 1 || got[0] != "10.0.0.2:80" {
		t.Fatalf("peers %v, want the live healthy one", got)
	}
	hosts, _ := ReadHosts(context.Background(), st)
	var me *Heartbeat
	for i := range hosts {
		if hosts[i].Host == "web-1" {
			me = &hosts[i]
		}
	}
	if me == nil || me.Active != idA || !me.Healthy || me.Version != "v9" || me.Fallbacks.Sent != 2 || !me.Live(time.Now()) {
		t.Fatalf("own heartbeat: %+v", me)
	}
	st.down = true
	h.Beat(context.Background())
	if got := h.PeerAddrs(); len(got) != 1 {
		t.Fatalf("S3 down: peers %v, want the last list kept", got)
	}
	// Stopping writes a last heartbeat: the host is gone at once.
	st.down = false
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.Run(ctx)
	hosts, _ = ReadHosts(context.Background(), st)
	for _, hb := range hosts {
		if hb.Host == "web-1" && (!hb.Stopped || hb.Live(time.Now())) {
			t.Fatalf("the last heartbeat: %+v", hb)
		}
	}
}
