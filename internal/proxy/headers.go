package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// Header is one response header added to every response (HAProxy's
// `http-response set-header`, gunicorn-proxy's HEADER_*): it replaces any
// value the app sent.
type Header struct {
	Name, Value string
}

// forwarded sets the X-Forwarded-* headers of an outgoing request.
//
// Incoming X-Forwarded-* headers are kept (and For appended to) only when the
// peer is a trusted proxy; from anyone else they are replaced, since a client
// could otherwise claim any address, scheme or host to the app.
//
// X-Forwarded-Prefix is the path the app is mounted under, as Werkzeug's
// ProxyFix (x_prefix) reads it into SCRIPT_NAME: our prefix, after a trusted
// proxy's own (a proxy in front that mounts us under /outer makes it
// /outer/api). Without a prefix of ours a trusted proxy's is passed on as it
// is, anyone else's is dropped.
type forwarded struct {
	trusted []netip.Prefix
	scheme  string // "" : from the connection (TLS or not)
	prefix  string // "" : none
}

func (f *forwarded) isTrusted(remoteAddr string) bool {
	if len(f.trusted) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(hostOnly(remoteAddr))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range f.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// rewrite runs inside httputil.ReverseProxy's Rewrite hook, where Out has
// already lost X-Forwarded-For/Host/Proto and Forwarded.
func (f *forwarded) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out.Header
	trusted := f.isTrusted(in.RemoteAddr)
	client := hostOnly(in.RemoteAddr)

	if prior, ok := in.Header["X-Forwarded-For"]; ok && trusted && len(prior) > 0 {
		out["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + client}
	} else if client != "" {
		out["X-Forwarded-For"] = []string{client}
	}

	proto := f.scheme
	if proto == "" {
		proto = "http"
		if in.TLS != nil {
			proto = "https"
		}
	}
	if v := in.Header.Get("X-Forwarded-Proto"); trusted && v != "" {
		proto = v
	}
	out["X-Forwarded-Proto"] = []string{proto}

	host := in.Host
	if v := in.Header.Get("X-Forwarded-Host"); trusted && v != "" {
		host = v
	}
	if host != "" {
		out["X-Forwarded-Host"] = []string{host}
	}

	// The client-facing port: the one in the Host the client used, else the
	// scheme's default; never the port the proxy listens on (inside a
	// container that port is not the one clients see).
	if v := in.Header.Get("X-Forwarded-Port"); trusted && v != "" {
		out["X-Forwarded-Port"] = []string{v}
	} else {
		out["X-Forwarded-Port"] = []string{portOf(host, proto)}
	}
	switch {
	case f.prefix != "":
		v := f.prefix
		if prior := in.Header.Get("X-Forwarded-Prefix"); trusted && prior != "" {
			v = strings.TrimRight(prior, "/") + f.prefix
		}
		out["X-Forwarded-Prefix"] = []string{v}
	case !trusted:
		out.Del("X-Forwarded-Prefix")
	}
}

func portOf(host, proto string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		if p := host[i+1:]; p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err == nil {
				return p
			}
		}
	}
	if proto == "https" || proto == "wss" {
		return "443"
	}
	return "80"
}

// hostOnly strips the port from a host:port without allocating.
func hostOnly(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// requestIDs makes X-Request-Id values: a random per-process prefix and a
// counter, unique without a syscall or lock per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:])}
}

func (g *requestIDs) next() string {
	var buf [32]byte
	b := append(buf[:0], g.prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, g.n.Add(1), 36)
	return string(b)
}

// setResponseHeaders applies the configured headers to h.
func setResponseHeaders(h http.Header, hs []Header) {
	for _, x := range hs {
		h.Set(x.Name, x.Value)
	}
}
