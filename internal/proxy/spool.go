package proxy

// A spool holds one body being buffered (buffer.go says which): in memory
// up to a limit, in pooled 32 KiB chunks, and the rest in a temporary file
// that is unlinked as soon as it is made (nothing is left behind, even after
// a crash).

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
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
