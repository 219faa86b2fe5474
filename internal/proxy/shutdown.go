package proxy

import (
	"context"
	"time"
)

// awaitUpgrades is the end of a graceful stop: net/http's Shutdown does not
// wait for hijacked connections, so the WebSockets still open wait here
// until their clients or apps close them, or ctx ends; those still open
// then are closed. It returns how many it closed.
func (s *targetSet) awaitUpgrades(ctx context.Context) int {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		list := append([]*Target(nil), s.list...)
		s.mu.Unlock()
		open := 0
		for _, t := range list {
			open += t.openUpgrades()
		}
		if open == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			closed := 0
			for _, t := range list {
				closed += t.upgraded.closeAll(true)
			}
			return closed
		case <-tick.C:
		}
	}
}
