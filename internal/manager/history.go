package manager

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// historyKeep is how many events History returns and the file keeps.
const historyKeep = 200

// history is the deployment history: in memory, and appended to a JSON-lines
// file in the state directory so that it survives restarts.
type history struct {
	mu     sync.Mutex
	path   string
	events []Event // oldest first
}

func openHistory(dir string) (*history, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	h := &history{path: filepath.Join(dir, "history.jsonl")}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// reload reads the file again: an upgrade's successor opened it before
// its predecessor recorded its last events.
func (h *history) reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := os.Open(h.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read history %s: %w", h.path, err)
	}
	defer f.Close()
	var events []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil { // a torn last line is skipped
			events = append(events, e)
		}
	}
	h.events = events
	if len(h.events) > historyKeep {
		h.events = h.events[len(h.events)-historyKeep:]
		h.rewrite()
	}
	return nil
}

func (h *history) add(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	if len(h.events) > 2*historyKeep {
		h.events = append([]Event(nil), h.events[len(h.events)-historyKeep:]...)
		h.rewrite()
		return
	}
	if b, err := json.Marshal(e); err == nil {
		if f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			f.Write(append(b, '\n'))
			f.Close()
		}
	}
}

// rewrite replaces the file with the kept events (caller holds mu).
func (h *history) rewrite() {
	var buf []byte
	for _, e := range h.events {
		b, _ := json.Marshal(e)
		buf = append(append(buf, b...), '\n')
	}
	_ = atomicfile.Write(h.path, buf, 0o600)
}

func (h *history) list() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := min(len(h.events), historyKeep)
	out := make([]Event, 0, n)
	for i := len(h.events) - 1; i >= len(h.events)-n; i-- {
		out = append(out, h.events[i])
	}
	return out
}
