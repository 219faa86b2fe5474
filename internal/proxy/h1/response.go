package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunking is how much of a body of unknown length is held
// before the response goes out chunked: a body that ends within it gets a
// Content-Length instead (net/http's figure).
const bufferBeforeChunking = 2048

// response is the http.ResponseWriter of one request. One per connection,
// reset for each request.
//
// Unlike net/http's, it reads the handler's header when the response
// goes out (the first write past the buffer, a Flush, or the handler's
// return), not as it was at WriteHeader: the proxy does not change a
// header once it has called WriteHeader, and the copy would cost every
// request.
type response struct {
	c    *conn
	req  *http.Request
	body *reqBody // nil without a body

	header      http.Header
	status      int   // the final status, once WriteHeader is called
	cl          int64 // the declared or computed Content-Length, -1: none
	written     int64
	pending     []byte // the body before the head goes out
	wroteHeader bool
	committed   bool // the head is in the output buffer
	chunked     bool
	closeAfter  bool
	fullDuplex  bool
	expect      bool // the client sends the body after 100 Continue

	continueMu  sync.Mutex  // serialises 100 Continue with the other answers
	canContinue atomic.Bool // 100 Continue may still be sent
}

func (w *response) reset(c *conn, req *http.Request) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	}
	clear(h)
	*w = response{c: c, req: req, header: h, cl: -1, pending: w.pending[:0]}
	w.closeAfter = req.Close || !req.ProtoAtLeast(1, 1) && !wants10KeepAlive(req)
	if req.Body != nil && req.Body != http.NoBody {
		// One per request: a reader that outlives its request (a
		// Transport still sending it) must not read the next one's.
		b := &reqBody{rc: req.Body, w: w}
		w.body = b
		req.Body = b
	}
}

