package compress

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultMinSize is the smallest body compressed (nginx's
// gzip_min_length, gzhttp's default): below about one packet, compressing
// saves no round trip and costs CPU.
const DefaultMinSize = 1024

// DefaultTypes are the media types compressed by default: text and
// the structured text formats of the web. Whatever the list says, formats
// that are compressed already (images but SVG, BMP and icons, video, audio,
// woff/woff2, archives) and text/event-stream are never compressed.
var DefaultTypes = []string{
	"text/*",
	"application/json", "application/*+json", "application/x-ndjson",
	"application/javascript", "application/x-javascript", "application/ecmascript",
	"application/xml", "application/*+xml",
	"application/wasm", "application/yaml", "application/toml", "application/x-sh",
	"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
	"font/ttf", "font/otf", "application/vnd.ms-fontobject",
}

// Encoder settings. gzip level 5 is klauspost's default: close to level 9's
// ratio on web text at a fraction of its CPU. zstd runs at its fastest
// level with a 128 KiB window, as gzhttp does: less memory per pooled
// encoder, and well within RFC 9659's 8 MiB limit for HTTP.
const (
	compressGzipLevel  = gzip.DefaultCompression
	compressZstdLevel  = zstd.SpeedFastest
	compressZstdWindow = 128 << 10
)

// Config sets up a Handler.
type Config struct {
	// MinSize is the smallest body compressed, in bytes. When the response
	// has no Content-Length, up to MinSize bytes are held back to decide
	// (a Flush decides at once: a stream is compressed, as nginx does).
	// Default DefaultMinSize; 1 compresses every non-empty body.
	MinSize int
	// Types are the media type patterns compressed: type/subtype, type/*,
	// type/*+suffix or */*. Default DefaultTypes.
	Types []string
}

// Handler is a middleware that compresses the responses of next with
// zstd or gzip, as the client's Accept-Encoding allows: zstd when it is
// acceptable with a q not below gzip's, else gzip. A response is sent as it
// is when the request is HEAD, CONNECT or an upgrade (WebSocket: Hijack and
// Flush reach the connection untouched), or when the response
//   - is 1xx, 204, 304 or 206 (a range of the uncompressed bytes),
//   - has a Content-Encoding already (never compressed twice: a
//     precompressed static file, an app that compresses itself),
//   - says Cache-Control: no-transform,
//   - has a type not in Types (by its Content-Type, sniffed when absent),
//   - is shorter than MinSize.
//
// A compressed response gets Content-Encoding, Vary: Accept-Encoding
// (merged into the app's Vary), a weak ETag (W/ added: the bytes differ
// from the identity representation's), and loses Content-Length (net/http
// sets it again when the whole compressed body fits its buffer) and
// Accept-Ranges. A response that could have been compressed for another
// client gets the Vary too. Flush flushes the encoder, so streamed
// responses still stream. Encoders and the writers are pooled: no encoder
// is allocated per request.
type Handler struct {
	next    http.Handler
	minSize int
	types   typeMatcher
}

// New checks cfg and wraps next.
func New(cfg Config, next http.Handler) (*Handler, error) {
	if cfg.MinSize <= 0 {
		cfg.MinSize = DefaultMinSize
	}
	if cfg.Types == nil {
		cfg.Types = DefaultTypes
	}
	types, err := newTypeMatcher(cfg.Types)
	if err != nil {
		return nil, err
	}
	return &Handler{next: next, minSize: cfg.MinSize, types: types}, nil
}

func (c *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// HEAD has no body to compress; CONNECT and upgrades become a byte
	// stream owned by the handler.
	if r.Method == http.MethodHead || r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
		c.next.ServeHTTP(w, r)
		return
	}
	cw := compressWriters.Get().(*compressWriter)
	*cw = compressWriter{
		ResponseWriter: w,
		c:              c,
		coding:         parseAcceptEncoding(r.Header["Accept-Encoding"]).choose(true, true),
		buf:            cw.buf[:0],
	}
	panicked := true
	defer func() {
		if panicked {
			// The response is broken (ReverseProxy panics with
			// http.ErrAbortHandler when the app's body breaks): do not end
			// the compressed stream cleanly, and drop the encoder.
			cw.enc = nil
		}
		cw.release()
	}()
	c.next.ServeHTTP(cw, r)
	panicked = false
	cw.finish()
}

var compressWriters = sync.Pool{New: func() any { return new(compressWriter) }}

// encoder is what gzip.Writer and zstd.Encoder have in common.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

var (
	gzipEncoders = sync.Pool{New: func() any {
		e, err := gzip.NewWriterLevel(nil, compressGzipLevel)
		if err != nil {
			panic(err) // a constant level: cannot happen
		}
		return e
	}}
	zstdEncoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(compressZstdLevel), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(compressZstdWindow))
		if err != nil {
			panic(err) // constant options: cannot happen
		}
		return e
	}}
)

func getEncoder(c Coding, w io.Writer) encoder {
	var e encoder
	if c == Zstd {
		e = zstdEncoders.Get().(*zstd.Encoder)
	} else {
		e = gzipEncoders.Get().(*gzip.Writer)
	}
	e.Reset(w)
	return e
}

func putEncoder(e encoder) {
	switch e := e.(type) {
	case *zstd.Encoder:
		e.Reset(nil) // let go of the response
		zstdEncoders.Put(e)
	case *gzip.Writer:
		gzipEncoders.Put(e)
	}
}

// AddVary merges Accept-Encoding into h's Vary, in one field line.
func AddVary(h http.Header) {
	vs := h["Vary"]
	for _, v := range vs {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok == "*" || strings.EqualFold(tok, "Accept-Encoding") {
				return
			}
		}
	}
	if len(vs) == 0 {
		h["Vary"] = []string{"Accept-Encoding"}
		return
	}
	h["Vary"] = []string{strings.Join(vs, ", ") + ", Accept-Encoding"}
}
