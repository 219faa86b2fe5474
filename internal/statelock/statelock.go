// Package statelock is the lock of a state directory: one switchyard
// manager at a time runs an app's deployments from it. It is an flock(2)
// on a file in the directory, so the kernel releases it when its process
// dies however it dies; the file names the holder (pid, version, start
// time) for the error a second process gets and for the successor of an
// upgrade, which says whom it took over from.
package statelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the lock file's name in the state directory.
const FileName = "lock"

// Holder is who holds (or held) the lock.
type Holder struct {
	PID     int       `json:"pid"`
	Version string    `json:"version,omitempty"`
	Host    string    `json:"host,omitempty"`
	Since   time.Time `json:"since"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Host != "" {
		s += " on " + h.Host
	}
	if h.Version != "" {
		s += ", version " + h.Version
	}
	if !h.Since.IsZero() {
		s += ", since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// ErrHeld is returned when another process holds the lock past the wait.
var ErrHeld = errors.New("the state directory is locked by another switchyard")

// Lock is a held lock; Release gives it back.
type Lock struct {
	f *os.File
	// Previous is the last holder the file named when this process took
	// the lock (nil: none, a fresh state directory).
	Previous *Holder
}

// pollEvery is how often Acquire tries again while it waits.
const pollEvery = 20 * time.Millisecond

// Acquire takes the lock of dir for me, trying until ctx ends (a ctx that
// has ended tries once). It fails with ErrHeld, naming the holder.
func Acquire(ctx context.Context, dir string, me Holder) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			holder := readHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w (%s; lock file %s): stop it first, or upgrade it with switchyard upgrade", ErrHeld, describe(holder), path)
		case <-time.After(pollEvery):
		}
	}
	l := &Lock{f: f, Previous: readHolder(f)}
	if err := l.write(me); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

func describe(h *Holder) string {
	if h == nil {
		return "holder unknown"
	}
	return h.String()
}

// ReadHolder is who the lock file in dir names (the holder, or the last
// one), nil when it names nobody.
func ReadHolder(dir string) *Holder {
	f, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		return nil
	}
	defer f.Close()
	return readHolder(f)
}

// readHolder reads who the file names, nil when it names nobody.
func readHolder(f *os.File) *Holder {
	b, err := os.ReadFile(f.Name())
	if err != nil || len(b) == 0 {
		return nil
	}
	var h Holder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

// write names me in the file (truncated in place: the flock is on the
// open file, which a rename would replace).
func (l *Lock) write(me Holder) error {
	b, _ := json.Marshal(me)
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("lock file %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("lock file %s: %w", l.f.Name(), err)
	}
	return nil
}

// Release gives the lock back; the file keeps naming this process, for its
// successor's Previous.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
