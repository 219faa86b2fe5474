package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// The socket hand-off is HAProxy's `-x` between two processes that do not
// descend from each other (two containers sharing the state volume and the
// host's network): the running process listens on a unix socket; a new one
// connects, receives the listening sockets (SCM_RIGHTS) with their
// addresses, serves on them, and says "ready"; the old one then stops as
// after an upgrade.
//
// The exchange, over one unix stream connection:
//
//	new → old   "listeners\n"
//	old → new   one message: JSON {"addrs": [...]} (or {"error": "..."}) with the fds, in order
//	new → old   "ready\n" once it serves (or it closes the connection: it failed)
//	old         closes Replaced, then stops accepting and finishes its requests

// socketRequest and socketReady are the new process's two lines.
const (
	socketRequest = "listeners\n"
	socketReady   = "ready\n"
)

// socketAnswer is the old process's answer.
type socketAnswer struct {
	Addrs []string `json:"addrs,omitempty"`
	Error string   `json:"error,omitempty"`
}

// fetchListeners asks the process serving on the unix socket path for its
// listeners. It returns nil, nil when nobody serves there (a first start).
func fetchListeners(path string, timeout time.Duration) (*net.UnixConn, map[string]net.Listener, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, nil // no predecessor: a stale socket file or none
		}
		return nil, nil, fmt.Errorf("hand-off socket %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	lns, err := receiveListeners(uc, timeout)
	if err != nil {
		uc.Close()
		return nil, nil, fmt.Errorf("hand-off socket %s: %w", path, err)
	}
	return uc, lns, nil
}

func receiveListeners(uc *net.UnixConn, timeout time.Duration) (map[string]net.Listener, error) {
	// The old process first finishes its running operation: up to timeout.
	uc.SetDeadline(time.Now().Add(timeout + 5*time.Second))
	defer uc.SetDeadline(time.Time{})
	if _, err := uc.Write([]byte(socketRequest)); err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 64<<10), make([]byte, syscall.CmsgSpace(64*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read the listeners: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var ans socketAnswer
	if err := json.Unmarshal(buf[:n], &ans); err != nil {
		closeFds(fds)
		return nil, fmt.Errorf("the running switchyard's answer: %w", err)
	}
	if ans.Error != "" || len(ans.Addrs) != len(fds) {
		closeFds(fds)
		return nil, fmt.Errorf("the running switchyard did not hand over: %s", ans.Error)
	}
	lns := map[string]net.Listener{}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "listener "+ans.Addrs[i])
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			closeFds(fds[i+1:])
			return nil, fmt.Errorf("listener %s: %w", ans.Addrs[i], err)
		}
		lns[ans.Addrs[i]] = ln
	}
	return lns, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		f, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, fmt.Errorf("control message: %w", err)
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// serveSocket answers successors on the unix socket until ctx ends: one
// hand-off at a time, each through h.handOver.
func (h *Handoff) serveSocket(ctx context.Context, ln *net.UnixListener) {
	context.AfterFunc(ctx, func() { ln.Close() })
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		h.handOver(ctx, c)
	}
}

// handOver answers one successor: prepare (the manager hands over), the
// listeners, then its "ready" or its failure.
func (h *Handoff) handOver(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line := make([]byte, len(socketRequest))
	if _, err := c.Read(line); err != nil || string(line) != socketRequest {
		return
	}
	c.SetReadDeadline(time.Time{})
	done, err := h.prepare(ctx)
	if err != nil {
		b, _ := json.Marshal(socketAnswer{Error: err.Error()})
		c.Write(b)
		return
	}
	err = h.sendListeners(c)
	if err == nil {
		err = awaitReady(c, h.o.ReadyTimeout)
	}
	done(err)
	if err == nil {
		h.replace()
	}
}

// prepare is Options.Prepare, or nothing.
func (h *Handoff) prepare(ctx context.Context) (func(error), error) {
	if h.o.Prepare == nil {
		return func(error) {}, nil
	}
	return h.o.Prepare(ctx)
}

func (h *Handoff) sendListeners(c *net.UnixConn) error {
	h.lnMu.Lock()
	defer h.lnMu.Unlock()
	var ans socketAnswer
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for addr, ln := range h.listeners {
		f, err := ln.File() // a duplicate: this process keeps its own
		if err != nil {
			return fmt.Errorf("listener %s: %w", addr, err)
		}
		files = append(files, f)
		ans.Addrs = append(ans.Addrs, addr)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	b, _ := json.Marshal(ans)
	_, _, err := c.WriteMsgUnix(b, syscall.UnixRights(fds...), nil)
	return err
}

// awaitReady waits for the successor's "ready", or its failure.
func awaitReady(c *net.UnixConn, timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	line := make([]byte, len(socketReady))
	n, err := c.Read(line)
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the new switchyard did not serve within %v", timeout)
	case err != nil || string(line[:n]) != socketReady:
		return errors.New("the new switchyard exited before it served (see its log)")
	}
	return nil
}