func wants10KeepAlive(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor == 0 && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "keep-alive")
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.c.hijacked.Load() {
		w.c.srv.logf("h1: WriteHeader on a hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.srv.logf("h1: superfluous WriteHeader(%d)", code)
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 101 || code > 199 {
		w.disableContinue()
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	if v := w.header["Content-Length"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err == nil && n >= 0 {
			w.cl = n
		} else {
			w.c.srv.logf("h1: invalid Content-Length of %q", v[0])
			delete(w.header, "Content-Length")
		}
	}
}

// informational sends a 1xx answer at once, with the header as it is.
func (w *response) informational(code int) {
	w.continueMu.Lock()
	defer w.continueMu.Unlock()
	o := &w.c.out
	o.b = appendStatusLine(o.b, w.req, code)
	o.b = w.c.appendFields(o.b, w.header, skipLength|skipEncoding)
	o.b = append(o.b, "\r\n"...)
	o.flush()
}

func (w *response) disableContinue() {
	if w.body == nil || !w.canContinue.Load() {
		return
	}
	w.continueMu.Lock()
	w.canContinue.Store(false)
	w.continueMu.Unlock()
}

// writeContinue sends 100 Continue before the body is first read, unless
// an answer went out already.
func (w *response) writeContinue() {
	w.continueMu.Lock()
	if w.canContinue.Load() {
		w.c.out.b = append(w.c.out.b, "HTTP/1.1 100 Continue\r\n\r\n"...)
		w.c.out.flush()
		// Only now: disableContinue, which skips the lock when this is
		// false, must wait for the write to end.
		w.canContinue.Store(false)
	}
	w.continueMu.Unlock()
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked.Load() {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl != -1 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if w.canPend(len(p)) {
		w.pending = append(w.pending, p...)
		return len(p), nil
	}
	if !w.committed {
		w.commit(false, p)
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *response) WriteString(s string) (int, error) {
	// Small strings (the proxy's own answers) go by the buffer without an
	// allocation; the rest through Write.
	if w.wroteHeader && bodyAllowed(w.status) && !w.c.hijacked.Load() && w.canPend(len(s)) {
		w.written += int64(len(s))
		w.pending = append(w.pending, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// canPend reports whether n more body bytes are held until the head goes
// out: its length is not declared and they fit the buffer.
func (w *response) canPend(n int) bool {
	return !w.committed && w.cl == -1 && len(w.pending)+n <= cap(w.pending)
}

// writeBody puts p in the output, framed. HEAD's body is dropped.
func (w *response) writeBody(p []byte) error {
	if w.req.Method == http.MethodHead || len(p) == 0 {
		return nil
	}
	o := &w.c.out
	if w.chunked {
		o.b = strconv.AppendInt(o.b, int64(len(p)), 16)
		o.b = append(o.b, "\r\n"...)
		o.write(p)
		o.b = append(o.b, "\r\n"...)
	} else {
		o.write(p)
	}
	return o.err
}

// head is what commit decides about a response's head besides the
// handler's fields.
type head struct {
	skip       skipSet  // handler's fields the server drops or writes itself
	te         string   // the handler's Transfer-Encoding
	ctype      string   // the sniffed Content-Type
	connection string   // the Connection field the server adds
	declared   []string // the declared trailers, sent in the trailer only
}

// commit puts the status line and the header in the output: the framing
// is chosen now, as net/http's chunkWriter.writeHeader does. With final,
// the handler has returned and the pending body is all of it; next is the
// write that makes the head go out, if one does.
func (w *response) commit(final bool, next []byte) {
	w.committed = true
	c, h := w.c, w.header
	keys, trailers := c.sortedKeys(h)
	hd := head{te: first(h["Transfer-Encoding"])}
	if final && !trailers && hd.te == "" && bodyAllowed(w.status) && w.cl == -1 &&
		(w.req.Method != http.MethodHead || len(w.pending) > 0) {
		w.cl = int64(len(w.pending))
	}
	w.decideClose(h)
	w.contentFields(&hd, next)
	w.frame(&hd)
	w.connectionField(&hd)
	if trailers {
		hd.declared = declaredTrailers(c.declared[:0], h)
		c.declared = hd.declared
	}
	w.writeHead(keys, &hd)
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = w.pending[:0]
		_ = w.writeBody(p)
	}
}

// contentFields sniffs the Content-Type a body lacks, drops the fields a
// status without a body must not have, and settles a Content-Length that
// comes with a Transfer-Encoding.
func (w *response) contentFields(hd *head, next []byte) {
	h := w.header
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Type"]; !ok && hd.te == "" && first(h["Content-Encoding"]) == "" {
			hd.ctype = sniff(w.pending, next)
		}
	} else {
		hd.skip |= skipLength | skipEncoding
		if w.status == http.StatusNotModified {
			hd.skip |= skipType
		}
	}
	if w.cl != -1 && hd.te != "" && hd.te != "identity" {
		w.c.srv.logf("h1: WriteHeader with both Transfer-Encoding %q and Content-Length %d", hd.te, w.cl)
		hd.skip |= skipLength
		w.cl = -1
	}
}

// frame chooses the body's framing: none, Content-Length, chunked, or
// until the connection closes (HTTP/1.0, or Transfer-Encoding: identity).
func (w *response) frame(hd *head) {
	switch {
	case w.req.Method == http.MethodHead || !bodyAllowed(w.status) || w.cl != -1:
		hd.skip |= skipEncoding
	case w.req.ProtoAtLeast(1, 1) && hd.te != "identity":
		w.chunked = true
		hd.skip |= skipEncoding | skipLength
	default:
		w.closeAfter = true
		hd.skip |= skipEncoding
	}
}

// connectionField says close when the connection closes after the
// response (unless the handler said it, or the response switches
// protocols), and keep-alive to an HTTP/1.0 client that keeps it.
func (w *response) connectionField(hd *head) {
	h := w.header
	switch {
	case w.closeAfter && (w.c.srv.shutdown.Load() || !httpguts.HeaderValuesContainsToken(h["Connection"], "close")) &&
		!(w.status == http.StatusSwitchingProtocols && isProtocolSwitch(h)):
		hd.skip |= skipConnection
		if w.req.ProtoAtLeast(1, 1) {
			hd.connection = "close"
		}
	case !w.closeAfter && !w.req.ProtoAtLeast(1, 1):
		if _, ok := h["Connection"]; !ok {
			hd.connection = "keep-alive"
		}
	}
}

// writeHead appends the status line, the handler's fields and the
// server's to the output.
func (w *response) writeHead(keys []string, hd *head) {
	c, o := w.c, &w.c.out
	o.b = appendStatusLine(o.b, w.req, w.status)
	// Content-Length is always the server's, from w.cl: the handler's
	// field may have changed since WriteHeader read it.
	o.b = c.appendKeys(o.b, w.header, keys, hd.skip|skipLength, hd.declared)
	o.b = appendField(o.b, "Content-Type", hd.ctype)
	o.b = appendField(o.b, "Connection", hd.connection)
	if w.chunked {
		o.b = append(o.b, "Transfer-Encoding: chunked\r\n"...)
	} else if w.cl != -1 && bodyAllowed(w.status) {
		o.b = strconv.AppendInt(append(o.b, "Content-Length: "...), w.cl, 10)
		o.b = append(o.b, "\r\n"...)
	}
	if _, ok := w.header["Date"]; !ok {
		o.b = append(append(append(o.b, "Date: "...), c.now()...), "\r\n"...)
	}
	o.b = append(o.b, "\r\n"...)
}

// appendField appends "name: value" unless value is empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return append(append(append(append(b, name...), ": "...), value...), "\r\n"...)
}

// decideClose settles whether the connection closes after this response,
// net/http's rules: the request asked for it (or is HTTP/1.0 without
// keep-alive and a known length), the handler said Connection: close, the
// server stops, or a request body was left unread that cannot be dropped.
func (w *response) decideClose(h http.Header) {
	if wants10KeepAlive(w.req) && !(w.req.Method == http.MethodHead || w.cl != -1 || !bodyAllowed(w.status)) {
		w.closeAfter = true
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") || w.c.srv.shutdown.Load() ||
		w.status == http.StatusSwitchingProtocols {
		w.closeAfter = true
	}
	w.settleBody()
}

// settleBody deals with a request body the handler left unread when the
// response goes out: a client waiting for 100 Continue will not send it
// (close after); else, without full duplex, it is read and dropped now if
// short (close after if not), since clients that send their whole request
// before reading the response would deadlock on it.
func (w *response) settleBody() {
	b := w.body
	if b == nil || b.eof.Load() || w.closeAfter || w.fullDuplex && !w.expect {
		return
	}
	if w.expect || !b.drain(w.c) {
		w.closeAfter = true
	}
	if !w.expect {
		b.closed.Store(true) // the handler reads no more of it (net/http: ErrBodyReadAfterClose)
	}
}

// sniff names the body's content type from its first bytes: those
// pending, else the write that makes the head go out.
func sniff(pending, next []byte) string {
	if len(pending) == 0 {
		pending = next
	}
	if len(pending) == 0 {
		return ""
	}
	return http.DetectContentType(pending)
}

func (w *response) FlushError() error {
	if w.c.hijacked.Load() {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	w.c.out.flush()
	return w.c.out.err
}

func (w *response) Flush() { _ = w.FlushError() }

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body after the
// response has begun; without it the body's rest is read and dropped
// before the response goes out, as net/http does.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// Hijack hands the connection to the handler, with what is buffered of it.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if !c.hijacked.CompareAndSwap(false, true) { // from now on no watch starts
		return nil, nil, http.ErrHijacked
	}
	w.disableContinue()
	if w.wroteHeader && !w.committed {
		w.commit(false, nil)
	}
	c.cr.watch.stop(c)
	if c.cr.watch.hasByte {
		// The watch read the client's next byte: into the reader the
		// handler gets, as net/http does.
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			c.hijacked.Store(false)
			return nil, nil, fmt.Errorf("h1: hijack: the byte read ahead: %w", err)
		}
	}
	c.out.flush()
	if c.out.err != nil {
		c.hijacked.Store(false)
		return nil, nil, c.out.err
	}
	_ = c.rwc.SetDeadline(time.Time{})
	c.srv.forget(c)
	c.srv.setState(c, http.StateHijacked)
	return c.rwc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc)), nil
}

