package proxy

// Buffering for slow clients, as nginx does in front of gunicorn: a request
// body is read whole before the request asks for a worker slot, and the
// app's response is read whole before it is sent on, so that a client on a
// slow link (or a slowloris) costs a connection and a buffer, never one of
// the app's few workers.
//
// A body is held in memory up to Config.BufferMemory, in pooled 32 KiB
// chunks, and the rest in a temporary file that is unlinked as soon as it is
// made (nothing is left behind, even after a crash).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// spoolChunk is the size of one memory chunk.
const spoolChunk = 32 << 10

// chunkPool holds the chunks by pointer, so that giving one back does not
// allocate.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, spoolChunk); return &b }}

var errSpoolClosed = errors.New("body buffer closed")

// spoolFiles counts the spill files open now (tests).
var spoolFiles atomic.Int64

// spool holds one body: memory first, then a file.
type spool struct {
	memLimit int64
	max      int64 // readFrom fails past it; 0: no limit
	dir      string

	chunks []*[]byte // all full but the last
	inline [2]*[]byte
	memN   int64 // bytes in chunks
	n      int64 // bytes in all
	file   *os.File
	err    error // the first write error

	// A request body is read by the transport's write loop, which can
	// outlive the handler (the app answered before reading it all): mu
	// keeps such a late Read from touching chunks given back to the pool.
	mu     sync.Mutex
	closed bool
	rd     spoolReader
	dl     bodyDeadline // for a request body being read
}

func (s *spool) init(c *Config) {
	s.memLimit, s.dir = c.BufferMemory, c.BufferDir
	if c.MaxBody > 0 {
		s.max = c.MaxBody
	}
}

// room is the free memory after the last chunk, up to the memory limit.
func (s *spool) room() []byte {
	if len(s.chunks) == 0 || len(*s.chunks[len(s.chunks)-1]) == spoolChunk {
		if s.chunks == nil {
			s.chunks = s.inline[:0]
		}
		s.chunks = append(s.chunks, chunkPool.Get().(*[]byte))
	}
	last := *s.chunks[len(s.chunks)-1]
	free := min(int64(spoolChunk-len(last)), s.memLimit-s.memN)
	return last[len(last) : len(last)+int(free)]
}

func (s *spool) grow(k int) {
	c := s.chunks[len(s.chunks)-1]
	*c = (*c)[:len(*c)+k]
	s.memN += int64(k)
	s.n += int64(k)
}

// chunk is the memory holding the body from off (< memN) on.
func (s *spool) chunk(off int64) []byte { return (*s.chunks[off/spoolChunk])[off%spoolChunk:] }

// Write appends b (the app's response, from ReverseProxy's copy).
func (s *spool) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	total := len(b)
	for len(b) > 0 && s.memN < s.memLimit {
		k := copy(s.room(), b)
		s.grow(k)
		b = b[k:]
	}
	if len(b) > 0 {
		if err := s.toFile(b); err != nil {
			s.err = err
			return total - len(b), err
		}
	}
	return total, nil
}

func (s *spool) toFile(b []byte) error {
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "switchyard-buffer-*")
		if err != nil {
			return &bufferError{err}
		}
		// Unlinked at once: the data lives until Close, and no file is left
		// behind whatever happens to the process.
		_ = os.Remove(f.Name())
		s.file = f
		spoolFiles.Add(1)
	}
	n, err := s.file.Write(b)
	s.n += int64(n)
	if err != nil {
		return &bufferError{err}
	}
	return nil
}

