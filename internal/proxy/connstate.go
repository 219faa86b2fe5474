package proxy

import (
	"net"
	"net/http"
	"sync/atomic"
)

// ConnStates counts the client connections of the proxy's servers (all
// Serve calls together) by what they are doing now.
//
// The connection states come from http.Server's ConnState hook, refined by
// the listener (a keep-alive connection that starts receiving its next
// request is reading, where net/http still calls it idle); the request phases
// are counted in ServeHTTP with atomic adds. With HTTP/1 a connection carries
// one request at a time, so the two agree and Open is their sum. Two cases
// count requests rather than connections: an upgraded connection (WebSocket)
// is in_app for as long as it lasts, and under HTTP/2 (served whenever TLS
// is) each stream in progress is in its phase, so that a connection with
// ten streams in the app counts ten in_app and Open counts streams.
type ConnStates struct {
	// Reading: accepted, or between requests and receiving one, until its
	// headers are read and it is admitted.
	Reading int `json:"reading"`
	// Queued: waiting for a worker slot.
	Queued int `json:"queued"`
	// InApp: admitted (a worker slot or the health path), waiting for or
	// receiving the app's response headers.
	InApp int `json:"in_app"`
	// Writing: sending the response to the client, from the response headers
	// to its last byte.
	Writing int `json:"writing"`
	// Idle: keep-alive, no request.
	Idle int `json:"idle"`
	// Open is the sum of the above.
	Open int `json:"open"`
}

// Connections counts the client connections by state now. The figures are
// read one after the other, not frozen together: under load a connection
// moving between states may be missed or counted twice.
func (p *Proxy) Connections() ConnStates {
	reading, active, idle := p.conns.load()
	inApp, writing := p.phasesNow()
	cs := ConnStates{Reading: reading, Queued: p.Queued(), InApp: inApp, Writing: writing, Idle: idle}
	// Active connections not in a counted phase are between their headers
	// and admission, or finishing after the handler: still reading, in
	// effect (and for the client).
	if extra := active - cs.Queued - inApp - writing; extra > 0 {
		cs.Reading += extra
	}
	cs.Open = cs.Reading + cs.Queued + cs.InApp + cs.Writing + cs.Idle
	return cs
}

// Request phases, packed in one atomic word (Proxy.phases) so that moving a
// request from one to the next is a single add: in_app in the low 32 bits,
// writing in the high ones. A request's own add always precedes its
// subtraction, so no field goes below zero and none borrows from the other.
const (
	phaseNone    uint64 = 0
	phaseInApp   uint64 = 1
	phaseWriting uint64 = 1 << 32
)

func (p *Proxy) phasesNow() (inApp, writing int) {
	v := p.phases.Load()
	return int(uint32(v)), int(v >> 32)
}

// connState is what the proxy knows of one client connection.
type connState int32

const (
	connNone    connState = iota // not seen yet
	connReading                  // accepted (StateNew), or idle and receiving a request
	connActive                   // net/http's StateActive: a request's headers are read
	connIdle                     // keep-alive, nothing received
	connGone                     // closed or hijacked
)

// connCounts holds how many connections are reading, active and idle, in 21
// bits each of one word: a transition is one atomic add, and a load sees the
// three consistently.
type connCounts struct{ v atomic.Uint64 }

const connBits = 21

var connUnit = [...]uint64{connNone: 0, connReading: 1, connActive: 1 << connBits, connIdle: 1 << (2 * connBits), connGone: 0}

func (c *connCounts) move(from, to connState) {
	if from != to {
		c.v.Add(connUnit[to] - connUnit[from])
	}
}

// load decodes the fields as signed: two transitions of one connection racing
// (its close and its next request's first bytes) can make one briefly -1,
// borrowing from the next field; decoded this way the borrow cancels out.
func (c *connCounts) load() (reading, active, idle int) {
	v := int64(c.v.Load())
	var f [3]int
	for i := range f {
		x := v & (1<<connBits - 1)
		if x >= 1<<(connBits-1) {
			x -= 1 << connBits
		}
		f[i] = int(max(x, 0))
		v = (v - x) >> connBits
	}
	return f[0], f[1], f[2]
}

// connState is the http.Server.ConnState hook.
func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	to := connGone
	switch s {
	case http.StateNew:
		to = connReading
	case http.StateActive:
		to = connActive
	case http.StateIdle:
		to = connIdle
	}
	if tc := trackedOf(c); tc != nil {
		if s == http.StateNew {
			tc.counts.Store(&p.conns)
		}
		p.conns.move(connState(tc.state.Swap(int32(to))), to)
		return
	}
	// A listener not made by Listen: remember the state by connection.
	from := connNone
	if to == connGone {
		if v, ok := p.untracked.LoadAndDelete(c); ok {
			from = v.(connState)
		}
	} else if v, ok := p.untracked.Swap(c, to); ok {
		from = v.(connState)
	}
	p.conns.move(from, to)
}

// trackedOf finds the trackedConn under c (a TLS connection wraps it, and
// a PROXY protocol one, whose accessor is Raw).
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ Raw() net.Conn }:
			c = v.Raw()
		default:
			return nil
		}
	}
}

// wake marks an idle connection that received bytes as reading.
func (c *trackedConn) wake() {
	if cc := c.counts.Load(); cc != nil && c.state.CompareAndSwap(int32(connIdle), int32(connReading)) {
		cc.move(connIdle, connReading)
	}
}