// finish completes the response once the handler has returned.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	o := &w.c.out
	if w.chunked {
		o.b = append(o.b, "0\r\n"...)
		o.b = w.appendTrailer(o.b)
		o.b = append(o.b, "\r\n"...)
	}
	if w.req.Method != http.MethodHead && w.cl != -1 && bodyAllowed(w.status) && w.cl != w.written {
		w.closeAfter = true // too short: the client would wait for the rest
	}
	o.flush()
}

// failed reports whether the client could not be written to.
func (w *response) failed() bool { return w.c.out.err != nil }

// appendTrailer appends the trailer fields: the declared ones, and those
// set under http.TrailerPrefix.
func (w *response) appendTrailer(b []byte) []byte {
	t := http.Header{}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			t[textproto.CanonicalMIMEHeaderKey(name)] = vv
		}
	}
	for _, name := range declaredTrailers(w.c.declared[:0], w.header) {
		if vv, ok := w.header[name]; ok {
			t[name] = vv
		}
	}
	if len(t) == 0 {
		return b
	}
	keys, _ := w.c.sortedKeys(t)
	return w.c.appendKeys(b, t, keys, 0, nil)
}

// declaredTrailers appends to list the field names h's Trailer announces,
// less those that cannot be trailers.
func declaredTrailers(list []string, h http.Header) []string {
	for _, v := range h["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			name = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(name))
			switch name {
			case "", "Transfer-Encoding", "Trailer", "Content-Length":
				continue
			}
			list = append(list, name)
		}
	}
	return list
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

