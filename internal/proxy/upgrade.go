package proxy

// Protocol upgrades pass through httputil.ReverseProxy, which hijacks the
// client connection on the app's 101 and copies both ways until either side
// closes. Only a WebSocket handshake takes that path (forward, request.go);
// every other request takes the lean client (exchange.go), where a 101 the
// request did not ask for is the app's error.
//
// A request is an upgrade only if it is a real one: HTTP/1.1, GET, a
// Connection header naming "upgrade" and Upgrade: websocket (RFC 6455). Any
// other token (h2c above all: once switched, the connection would carry
// HTTP/2 streams into the app that the queue never sees) is dropped on the
// way, so that the app sees an ordinary request. Until the app has answered
// 101 an upgrade is an ordinary request too: it waits in the queue for a
// worker slot and its body follows the body rules, so that upgrade headers
// buy a client nothing.
//
// Once switched, a WebSocket can last for hours, so it gives its worker slot
// back (lease.upgraded): N open WebSockets never block plain requests (the
// app must serve them outside its request workers, e.g. gunicorn's async or
// threaded workers). It keeps its in-flight reference on the target, which
// keeps the target's drain waiting: after a switch an open WebSocket stays
// on the old target until it closes, and WaitDrained returns only then (or
// at its deadline, after which the manager stops the old container, which
// ends them). Target.CloseUpgraded ends them at once.
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

	"golang.org/x/net/http/httpguts"
)

// isUpgrade reports whether r is a WebSocket handshake: the one protocol
// switch the proxy passes on.
func isUpgrade(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Method != http.MethodGet {
		return false
	}
	up := r.Header["Upgrade"]
	if len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket") {
		return false
	}
	return httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
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
	r.lease.upgraded()
	if r.target != nil {
		r.target.upgraded.add(uc)
	}
	return uc, brw, nil
}

// openUpgrades is the number of upgraded connections (WebSockets) open on
// the target. Each also counts in InFlight.
func (t *Target) openUpgrades() int { return t.upgraded.len() }

// CloseUpgraded closes the client side of the target's upgraded
// connections (WebSockets); each then ends as if the client had left, its
// log line is written and its in-flight reference released. Once the target
// has been replaced, an upgrade that completes on it later is closed at once
// too. It returns how many it closed. Use it to end a drain without waiting
// for long-lived connections, e.g. when the drain timeout has passed.
func (t *Target) CloseUpgraded() int { return t.upgraded.closeAll(t.retired.Load()) }