// readFrom reads src to its end into the spool, reading straight into the
// memory chunks.
func (s *spool) readFrom(src io.Reader) error {
	for {
		var n int
		var err error
		if s.memN < s.memLimit {
			n, err = src.Read(s.room())
			s.grow(n)
		} else {
			bp := chunkPool.Get().(*[]byte)
			n, err = src.Read((*bp)[:spoolChunk])
			var werr error
			if n > 0 {
				werr = s.toFile((*bp)[:n])
			}
			chunkPool.Put(bp)
			if werr != nil {
				return werr
			}
		}
		if s.max > 0 && s.n > s.max {
			return errBodyTooLarge
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readAt copies the bytes at off into p; the caller holds mu or owns s.
func (s *spool) readAt(p []byte, off int64) (int, error) {
	if s.closed {
		return 0, errSpoolClosed
	}
	if off >= s.n {
		return 0, io.EOF
	}
	if off < s.memN {
		return copy(p, s.chunk(off)), nil
	}
	p = p[:min(int64(len(p)), s.n-off)]
	n, err := s.file.ReadAt(p, off-s.memN)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// close gives the chunks back and closes the file. Later reads fail.
func (s *spool) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	for i, c := range s.chunks {
		*c = (*c)[:0]
		chunkPool.Put(c)
		s.chunks[i] = nil
	}
	s.chunks = s.chunks[:0]
	if s.file != nil {
		_ = s.file.Close()
		s.file = nil
		spoolFiles.Add(-1)
	}
	s.memN, s.n = 0, 0
	s.mu.Unlock()
}

// spoolReader reads a spool from the start: the request body sent to the app.
type spoolReader struct {
	s   *spool
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	r.s.mu.Lock()
	n, err := r.s.readAt(p, r.off)
	r.s.mu.Unlock()
	r.off += int64(n)
	return n, err
}

func (r *spoolReader) Close() error { return nil }

// getBody lets the transport replay the body (a retry on a dead keep-alive
// connection).
func (s *spool) getBody() (io.ReadCloser, error) { return &spoolReader{s: s}, nil }

// hasBody is false for GET and the like: nothing to read, nothing allocated.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// takeBody applies the body limit and, when requests are buffered, reads the
// body whole (into rec.body) before the request asks for a worker slot. An
// error says why the body is refused.
func (p *Proxy) takeBody(rec *recorder, r *http.Request, stream bool) error {
	if !hasBody(r) {
		return nil
	}
	if p.cfg.MaxBody > 0 && r.ContentLength > p.cfg.MaxBody {
		return errBodyTooLarge
	}
	if stream || !p.cfg.BufferRequests {
		// The transport may still be reading the body (its last read looks
		// for EOF) when the app's response headers go out; net/http would
		// then discard and close the body under it, and the transport
		// would drop the app connection mid-response. Full duplex leaves
		// the body to the transport.
		_ = http.NewResponseController(rec.ResponseWriter).EnableFullDuplex()
		if p.cfg.MaxBody > 0 && r.ContentLength < 0 {
			rec.limited = &limitedBody{ReadCloser: r.Body, left: p.cfg.MaxBody}
			r.Body = rec.limited
		}
		return nil
	}
	s := &spool{}
	s.init(&p.cfg)
	s.dl.init(rec.ResponseWriter, r, p.cfg.ClientBodyTimeout)
	if err := s.readFrom(&s.dl); err != nil {
		// Leave the read deadline in the past: net/http's attempt to
		// discard the rest of the body after the handler fails at once.
		s.dl.set(time.Now())
		s.close()
		return bodyError(r, err)
	}
	s.dl.set(time.Time{})
	s.dl = bodyDeadline{}
	if s.n == 0 { // an empty chunked body
		s.close()
		r.Body, r.ContentLength = http.NoBody, 0
		return nil
	}
	s.rd.s = s
	r.Body = &s.rd
	r.GetBody = s.getBody
	r.ContentLength = s.n // sent with a Content-Length, not chunked
	r.TransferEncoding = nil
	r.Trailer = nil
	// The body is here: the app has nothing to agree to.
	delete(r.Header, "Expect")
	rec.body = s
	return nil
}

// bodyError names a failure to read the request body.
func bodyError(r *http.Request, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, errBodyTooLarge), errors.Is(err, errBufferFailed), errors.Is(err, errBuffersFull):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return errBodyTimeout
	case r.Context().Err() != nil, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &ne):
		return errLeftBody
	}
	return fmt.Errorf("%w: %w", errBadBody, err)
}

// bodyDeadline reads a request body with a read deadline renewed before
// each read: the client must send something every timeout (nginx's
// client_body_timeout), however long the whole body takes.
type bodyDeadline struct {
	body    io.Reader
	timeout time.Duration
	w       http.ResponseWriter // set: deadlines through it
	tc      *trackedConn        // else set: on the connection
}

// init prepares to set the read deadline through w's ResponseController,
// or, when a handler in front of the proxy hides it, on the HTTP/1
// connection itself.
func (d *bodyDeadline) init(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	*d = bodyDeadline{body: r.Body, timeout: timeout, w: w}
	if r.ProtoMajor == 1 {
		d.tc = trackedFrom(r.Context())
	}
}

func (d *bodyDeadline) set(t time.Time) {
	if d.w != nil {
		if http.NewResponseController(d.w).SetReadDeadline(t) == nil {
			return
		}
		d.w = nil // not supported: fall back to the connection
	}
	if d.tc != nil {
		_ = d.tc.SetReadDeadline(t)
	}
}

func (d *bodyDeadline) Read(p []byte) (int, error) {
	d.set(time.Now().Add(d.timeout))
	return d.body.Read(p)
}

// limitedBody caps a streamed (unbuffered) chunked body at the body limit
// and says so, so that the failed round trip is answered with a 413. It is
// read by the transport's goroutine, hence the atomic.
type limitedBody struct {
	io.ReadCloser
	left int64
	over atomic.Bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over.Store(true)
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over.Store(true)
		return n, errBodyTooLarge
	}
	return n, err
}

// unbuffered reports whether the app path is under one of the
// no-buffer prefixes.
func (p *Proxy) unbuffered(path string) bool {
	for _, pre := range p.cfg.NoBufferPrefixes {
		if underPrefix(pre, path) {
			return true
		}
	}
	return false
}

// bufferDefaults fills in and checks the buffering fields.
func (c *Config) bufferDefaults() error {
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.BufferMemory == 0 {
		c.BufferMemory = DefaultBufferMemory
	}
	if c.BufferMemory < 0 {
		return fmt.Errorf("buffer memory %d: must be positive", c.BufferMemory)
	}
	if c.ClientBodyTimeout == 0 {
		c.ClientBodyTimeout = DefaultClientBodyTimeout
	}
	if c.ClientSendTimeout == 0 {
		c.ClientSendTimeout = DefaultClientSendTimeout
	}
	if c.ClientBodyTimeout < 0 || c.ClientSendTimeout < 0 {
		return errors.New("client body and send timeouts must be positive")
	}
	if c.BufferDir != "" {
		fi, err := os.Stat(c.BufferDir)
		if err != nil {
			return fmt.Errorf("buffer dir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("buffer dir %s: not a directory", c.BufferDir)
		}
	}
	pres := make([]string, 0, len(c.NoBufferPrefixes))
	for _, pre := range c.NoBufferPrefixes {
		if !strings.HasPrefix(pre, "/") {
			return fmt.Errorf("no-buffer prefix %q: must start with /", pre)
		}
		if pre = strings.TrimRight(pre, "/"); pre == "" {
			pre = "/"
		}
		pres = append(pres, pre)
	}
	c.NoBufferPrefixes = pres
	return nil
}
