package proxy

// The lean path to the app: a request is written to the app and its answer
// read on the handler's own goroutine, over the target's pool of kept-alive
// connections (package upstream), instead of through httputil.ReverseProxy
// and net/http's Transport. It keeps their behaviour, field by field: the
// same outgoing fields (headers.go's X-Forwarded-*, X-Request-Id, Te:
// trailers, no hop-by-hop), the same response (hop-by-hop fields dropped,
// announced trailers, 1xx answers passed on, flushing of streamed bodies),
// and the same failures, classified by answer.go's table. WebSocket
// handshakes still go through ReverseProxy (upgrade.go), which hands the
// connection over on the app's 101.

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/upstream"
	"golang.org/x/net/http/httpguts"
)

// leanState is one request's exchange with the app, pooled with its
// buffers so that a steady stream of requests allocates none of it.
type leanState struct {
	x    upstream.Exchange
	req  upstream.Request
	set  []upstream.Field
	rec  *recorder
	r    *http.Request
	info func(int, []upstream.Field) error // ls.informational, bound once
	stop func()                            // ls.abortBody, bound once
}

var leanStates = sync.Pool{New: func() any {
	ls := &leanState{set: make([]upstream.Field, 0, 8)}
	ls.info, ls.stop = ls.informational, ls.abortBody
	return ls
}}

// exchange forwards r to the target over its lean client and copies the
// answer to rec. A response that breaks while it streams to the client
// aborts the client's connection (http.ErrAbortHandler), as ReverseProxy
// does; one being buffered or discarded is answered (or recorded) instead.
func (p *Proxy) exchange(rec *recorder, r *http.Request) error {
	ls := leanStates.Get().(*leanState)
	defer ls.release()
	ls.rec, ls.r = rec, r
	p.outgoing(ls, r)
	x := &ls.x
	if err := rec.target.up.Send(x, &ls.req); err != nil {
		return p.sendError(rec, r, err)
	}
	defer x.Close()
	if x.Status == http.StatusSwitchingProtocols {
		return fmt.Errorf("%w: the app switched protocols on a request that asked for none", errUpstream)
	}
	flush := p.copyHead(rec, x)
	rec.WriteHeader(x.Status)
	rerr, werr := copyBody(rec, x, flush)
	if rerr != nil || werr != nil {
		if rerr != nil {
			p.log.Warn().Err(rerr).Str("target", rec.target.id).Msg("read error during the app's response body")
		}
		if rec.buffering || rec.discarding {
			return rec.abortError()
		}
		panic(http.ErrAbortHandler)
	}
	copyTrailer(rec, x)
	return nil
}

func (ls *leanState) release() {
	ls.x.Close()
	clear(ls.set)
	ls.req = upstream.Request{}
	ls.set, ls.rec, ls.r = ls.set[:0], nil, nil
	leanStates.Put(ls)
}

// sendError names a failed exchange: the client's body (over the limit,
// stalled, gone), or the app (unreachable, too slow, failing).
func (p *Proxy) sendError(rec *recorder, r *http.Request, err error) error {
	var be *upstream.BodyError
	if errors.As(err, &be) && (rec.limited == nil || !rec.limited.over.Load()) {
		return bodyError(r, be.Err)
	}
	return rec.classify(err)
}

// outgoing fills ls.req from r: the path without the prefix and the query
// cleaned as ReverseProxy does, the client's end-to-end fields less those
// the proxy sets or keeps from untrusted peers, then the proxy's own.
func (p *Proxy) outgoing(ls *leanState, r *http.Request) {
	req := &ls.req
	req.Method, req.Host = r.Method, r.Host
	if req.Host == "" {
		req.Host = ls.rec.target.addr // as the Transport does with an empty Host
	}
	req.Path, req.RawQuery = outPath(r.URL, p.cfg.Prefix), cleanQuery(r.URL.RawQuery)
	if r.URL.ForceQuery && req.RawQuery == "" {
		req.Path += "?"
	}
	req.Header = r.Header
	v := p.fwd.values(r)
	req.Drop = p.fwd.dropFunc(v.trusted)
	set := ls.set[:0]
	v.each(func(name, value string) { set = append(set, upstream.Field{Name: name, Value: value}) })
	if id := r.Header["X-Request-Id"]; len(id) > 0 {
		set = append(set, upstream.Field{Name: "X-Request-Id", Value: id[0]})
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		set = append(set, upstream.Field{Name: "Te", Value: "trailers"})
	}
	req.Set, ls.set = set, set
	if hasBody(r) {
		req.Body, req.ContentLength, req.GetBody, req.Trailer = r.Body, r.ContentLength, r.GetBody, r.Trailer
		req.Buffered, req.AbortBody = ls.rec.body != nil, ls.stop
	}
	req.Informational = ls.info
}

