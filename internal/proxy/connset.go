package proxy

import "sync"

// connSet is a set of open connections that can all be closed at once: a
// target's upstream connections (closed when the proxy gives up on its
// requests in flight) and its upgraded client connections (closed to end a
// drain). Once closed for good, a connection added is closed at once.
type connSet[C interface {
	comparable
	Close() error
}] struct {
	mu     sync.Mutex
	m      map[C]struct{}
	closed bool // closeAll(true) was called
}

// add puts c in the set, or closes it and reports false when the set is
// closed for good.
func (s *connSet[C]) add(c C) bool {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		if s.m == nil {
			s.m = map[C]struct{}{}
		}
		s.m[c] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		_ = c.Close()
	}
	return !closed
}

func (s *connSet[C]) remove(c C) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet[C]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// closeAll closes the connections in the set and returns how many; for
// good: those added later too.
func (s *connSet[C]) closeAll(forGood bool) int {
	s.mu.Lock()
	s.closed = s.closed || forGood
	conns := make([]C, 0, len(s.m))
	for c := range s.m {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}
