package compress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// writerState is where a compressWriter is in its response.
type writerState uint8

const (
	stateUndecided   writerState = iota // status and headers held back
	statePlain                          // passing the response through
	stateCompressing                    // body through the encoder
	stateHijacked                       // the handler owns the connection
)

// compressWriter decides, once per response, whether to compress: on the
// headers when the status is known, then on the first MinSize bytes of the
// body (or at once when Content-Length says it is long enough). It unwraps,
// so that http.ResponseController reaches the connection (deadlines, full
// duplex); Flush and Hijack it handles itself.
type compressWriter struct {
	http.ResponseWriter
	c      *Handler
	coding Coding // what this client gets if the response qualifies
	status int    // the final status, once known
	state  writerState
	sized  bool   // Content-Length ≥ MinSize: nothing to hold back
	buf    []byte // body held back while undecided, up to MinSize bytes
	enc    encoder
}

func (w *compressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *compressWriter) WriteHeader(code int) {
	if w.state == stateHijacked {
		return
	}
	if w.state != stateUndecided {
		w.ResponseWriter.WriteHeader(code) // net/http logs the superfluous call
		return
	}
	if w.status != 0 {
		return
	}
	if code < 200 {
		// Interim responses (103 Early Hints) go out as they come; 101
		// hands the connection over.
		if code == http.StatusSwitchingProtocols {
			w.status, w.state = code, statePlain
		}
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status = code
	w.checkHeaders()
}

// checkHeaders decides what the status and headers alone can decide.
func (w *compressWriter) checkHeaders() {
	h := w.Header()
	ok, sized := w.qualifies(h)
	if ok && w.coding == Identity {
		// Another client would have had it compressed: caches must know.
		if ct := h["Content-Type"]; len(ct) > 0 {
			AddVary(h)
		}
		ok = false
	}
	if !ok {
		_ = w.startPlain()
		return
	}
	w.sized = sized
}

// qualifies reports whether the response may be compressed as far as its
// status and headers tell, and whether its Content-Length reaches MinSize.
func (w *compressWriter) qualifies(h http.Header) (ok, sized bool) {
	switch w.status {
	case http.StatusNoContent, http.StatusNotModified, http.StatusPartialContent:
		return false, false
	}
	if w.status < 200 || h.Get("Content-Encoding") != "" || h.Get("Content-Range") != "" {
		return false, false
	}
	for _, v := range h["Cache-Control"] {
		if strings.Contains(strings.ToLower(v), "no-transform") {
			return false, false
		}
	}
	if ct, declared := h["Content-Type"]; declared && (len(ct) == 0 || !w.c.types.match(ct[0])) {
		return false, false // an empty Content-Type says: do not sniff
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < int64(w.c.minSize) {
			return false, false
		}
		sized = true
	}
	return true, sized
}

// decide settles an undecided response once enough of the body is known:
// sniff is its first bytes, for a response without Content-Type.
func (w *compressWriter) decide(sniff []byte) error {
	h := w.Header()
	if _, declared := h["Content-Type"]; !declared {
		if len(sniff) == 0 {
			return w.startPlain()
		}
		ct := http.DetectContentType(sniff)
		if !w.c.types.match(ct) {
			return w.startPlain()
		}
		// Set it now: net/http would sniff the compressed bytes.
		h.Set("Content-Type", ct)
	}
	return w.startCompressing()
}

func (w *compressWriter) startPlain() error {
	w.state = statePlain
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(w.status)
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.ResponseWriter.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *compressWriter) startCompressing() error {
	h := w.Header()
	h.Set("Content-Encoding", w.coding.String())
	h.Del("Content-Length")
	h.Del("Accept-Ranges") // ranges of the compressed bytes are not offered
	AddVary(h)
	if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("Etag", "W/"+et)
	}
	w.state = stateCompressing
	w.ResponseWriter.WriteHeader(w.status)
	w.enc = getEncoder(w.coding, w.ResponseWriter)
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.enc.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *compressWriter) Write(p []byte) (int, error) {
	switch w.state {
	case statePlain:
		return w.ResponseWriter.Write(p)
	case stateCompressing:
		return w.enc.Write(p)
	case stateHijacked:
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
		if w.checkHeaders(); w.state != stateUndecided {
			return w.Write(p)
		}
	}
	if w.sized {
		if err := w.decide(p); err != nil {
			return 0, err
		}
		return w.Write(p)
	}
	n := min(len(p), w.c.minSize-len(w.buf))
	w.buf = append(w.buf, p[:n]...)
	if len(w.buf) < w.c.minSize {
		return len(p), nil
	}
	if err := w.decide(w.buf); err != nil {
		return 0, err
	}
	if n < len(p) {
		if m, err := w.Write(p[n:]); err != nil {
			return n + m, err
		}
	}
	return len(p), nil
}

// ReadFrom keeps sendfile for responses passed through (static files), and
// copies through a pooled buffer otherwise.
func (w *compressWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.state == stateUndecided && w.status == 0 {
		w.status = http.StatusOK
		w.checkHeaders()
	}
	if w.state == statePlain {
		if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
			return rf.ReadFrom(src)
		}
	}
	bp := compressCopyBuffers.Get().(*[]byte)
	defer compressCopyBuffers.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

var compressCopyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// FlushError sends what the handler wrote so far. An undecided response is
// decided now: a response being streamed is compressed if its type allows,
// whatever its eventual size; the encoder is flushed, then the connection.
func (w *compressWriter) FlushError() error {
	switch w.state {
	case stateHijacked:
		return http.ErrHijacked
	case stateUndecided:
		if w.status == 0 {
			w.status = http.StatusOK
			w.checkHeaders()
		}
		if w.state == stateUndecided {
			if err := w.decide(w.buf); err != nil {
				return err
			}
		}
	}
	if w.state == stateCompressing {
		if err := w.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *compressWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection to the handler; nothing is written after it.
func (w *compressWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.state = stateHijacked
	}
	return conn, rw, err
}

// finish ends the response once the handler has returned.
func (w *compressWriter) finish() {
	switch w.state {
	case stateUndecided:
		if w.status == 0 {
			return // nothing written: net/http sends its empty 200
		}
		_ = w.startPlain() // the whole body is here, and short
	case stateCompressing:
		_ = w.enc.Close()
	}
}

func (w *compressWriter) release() {
	if w.enc != nil {
		putEncoder(w.enc)
	}
	buf := w.buf[:0]
	*w = compressWriter{buf: buf}
	compressWriters.Put(w)
}