// outPath is the escaped path sent to the app: the client's, without the
// prefix.
func outPath(u *url.URL, prefix string) string {
	if u.Opaque != "" {
		return u.RequestURI() // with the query: RawQuery is cleaned apart
	}
	if prefix == "" {
		return u.EscapedPath()
	}
	out := *u
	stripURL(&out, prefix)
	return out.EscapedPath()
}

// cleanQuery is ReverseProxy's cleanQueryParams: a query net/url cannot
// parse (a semicolon, a bad escape) is sent as net/url reads it, so that
// the app and the proxy agree on what it says.
func cleanQuery(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return reencode(s)
			}
			i += 2
		}
	}
	return s
}

func reencode(s string) string {
	v, _ := url.ParseQuery(s)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// informational passes a 1xx answer (103 Early Hints) to the client, as
// ReverseProxy does: its fields, then cleared.
func (ls *leanState) informational(code int, fields []upstream.Field) error {
	h := ls.rec.Header()
	for _, f := range fields {
		h[f.Name] = append(h[f.Name], f.Value)
	}
	ls.rec.WriteHeader(code)
	clear(h)
	return nil
}

// abortBody makes a read of the client's body return at once: the app
// answered without reading it all, and the exchange is over.
func (ls *leanState) abortBody() {
	if http.NewResponseController(ls.rec.ResponseWriter).SetReadDeadline(time.Now()) != nil {
		if tc := trackedFrom(ls.r.Context()); tc != nil {
			_ = tc.SetReadDeadline(time.Now())
		}
	}
}

// copyHead puts the app's fields into the client's header: one []string
// for all of them, the announced trailers, the configured headers. It
// reports whether the body streams (flushed at each write): chunked or
// until-close bodies and server-sent events, as ReverseProxy's flushing.
func (p *Proxy) copyHead(rec *recorder, x *upstream.Exchange) (flush bool) {
	h := rec.Header()
	vals := make([]string, len(x.Fields))
	for i, f := range x.Fields {
		if vs, ok := h[f.Name]; ok {
			h[f.Name] = append(vs, f.Value)
			continue
		}
		vals[i] = f.Value
		h[f.Name] = vals[i : i+1 : i+1]
	}
	if len(x.TrailerNames) > 0 {
		h["Trailer"] = append(h["Trailer"], strings.Join(x.TrailerNames, ", "))
	}
	if len(p.cfg.ResponseHeaders) > 0 {
		setResponseHeaders(h, p.cfg.ResponseHeaders)
	}
	if x.ContentLength < 0 {
		return true
	}
	ct := h["Content-Type"]
	if len(ct) == 0 || !strings.Contains(ct[0], "event-stream") {
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct[0])
	return mt == "text/event-stream"
}

// copyBody copies the response body to the client; flush sends each piece
// at once. It reports the app's failure or the client's.
func copyBody(rec *recorder, x *upstream.Exchange, flush bool) (readErr, writeErr error) {
	bp := copyBuffers.Get()
	defer copyBuffers.Put(bp)
	for {
		n, err := x.Read(bp)
		if n > 0 {
			if _, werr := rec.Write(bp[:n]); werr != nil {
				return nil, werr
			}
			if flush {
				if ferr := rec.FlushError(); ferr != nil {
					return nil, ferr
				}
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// copyTrailer sends the app's trailer fields: under their names when it
// announced them all, else each with http.TrailerPrefix, after a flush that
// makes net/http chunk the response (as ReverseProxy does).
func copyTrailer(rec *recorder, x *upstream.Exchange) {
	if len(x.Trailer) == 0 {
		return
	}
	_ = rec.FlushError()
	announced := true
	for _, f := range x.Trailer {
		announced = announced && contains(x.TrailerNames, f.Name)
	}
	h := rec.Header()
	for _, f := range x.Trailer {
		name := f.Name
		if !announced {
			name = http.TrailerPrefix + name
		}
		h[name] = append(h[name], f.Value)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
