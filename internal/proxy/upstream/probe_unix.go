//go:build unix

package upstream

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// probeAfter is the idle time from which a connection is probed before use.
const probeAfter = time.Millisecond

// Findings of the liveness probe.
const (
	probeAlive = iota // nothing to read: the app waits for a request
	probeDead         // end of stream, an error, or bytes nobody asked for
)

// alive reports whether an idle connection can carry a request: the app has
// not closed it (gunicorn closes kept-alive connections idle for 2 s) and
// has sent nothing since the last response. One non-blocking peek, instead
// of the Transport's goroutine blocked reading every idle connection; none
// for a connection idle less than probeAfter, as under load, where it would
// cost a system call per request to find what an app closing idle
// connections (after a second or more) cannot have done yet.
func (c *conn) alive(idle time.Duration) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil || idle < probeAfter {
		return true
	}
	c.peekRes = probeDead
	err := c.raw.Read(c.peek)
	if errors.Is(err, os.ErrDeadlineExceeded) && c.deadline {
		// The last exchange's header timeout, left in place, has passed.
		_ = c.nc.SetReadDeadline(time.Time{})
		c.deadline = false
		err = c.raw.Read(c.peek)
	}
	return err == nil && c.peekRes == probeAlive
}

// peekFD is the raw read of alive: true ends the read at once, whatever
// the peek found.
func (c *conn) peekFD(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN {
		c.peekRes = probeAlive
	}
	return true
}
