package proxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/proxy/compress"
)

// StaticConfig sets up a Static handler.
type StaticConfig struct {
	// Dir is the directory whose files are served. Required.
	Dir string
	// Prefix is the URL path mapped to Dir: with "/static", /static/app.css
	// is Dir/app.css and paths outside /static go to the app. Default "/":
	// the whole URL space, where files that exist win.
	Prefix string
	// MaxAge, when at least a second, adds "Cache-Control: public,
	// max-age=SECONDS" to static responses. Default 0: no Cache-Control.
	MaxAge time.Duration
	// Headers are set on static responses, after Cache-Control (so a
	// configured Cache-Control wins), as Config.ResponseHeaders are on the
	// app's.
	Headers []Header
}

// Static serves the files of a directory in front of next, as nginx's
// `try_files $uri @app` does: a GET or HEAD whose path names a regular file
// under Dir gets the file; every other request goes to next, unchanged.
//
// Files are served with http.ServeContent's semantics: Last-Modified, a
// strong ETag made of the file's modification time and size (no read, no
// cache to keep), conditional requests (If-None-Match, If-Modified-Since,
// If-Range: 304 and 412), single and multiple Range requests (206), HEAD.
// The Content-Type comes from the extension, else from the first 512 bytes.
//
// Precompressed siblings: when file.zst or file.gz exists next to file, is a
// regular file and is not older than it, a client that accepts zstd or gzip
// gets the sibling, with Content-Encoding, the original's Content-Type and
// an ETag of its own (zstd when acceptable with a q not below gzip's, as
// Compressor chooses). The response then carries Vary: Accept-Encoding,
// also when the original was sent. Ranges of a sibling are ranges of its
// compressed bytes (a representation of its own).
//
// What is never served, and goes to next instead:
//   - a path with a segment starting with "." (".." and dotfiles such as
//     /.env or /.git/config), a backslash or a NUL, after URL decoding
//     (%2e%2e, %2f and %5c included);
//   - anything os.Root refuses: Dir is opened once as an os.Root, so no
//     path or symlink can reach outside it;
//   - what is not a regular file (FIFOs are opened non-blocking, and
//     devices and sockets are refused);
//   - a directory: it is never listed. A directory URL ending in "/" serves
//     its index.html if there is one; without the "/" it is redirected to
//     it (301) when the index.html exists, so that relative links work.
//     Otherwise the app gets the request.
//
// Static responses do not pass through the proxy: no admission queue, no
// access-log line, no stats.
type Static struct {
	root         *os.Root
	prefix       string // "" for "/", else without a trailing slash
	cacheControl string
	headers      []Header
	next         http.Handler
}

// NewStatic opens cfg.Dir and wraps next. Close releases the directory.
func NewStatic(cfg StaticConfig, next http.Handler) (*Static, error) {
	if cfg.Dir == "" {
		return nil, errors.New("static: no directory given")
	}
	prefix, err := cleanStaticPrefix(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("static: max age %v: must be 0 (no Cache-Control) or more", cfg.MaxAge)
	}
	if err := checkHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("static: open directory %s: %w", cfg.Dir, err)
	}
	s := &Static{root: root, prefix: prefix, headers: cfg.Headers, next: next}
	if secs := int64(cfg.MaxAge / time.Second); secs > 0 {
		s.cacheControl = "public, max-age=" + strconv.FormatInt(secs, 10)
	}
	return s, nil
}

// cleanStaticPrefix checks a URL prefix and returns it without its
// trailing slash ("" for "/").
func cleanStaticPrefix(p string) (string, error) {
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("static prefix %q: must start with /", p)
	}
	if _, ok := staticName(p); !ok || strings.Contains(p, "//") {
		return "", fmt.Errorf("static prefix %q: want a clean path such as /static", p)
	}
	return strings.TrimRight(p, "/"), nil
}

// Close releases the directory.
func (s *Static) Close() error { return s.root.Close() }

func (s *Static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !s.serve(w, r) {
		s.next.ServeHTTP(w, r)
	}
}

