package proxy

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Access log formats. A format that is neither is a template of HAProxy-style
// %-codes (see logCodes).
const (
	LogFormatJSON = "json"
	LogFormatText = "text" // DefaultTextFormat
)

// logCode is one template code: what it writes, and how.
type logCode struct {
	doc string
	put func(b []byte, e *entry) []byte
}

// logCodes are the template codes ("%%" is a literal %). Times are
// milliseconds, -1 for a phase the request never reached (HAProxy's
// convention).
var logCodes = map[string]logCode{
	"%T": {"time the request started, RFC 3339 with milliseconds", func(b []byte, e *entry) []byte {
		return e.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}},
	"%ci": {"client IP", func(b []byte, e *entry) []byte { return appendStr(b, e.client) }},
	"%HM": {"method", func(b []byte, e *entry) []byte { return appendStr(b, e.method) }},
	"%HU": {"path and query", func(b []byte, e *entry) []byte { return appendStr(b, e.uri) }},
	"%HP": {"path", func(b []byte, e *entry) []byte {
		p, _, _ := strings.Cut(e.uri, "?")
		return appendStr(b, p)
	}},
	"%HV": {"protocol", func(b []byte, e *entry) []byte { return appendStr(b, e.proto) }},
	"%ST": {"status", func(b []byte, e *entry) []byte { return strconv.AppendInt(b, int64(e.status), 10) }},
	"%TR": {"ms reading the request", func(b []byte, e *entry) []byte { return appendMs(b, e.read, true) }},
	"%Tw": {"ms queued", func(b []byte, e *entry) []byte { return appendMs(b, e.queue, e.queued) }},
	"%Tr": {"ms until the app's response headers", func(b []byte, e *entry) []byte { return appendMs(b, e.app, e.gotApp) }},
	"%Ta": {"ms in total", func(b []byte, e *entry) []byte { return appendMs(b, e.all, true) }},
	"%U":  {"bytes received", func(b []byte, e *entry) []byte { return strconv.AppendInt(b, e.in, 10) }},
	"%B":  {"bytes sent", func(b []byte, e *entry) []byte { return strconv.AppendInt(b, e.out, 10) }},
	"%ID": {"request id", func(b []byte, e *entry) []byte { return appendStr(b, e.id) }},
	"%s":  {"target id", func(b []byte, e *entry) []byte { return appendStr(b, e.target) }},
	"%FB": {"peer fallback: to:PEER-ADDRESS (sent), from:ORIGIN-HOST (received), or -", func(b []byte, e *entry) []byte {
		if e.fallback == "" {
			return append(b, '-')
		}
		return appendStr(b, e.fallback)
	}},
	"%sa": {"target address", func(b []byte, e *entry) []byte { return appendStr(b, e.targetAddr) }},
	"%E": {"why the proxy answered itself, or -", func(b []byte, e *entry) []byte {
		if e.reason == "" {
			return append(b, '-')
		}
		return strconv.AppendQuote(b, e.reason)
	}},
}

// entry is everything one access-log line can say.
type entry struct {
	start                 time.Time
	client, method, uri   string
	proto, id, reason     string
	target, targetAddr    string
	fallback              string // "to:PEER" or "from:ORIGIN-HOST"
	status                int
	read, queue, app, all time.Duration
	queued, gotApp        bool
	in, out               int64
	conn                  *trackedConn // HTTP/1 only: counts the bytes read
}

// AccessLog writes one line per request.
type AccessLog struct {
	w    io.Writer
	json bool
	z    zerolog.Logger
	ops  []logOp
	bufs sync.Pool
}

// logOp is a piece of a template: literal text, or a code's put.
type logOp struct {
	lit string
	put func(b []byte, e *entry) []byte
}

// NewAccessLog makes an access log writing to w in format: "json", "text",
// "" (text) or a template. Each line is written with one Write call.
func NewAccessLog(w io.Writer, format string) (*AccessLog, error) {
	l := &AccessLog{w: w}
	l.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	switch format {
	case LogFormatJSON:
		l.json = true
		l.z = zerolog.New(w)
		return l, nil
	case "", LogFormatText:
		format = DefaultTextFormat
	}
	ops, err := parseTemplate(format)
	if err != nil {
		return nil, err
	}
	l.ops = ops
	return l, nil
}

func parseTemplate(s string) ([]logOp, error) {
	var ops []logOp
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		code := codeAt(s[i:])
		switch code {
		case "":
			return nil, fmt.Errorf("log format %q: unknown code at %q (known: %%T %%ci %%HM %%HU %%HP %%HV %%ST %%TR %%Tw %%Tr %%Ta %%U %%B %%ID %%s %%sa %%E %%%%)", s, s[i:min(i+3, len(s))])
		case "%%":
			lit.WriteByte('%')
		default:
			if lit.Len() > 0 {
				ops = append(ops, logOp{lit: lit.String()})
				lit.Reset()
			}
			ops = append(ops, logOp{put: logCodes[code].put})
		}
		i += len(code) - 1
	}
	if lit.Len() > 0 {
		ops = append(ops, logOp{lit: lit.String()})
	}
	return ops, nil
}

// codeAt is the code s starts with ("%sa" before "%s"), or "".
func codeAt(s string) string {
	for _, n := range []int{3, 2} {
		if n <= len(s) {
			if _, ok := logCodes[s[:n]]; ok || s[:n] == "%%" {
				return s[:n]
			}
		}
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (l *AccessLog) write(e *entry) {
	if l.json {
		ev := l.z.Log().
			Str("time", e.start.UTC().Format(time.RFC3339Nano)).
			Str("client", e.client).
			Str("method", e.method).
			Str("uri", e.uri).
			Str("proto", e.proto).
			Int("status", e.status).
			Float64("read_ms", ms(e.read))
		if e.queued {
			ev = ev.Float64("queue_ms", ms(e.queue))
		}
		if e.gotApp {
			ev = ev.Float64("app_ms", ms(e.app))
		}
		ev = ev.Float64("total_ms", ms(e.all)).
			Int64("bytes_in", e.in).
			Int64("bytes_out", e.out).
			Str("request_id", e.id).
			Str("target", e.target)
		if e.fallback != "" {
			ev = ev.Str("fallback", e.fallback)
		}
		if e.reason != "" {
			ev = ev.Str("error", e.reason)
		}
		ev.Send()
		return
	}
	bp := l.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, op := range l.ops {
		if op.put == nil {
			b = append(b, op.lit...)
			continue
		}
		b = op.put(b, e)
	}
	b = append(b, '\n')
	_, _ = l.w.Write(b)
	*bp = b
	l.bufs.Put(bp)
}

func appendMs(b []byte, d time.Duration, reached bool) []byte {
	if !reached {
		return append(b, '-', '1')
	}
	return strconv.AppendInt(b, d.Milliseconds(), 10)
}

// appendStr appends s, or "-" when it is empty. The text log's fields are
// separated by spaces and some are quoted, so a client must not be able to
// forge fields with what it sends (a request id, a URI): quotes, the
// backslash, spaces, control characters and bytes past ASCII are written as
// \xHH, as nginx's escape=default does.
func appendStr(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return appendEscaped(b, s)
		}
	}
	return append(b, s...)
}

func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}