func isProtocolSwitch(h http.Header) bool {
	return first(h["Upgrade"]) != "" && httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func appendStatusLine(b []byte, r *http.Request, code int) []byte {
	if r.ProtoAtLeast(1, 1) {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// skipSet names the fields of the handler's header that the server writes
// itself, or drops.
type skipSet uint8

const (
	skipLength     skipSet = 1 << iota // Content-Length
	skipEncoding                       // Transfer-Encoding
	skipType                           // Content-Type
	skipConnection                     // Connection
)

func (s skipSet) has(key string) bool {
	switch key {
	case "Content-Length":
		return s&skipLength != 0
	case "Transfer-Encoding":
		return s&skipEncoding != 0
	case "Content-Type":
		return s&skipType != 0
	case "Connection":
		return s&skipConnection != 0
	}
	return false
}

// sortedKeys returns h's valid field names in order (net/http writes them
// sorted), less trailers; trailers reports whether h announces any.
func (c *conn) sortedKeys(h http.Header) (keys []string, trailers bool) {
	keys = c.keys[:0]
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailers = true
			continue
		}
		if k == "Trailer" {
			trailers = true
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c.keys = keys
	return keys, trailers
}

// appendFields appends all of h but the skipped fields.
func (c *conn) appendFields(b []byte, h http.Header, skip skipSet) []byte {
	keys, _ := c.sortedKeys(h)
	return c.appendKeys(b, h, keys, skip, nil)
}

// appendKeys appends h's fields named in keys, as net/http's
// Header.WriteSubset does: invalid names dropped, line breaks in values
// made spaces, values trimmed.
func (c *conn) appendKeys(b []byte, h http.Header, keys []string, skip skipSet, declared []string) []byte {
	for _, k := range keys {
		if skip != 0 && skip.has(k) || !httpguts.ValidHeaderFieldName(k) || len(declared) > 0 && slices.Contains(declared, k) {
			continue
		}
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func appendValue(b []byte, v string) []byte {
	if strings.ContainsAny(v, "\r\n") {
		v = newlineToSpace.Replace(v)
	}
	return append(b, textproto.TrimString(v)...)
}

// now returns the Date field's value, formatted once a second.
func (c *conn) now() []byte {
	t := time.Now()
	if sec := t.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = t.UTC().AppendFormat(c.date[:0], http.TimeFormat)
	}
	return c.date
}

// reqBody is the request's body as the handler reads it: it sends 100
// Continue before the first read when the client expects it, and notes
// the end, so that the connection knows whether the body was all read.
type reqBody struct {
	rc     io.ReadCloser // http.ReadRequest's body
	w      *response
	eof    atomic.Bool
	closed atomic.Bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.w.canContinue.Load() {
		b.w.writeContinue()
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close stops the handler's reads; what is left is read and dropped (or
// the connection closed) when the response is done.
func (b *reqBody) Close() error {
	b.closed.Store(true)
	return nil
}

// drain reads and drops the rest of the body, up to a limit and for at
// most the header timeout. It reports whether the body ended.
func (b *reqBody) drain(c *conn) bool {
	if b.eof.Load() {
		return true
	}
	if t := c.srv.ReadHeaderTimeout; t > 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(t))
		defer c.rwc.SetReadDeadline(time.Time{})
	}
	_, err := io.CopyN(io.Discard, b.rc, maxPostHandlerReadBytes+1)
	if errors.Is(err, io.EOF) {
		b.eof.Store(true)
		return true
	}
	return false
}

// outBuf is the connection's output buffer: a response's head and small
// bodies gather in it; a large write goes out with it in one writev.
type outBuf struct {
	w   io.Writer
	tcp *net.TCPConn
	b   []byte // its capacity is the buffer's size
	vec net.Buffers
	err error
}

func (o *outBuf) init(w io.Writer, tcp *net.TCPConn) {
	o.w, o.tcp = w, tcp
	o.b = make([]byte, 0, 4<<10)
}

func (o *outBuf) write(p []byte) {
	if o.err != nil {
		return
	}
	if len(o.b)+len(p) <= cap(o.b) {
		o.b = append(o.b, p...)
		return
	}
	if small := len(p) < cap(o.b)/2; small || o.tcp == nil {
		o.flush()
		if small {
			o.b = append(o.b, p...)
		} else if o.err == nil {
			_, o.err = o.w.Write(p)
		}
		return
	}
	o.vec = append(o.vec[:0], o.b, p)
	_, o.err = o.vec.WriteTo(o.tcp)
	o.vec = o.vec[:0]
	o.b = o.b[:0]
}

func (o *outBuf) flush() {
	if len(o.b) == 0 || o.err != nil {
		o.b = o.b[:0]
		return
	}
	_, o.err = o.w.Write(o.b)
	o.b = o.b[:0]
}
