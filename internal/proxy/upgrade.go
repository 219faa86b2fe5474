package proxy

// Protocol upgrades (WebSockets, any `Connection: Upgrade`) pass through
// httputil.ReverseProxy, which hijacks the client connection on the app's
// 101 and copies both ways until either side closes.
//
// An upgraded connection can last for hours, so it does not hold one of the
// app's worker slots: it is admitted as the health path is, with only an
// in-flight reference on the target. N open WebSockets therefore never
// block plain requests (the app must serve them outside its request workers,
// e.g. gunicorn's async or threaded workers).
//
// The reference keeps the target's drain waiting: after a switch an open
// WebSocket stays on the old target until it closes, and WaitDrained returns
// only then (or at its deadline, after which the manager stops the old
// container, which ends them). Target.CloseUpgraded ends them at once.
//
// The access-log line of an upgrade is written when it closes: status 101,
// the whole duration, and the bytes both ways.

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// isUpgrade reports whether r asks to switch protocols (HTTP/1 only).
func isUpgrade(r *http.Request) bool {
	if r.ProtoMajor != 1 || len(r.Header["Upgrade"]) == 0 {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// upgradedConn is the client side of an upgraded connection. It counts the
// bytes sent to the client, which no longer go through the recorder; the
// count is its own, as a copy goroutine may outlive the request.
type upgradedConn struct {
	net.Conn
	out atomic.Int64
}

func (c *upgradedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	return n, err
}

// Hijack is called by ReverseProxy on the app's 101 only: the response is
// a protocol switch from now on.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	uc := &upgradedConn{Conn: c}
	r.up = uc
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
		r.headerAt = time.Now()
	}
	if r.target != nil {
		r.target.addUpgraded(uc)
	}
	return uc, brw, nil
}

func (t *Target) addUpgraded(c *upgradedConn) {
	t.upMu.Lock()
	closing := t.upClosing
	if !closing {
		if t.upgraded == nil {
			t.upgraded = map[*upgradedConn]struct{}{}
		}
		t.upgraded[c] = struct{}{}
	}
	t.upMu.Unlock()
	if closing {
		_ = c.Close()
	}
}

func (t *Target) removeUpgraded(c *upgradedConn) {
	t.upMu.Lock()
	delete(t.upgraded, c)
	t.upMu.Unlock()
}

// Upgraded is the number of upgraded connections (WebSockets) open on the
// target. Each also counts in InFlight.
func (t *Target) Upgraded() int {
	t.upMu.Lock()
	defer t.upMu.Unlock()
	return len(t.upgraded)
}

// CloseUpgraded closes the client side of the target's upgraded
// connections (WebSockets); each then ends as if the client had left, its
// log line is written and its in-flight reference released. Once the target
// has been replaced, an upgrade that completes on it later is closed at once
// too. It returns how many it closed. Use it to end a drain without waiting
// for long-lived connections, e.g. when the drain timeout has passed.
func (t *Target) CloseUpgraded() int {
	t.upMu.Lock()
	if t.retired.Load() {
		t.upClosing = true
	}
	conns := make([]*upgradedConn, 0, len(t.upgraded))
	for c := range t.upgraded {
		conns = append(conns, c)
	}
	t.upMu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}
