package proxy

// A spool holds one body being buffered (buffer.go says which): in memory
// up to a limit, in pooled 32 KiB chunks, and the rest in a temporary file
// that is unlinked as soon as it is made (nothing is left behind, even after
// a crash).
//
// All spools of a proxy share a budget (Config.BufferTotalMemory and
// BufferTotalDisk), so that many bodies at once (HTTP/2 streams, slow
// readers of big responses) cannot exhaust the host: past the memory budget
// a body goes to its file sooner, past the disk budget it cannot be
// buffered at all (errBuffersFull; buffer.go refuses the request or streams
// the response).

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

// budget is a byte count shared by all spools of a proxy.
type budget struct {
	limit int64 // <= 0: none
	used  atomic.Int64
	peak  atomic.Int64 // the most used at once (tests)
}

// take counts n more bytes, or reports false when that would pass the limit.
func (b *budget) take(n int64) bool {
	u := b.used.Add(n)
	if b.limit > 0 && u > b.limit {
		b.used.Add(-n)
		return false
	}
	for p := b.peak.Load(); u > p && !b.peak.CompareAndSwap(p, u); p = b.peak.Load() {
	}
	return true
}

func (b *budget) give(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// buffers are a proxy's budgets for the bodies it buffers.
type buffers struct{ mem, disk budget }

// spool holds one body: memory first, then a file.
type spool struct {
	memLimit int64
	max      int64 // readFrom fails past it; 0: no limit
	dir      string
	bufs     *buffers

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

func (s *spool) init(c *Config, b *buffers) {
	s.memLimit, s.dir, s.bufs = c.BufferMemory, c.BufferDir, b
	if c.MaxBody > 0 {
		s.max = c.MaxBody
	}
}

// room is the free memory after the last chunk, up to the memory limit; none
// once the body's share or the proxy's memory budget is used up.
func (s *spool) room() []byte {
	if s.memN >= s.memLimit {
		return nil
	}
	if len(s.chunks) == 0 || len(*s.chunks[len(s.chunks)-1]) == spoolChunk {
		if !s.bufs.mem.take(spoolChunk) {
			s.memLimit = s.memN // the rest goes to the file
			return nil
		}
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
	for len(b) > 0 {
		room := s.room()
		if len(room) == 0 {
			break
		}
		k := copy(room, b)
		s.grow(k)
		b = b[k:]
	}
	if len(b) > 0 {
		n, err := s.toFile(b)
		if err != nil {
			if !errors.Is(err, errBuffersFull) {
				s.err = err // the file is broken; a full budget is not
			}
			return total - len(b) + n, err
		}
	}
	return total, nil
}

// toFile appends b to the file, within the disk budget.
func (s *spool) toFile(b []byte) (int, error) {
	if !s.bufs.disk.take(int64(len(b))) {
		return 0, errBuffersFull
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "switchyard-buffer-*")
		if err != nil {
			s.bufs.disk.give(int64(len(b)))
			return 0, &bufferError{err}
		}
		// Unlinked at once: the data lives until Close, and no file is left
		// behind whatever happens to the process.
		_ = os.Remove(f.Name())
		s.file = f
		spoolFiles.Add(1)
	}
	n, err := s.file.Write(b)
	s.n += int64(n)
	s.bufs.disk.give(int64(len(b) - n))
	if err != nil {
		return n, &bufferError{err}
	}
	return n, nil
}

// readFrom reads src to its end into the spool, reading straight into the
// memory chunks.
func (s *spool) readFrom(src io.Reader) error {
	for {
		var n int
		var err error
		if room := s.room(); len(room) > 0 {
			n, err = src.Read(room)
			s.grow(n)
		} else {
			bp := chunkPool.Get().(*[]byte)
			n, err = src.Read((*bp)[:spoolChunk])
			var werr error
			if n > 0 {
				_, werr = s.toFile((*bp)[:n])
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
	if s.bufs != nil {
		s.bufs.mem.give(int64(len(s.chunks)) * spoolChunk)
		s.bufs.disk.give(s.n - s.memN)
	}
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
