package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
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

// rewrite runs inside httputil.ReverseProxy's Rewrite hook (upgrades),
// where Out has already lost X-Forwarded-For/Host/Proto, Forwarded and the
// hop-by-hop headers (those the client named in Connection too).
func (f *forwarded) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out.Header
	keepOurs(in, out)
	v := f.values(in)
	if !v.trusted {
		for _, h := range untrustedOnly {
			delete(out, h)
		}
		out.Del("X-Forwarded-Prefix")
	}
	v.each(func(name, value string) { out[name] = []string{value} })
}

// fwdValues are the X-Forwarded-* fields of one outgoing request.
type fwdValues struct {
	trusted                        bool // the peer is a trusted proxy
	client, proto, host, port, pfx string
}

// values works out the X-Forwarded-* fields of the request in.
func (f *forwarded) values(in *http.Request) fwdValues {
	said := claims{in.Header, f.isTrusted(in.RemoteAddr)}
	v := fwdValues{trusted: said.trusted, client: hostOnly(in.RemoteAddr)}
	if prior := said.get("X-Forwarded-For"); prior != "" {
		v.client = strings.Join(in.Header["X-Forwarded-For"], ", ") + ", " + v.client
	}
	v.proto = firstOf(said.get("X-Forwarded-Proto"), f.scheme, schemeOf(in))
	v.host = firstOf(said.get("X-Forwarded-Host"), in.Host)
	// The client-facing port: the one in the Host the client used, else the
	// scheme's default; never the port the proxy listens on (inside a
	// container that port is not the one clients see).
	v.port = firstOf(said.get("X-Forwarded-Port"), portOf(v.host, v.proto))
	if f.prefix != "" {
		v.pfx = f.prefix
		if prior := said.get("X-Forwarded-Prefix"); prior != "" {
			v.pfx = strings.TrimRight(prior, "/") + f.prefix
		}
	}
	return v
}

// each calls set for every field to send, in a fixed order.
func (v *fwdValues) each(set func(name, value string)) {
	if v.client != "" {
		set("X-Forwarded-For", v.client)
	}
	set("X-Forwarded-Proto", v.proto)
	if v.host != "" {
		set("X-Forwarded-Host", v.host)
	}
	set("X-Forwarded-Port", v.port)
	if v.pfx != "" {
		set("X-Forwarded-Prefix", v.pfx)
	}
}

// dropTrusted and dropUntrusted name the client's fields that the lean
// path (exchange.go) does not pass on, beside the hop-by-hop ones: the
// same that ReverseProxy and rewrite remove or replace.
func (f *forwarded) dropTrusted(name string) bool   { return f.drop(name, true) }
func (f *forwarded) dropUntrusted(name string) bool { return f.drop(name, false) }

// dropFunc is dropTrusted or dropUntrusted.
func (f *forwarded) dropFunc(trusted bool) func(string) bool {
	if trusted {
		return f.dropTrusted
	}
	return f.dropUntrusted
}

func (f *forwarded) drop(name string, trusted bool) bool {
	switch name {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Request-Id":
		return true
	case "X-Forwarded-Prefix":
		return !trusted || f.prefix != ""
	}
	return !trusted && untrustedSet[name]
}

// claims are what a trusted proxy says it received; nothing from anyone
// else.
type claims struct {
	h       http.Header
	trusted bool
}

func (c claims) get(name string) string {
	if !c.trusted {
		return ""
	}
	return c.h.Get(name)
}

// keepOurs undoes what the client may not do to the outgoing headers.
func keepOurs(in *http.Request, out http.Header) {
	// ReverseProxy put back the Upgrade of any request naming one; only a
	// WebSocket handshake may ask the app to switch protocols.
	if _, ok := out["Upgrade"]; ok && !isUpgrade(in) {
		delete(out, "Upgrade")
		delete(out, "Connection")
	}
	// A Connection header may name hop-by-hop headers, which are then not
	// forwarded; never the request id the proxy logs.
	out["X-Request-Id"] = in.Header["X-Request-Id"]
}

// schemeOf is the scheme of the client's connection.
func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// firstOf is the first of vs that is not empty.
func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
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

// checkHeaders validates response headers set by the operator, which
// net/http would otherwise drop (a name that is not a token) or send broken
// (a control character in a value): a name must be an HTTP token, a value
// may hold no control character but the tab.
func checkHeaders(hs []Header) error {
	for _, h := range hs {
		if !httpguts.ValidHeaderFieldName(h.Name) {
			return fmt.Errorf("response header %q: invalid name: use letters, digits and !#$%%&'*+-.^_`|~ only", h.Name)
		}
		for i := 0; i < len(h.Value); i++ {
			if c := h.Value[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return fmt.Errorf("response header %q: value has a control character (%#02x) at byte %d: remove it", h.Name, c, i)
			}
		}
	}
	return nil
}

// setResponseHeaders applies the configured headers to h.
func setResponseHeaders(h http.Header, hs []Header) {
	for _, x := range hs {
		h.Set(x.Name, x.Value)
	}
}

// untrustedOnly are the headers, beside X-Forwarded-*, by which a proxy
// tells the app who the client is, how it connected or what it asked for.
// Frameworks trust them (chi's RealIP: X-Real-IP, True-Client-IP; Rack:
// X-Forwarded-Scheme, X-Forwarded-Ssl; Rails: Client-IP; gunicorn's
// secure_scheme_headers: X-Forwarded-Protocol, X-Forwarded-Ssl; Symfony and
// IIS: X-Original-URL, X-Rewrite-URL; Apache: X-Forwarded-Server), so they
// reach the app only from a trusted proxy. Forwarded (RFC 7239) never does:
// ReverseProxy drops it, and the proxy sends X-Forwarded-* instead.
var untrustedOnly = []string{
	"X-Real-Ip", "True-Client-Ip", "Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
	"Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Original-Forwarded-For", "X-Forwarded",
	"Forwarded-For", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Protocol",
	"X-Url-Scheme", "Front-End-Https", "X-Forwarded-Server", "X-Forwarded-Uri",
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Host", "X-Host",
}

// untrustedSet is untrustedOnly for lookups.
var untrustedSet = func() map[string]bool {
	m := make(map[string]bool, len(untrustedOnly))
	for _, h := range untrustedOnly {
		m[h] = true
	}
	return m
}()
