// Package logsink is where switchyard's log lines go: stdout, stderr, a
// file, or a syslog server (RFC 5424 over UDP, TCP or a unix socket).
//
// Writes never block the request path on I/O: a line is copied into a
// buffer that a background goroutine flushes every FlushInterval or when it
// fills. When the destination cannot keep up, lines beyond MaxBuffered are
// dropped and counted rather than slowing the proxy down.
package logsink

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Sink.
const (
	FlushInterval = 100 * time.Millisecond
	flushAt       = 32 << 10 // a buffer this full is flushed at once
	MaxBuffered   = 4 << 20  // past this, lines are dropped
)

// Sink is an asynchronous, line-oriented writer. Each Write is one line.
type Sink struct {
	mu      sync.Mutex
	flushMu sync.Mutex
	buf     []byte
	spare   []byte
	out     func(lines []byte) error
	closer  io.Closer
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	dropped atomic.Uint64
	closed  bool
	errOnce sync.Once
	errOut  io.Writer
}

// Open makes a sink for addr: "stdout", "stderr", "udp://host:port",
// "tcp://host:port", "unix:///path/to/socket", "unixgram:///path", or
// anything else as a file path (appended to, created 0644). app names the
// program in syslog headers.
func Open(addr, app string) (*Sink, error) {
	switch addr {
	case "", "stdout":
		return newSink(writeAll(os.Stdout), nil), nil
	case "stderr":
		return newSink(writeAll(os.Stderr), nil), nil
	}
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && strings.Contains(addr, "://") {
		return openSyslog(u, app)
	}
	f, err := os.OpenFile(addr, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log address %q: %w", addr, err)
	}
	return newSink(writeAll(f), f), nil
}

func writeAll(w io.Writer) func([]byte) error {
	return func(b []byte) error { _, err := w.Write(b); return err }
}

func newSink(out func([]byte) error, closer io.Closer) *Sink {
	s := &Sink{
		out:     out,
		closer:  closer,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		errOut:  os.Stderr,
	}
	go s.loop()
	return s
}

// Write buffers one line (or several, newline-terminated). It never blocks
// on I/O.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed || len(s.buf)+len(p) > MaxBuffered {
		s.mu.Unlock()
		s.dropped.Add(1)
		return len(p), nil
	}
	s.buf = append(s.buf, p...)
	full := len(s.buf) >= flushAt
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped is the number of lines dropped because the destination was slow.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

func (s *Sink) loop() {
	defer close(s.stopped)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.done:
			s.flush()
			return
		}
		s.flush()
	}
}

// Flush writes out what is buffered now.
func (s *Sink) Flush() { s.flush() }

func (s *Sink) flush() {
	// One flush at a time: two would hand out the same spare buffer.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	b := s.buf
	s.buf, s.spare = s.spare[:0], nil
	s.mu.Unlock()
	if len(b) > 0 {
		if err := s.out(b); err != nil {
			s.errOnce.Do(func() { fmt.Fprintf(s.errOut, "switchyard: log write failed (further failures not shown): %v\n", err) })
		}
	}
	s.mu.Lock()
	s.spare = b[:0]
	s.mu.Unlock()
}

// Close flushes and closes the destination.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	<-s.stopped
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// openSyslog sends each line as one RFC 5424 message (facility local0,
// severity info). Over TCP, messages are framed by octet counting (RFC 6587).
func openSyslog(u *url.URL, app string) (*Sink, error) {
	network, address := u.Scheme, u.Host
	switch network {
	case "udp", "tcp":
	case "unix", "unixgram":
		address = u.Path
	default:
		return nil, fmt.Errorf("log address %q: unknown scheme %q (want udp, tcp, unix, unixgram, or a file path)", u.String(), network)
	}
	if address == "" {
		return nil, fmt.Errorf("log address %q: no host or path", u.String())
	}
	sw := &syslogWriter{network: network, address: address, app: app, pid: os.Getpid()}
	sw.host, _ = os.Hostname()
	if sw.host == "" {
		sw.host = "-"
	}
	if err := sw.connect(); err != nil {
		return nil, fmt.Errorf("log address %q: %w", u.String(), err)
	}
	return newSink(sw.writeLines, sw), nil
}

type syslogWriter struct {
	network, address, app, host string
	pid                         int
	conn                        net.Conn
	msg                         []byte
}

func (w *syslogWriter) connect() error {
	c, err := net.DialTimeout(w.network, w.address, 2*time.Second)
	if err != nil {
		return err
	}
	w.conn = c
	return nil
}

// writeLines runs on the sink's goroutine only.
func (w *syslogWriter) writeLines(b []byte) error {
	var firstErr error
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) == 0 {
			continue
		}
		w.msg = w.format(w.msg[:0], line)
		if err := w.send(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func (w *syslogWriter) send() error {
	if w.conn == nil {
		if err := w.connect(); err != nil {
			return err
		}
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := w.conn.Write(w.msg)
	if err != nil && (w.network == "tcp" || w.network == "unix") {
		// Stream sockets break for good: reconnect on the next message.
		w.conn.Close()
		w.conn = nil
	}
	return err
}

// format builds "<134>1 TIMESTAMP HOST APP PID - - MSG" (local0.info).
func (w *syslogWriter) format(b, line []byte) []byte {
	start := len(b)
	b = append(b, "<134>1 "...)
	b = time.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, w.host...)
	b = append(b, ' ')
	b = append(b, w.app...)
	b = fmt.Appendf(b, " %d - - ", w.pid)
	b = append(b, line...)
	if w.network == "tcp" || w.network == "unix" {
		framed := fmt.Appendf(nil, "%d ", len(b)-start)
		b = append(framed, b[start:]...)
	}
	return b
}

func (w *syslogWriter) Close() error {
	if w.conn != nil {
		return w.conn.Close()
	}
	return nil
}