// serve answers r from Dir and reports true, or reports false to leave
// the request to the app.
func (s *Static) serve(w http.ResponseWriter, r *http.Request) bool {
	rel, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok || (rel != "" && rel[0] != '/') {
		return false
	}
	name, ok := staticName(rel)
	if !ok {
		return false
	}
	f, fi, ok := s.open(name)
	if !ok {
		return false
	}
	defer f.Close()
	if fi.IsDir() {
		index := path.Join(name, "index.html")
		idx, ifi, ok := s.open(index)
		if !ok || ifi.IsDir() {
			if ok {
				idx.Close()
			}
			return false
		}
		defer idx.Close()
		if !strings.HasSuffix(rel, "/") {
			s.startRequest(r)
			redirectToDir(w, r)
			s.endRequest(r)
			return true
		}
		f, fi, name = idx, ifi, index
	} else if strings.HasSuffix(rel, "/") {
		return false // a file named as a directory
	}
	s.startRequest(r)
	s.serveFile(w, r, name, f, fi)
	s.endRequest(r)
	return true
}

// staticName maps the part of a URL path after the prefix to a name inside
// the root, or reports false for a path that must never be served.
func staticName(rel string) (string, bool) {
	if strings.ContainsAny(rel, "\\\x00") {
		return "", false
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if strings.HasPrefix(seg, ".") {
			return "", false
		}
	}
	name := strings.TrimPrefix(path.Clean("/"+rel), "/")
	if name == "" {
		name = "."
	}
	return name, true
}

// open opens a regular file or a directory inside the root.
func (s *Static) open(name string) (*os.File, os.FileInfo, bool) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, false
	}
	fi, err := f.Stat()
	if err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
		f.Close()
		return nil, nil, false
	}
	return f, fi, true
}

// serveFile sends f (or its precompressed sibling) with ServeContent.
func (s *Static) serveFile(w http.ResponseWriter, r *http.Request, name string, f *os.File, fi os.FileInfo) {
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	content, cfi, coding := f, fi, compress.Identity
	zst, zfi := s.sibling(name+".zst", fi)
	gz, gfi := s.sibling(name+".gz", fi)
	if zst != nil || gz != nil {
		compress.AddVary(h)
		coding = compress.Negotiate(r.Header["Accept-Encoding"], gz != nil, zst != nil)
	}
	switch coding {
	case compress.Zstd:
		content, cfi = zst, zfi
	case compress.Gzip:
		content, cfi = gz, gfi
	}
	for _, sf := range []*os.File{zst, gz} {
		if sf != nil && sf != content {
			sf.Close()
		}
	}
	if content != f {
		defer content.Close()
		if ctype == "" {
			// ServeContent would sniff the compressed bytes: sniff the original.
			var buf [512]byte
			n, _ := io.ReadFull(f, buf[:])
			ctype = http.DetectContentType(buf[:n])
		}
		h.Set("Content-Encoding", coding.String())
		// ServeContent leaves Content-Length out when Content-Encoding is
		// set; the sibling's size is the length sent (ranges set their own,
		// 304 and errors delete it).
		h.Set("Content-Length", strconv.FormatInt(cfi.Size(), 10))
	}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	h.Set("Etag", staticETag(cfi, coding))
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
	setResponseHeaders(h, s.headers)
	http.ServeContent(w, r, name, fi.ModTime(), content)
}

// sibling opens a precompressed sibling that is a regular file not older
// than the original.
func (s *Static) sibling(name string, orig os.FileInfo) (*os.File, os.FileInfo) {
	f, fi, ok := s.open(name)
	if !ok {
		return nil, nil
	}
	if fi.IsDir() || fi.ModTime().Before(orig.ModTime()) {
		f.Close()
		return nil, nil
	}
	return f, fi
}

// staticETag is a strong validator from the served file's modification time
// and size; a precompressed sibling's carries its coding too.
func staticETag(fi os.FileInfo, c compress.Coding) string {
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 36)
	if c != compress.Identity {
		b = append(b, '-')
		b = append(b, c.String()...)
	}
	b = append(b, '"')
	return string(b)
}

// redirectToDir sends /dir to /dir/ (relative, keeping the query), as
// http.FileServer does.
func redirectToDir(w http.ResponseWriter, r *http.Request) {
	u := url.URL{Path: path.Base(r.URL.Path) + "/", RawQuery: r.URL.RawQuery}
	http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
}

// startRequest and endRequest do for a static response what the proxy
// does for its own at the start and the end of ServeHTTP to the connection's
// byte counts, so that the next request on a keep-alive connection has its
// own read time (%TR) and size in the access log.
func (s *Static) startRequest(r *http.Request) {
	if tc := trackedFrom(r.Context()); tc != nil && r.ProtoMajor == 1 {
		tc.firstByte.Store(0)
	}
}

func (s *Static) endRequest(r *http.Request) {
	if tc := trackedFrom(r.Context()); tc != nil && r.ProtoMajor == 1 {
		tc.mark = tc.read.Load()
	}
}
