package proxy

// The buffers' budget (spool.go): many bodies at once stay within it.

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Uploads over HTTP/2 (4 connections × 25 streams × 300 KB, through 64 KiB
// of memory each) stay within the proxy's buffer budget: its memory and its
// spill files never hold more than the budget, and what does not fit is
// refused with a clear 503 that says to retry, not buffered at the host's
// expense. The rest reach the app.
func TestUploadBudget(t *testing.T) {
	const conns, streams, size = 4, 25, 300_000
	const memBudget, diskBudget = 1 << 20, 2 << 20
	b := newBackend(t, "app")
	p := newProxy(t, Config{BufferRequests: true, BufferResponses: true, QueueTimeout: 20 * time.Second,
		BufferMemory: 64 << 10, BufferTotalMemory: memBudget, BufferTotalDisk: diskBudget, BufferDir: t.TempDir()})
	setTarget(t, p, b, 2)
	addr, roots := startTLSProxy(t, p, 0)
	files := samplePeaks(spoolFiles.Load)
	answers := make(chan h2Answer, conns*streams)
	body := bytes.Repeat([]byte("u"), size)
	for c := 0; c < conns; c++ {
		hc := sharedH2Client(t, addr, roots)
		for s := 0; s < streams; s++ {
			go func() { answers <- h2Do(hc, http.MethodPost, "https://"+addr+"/read?d=20ms", body) }()
		}
	}
	ok, refused := 0, 0
	for i := 0; i < conns*streams; i++ {
		switch a := <-answers; {
		case a.status == 200:
			ok++
		case a.status == 503 && strings.Contains(a.body, "buffers are full") && a.retry != "":
			refused++
		default:
			t.Errorf("upload: %d %q (Retry-After %q)", a.status, a.body, a.retry)
		}
	}
	maxFiles := files.end()[0]
	mem, disk := p.bufs.mem.peak.Load(), p.bufs.disk.peak.Load()
	t.Logf("%d uploads in the app, %d refused; buffers at most %d KiB in memory, %d KiB on disk, %d spill files", ok, refused, mem>>10, disk>>10, maxFiles)
	if mem > memBudget || disk > diskBudget {
		t.Errorf("buffers held %d B in memory and %d B on disk, the budget is %d and %d", mem, disk, memBudget, diskBudget)
	}
	// A spill file belongs to a request in progress (the connection limit
	// bounds those), and one that does not fit is closed at once.
	if maxFiles > conns*streams {
		t.Errorf("%d spill files open at once for %d requests", maxFiles, conns*streams)
	}
	if n := spoolFiles.Load(); n != 0 {
		t.Errorf("%d spill files left open", n)
	}
	if ok == 0 || refused == 0 {
		t.Errorf("%d uploads served, %d refused: want both", ok, refused)
	}
	if n := p.bufs.mem.used.Load() + p.bufs.disk.used.Load(); n != 0 {
		t.Errorf("%d bytes still counted in the budget after all requests", n)
	}
}

// Slow clients of big responses past the disk budget get the rest of the
// response streamed (their worker held meanwhile) rather than buffered
// further: the spill files stay within the budget, every client gets its
// response whole.
func TestResponseBudgetStreams(t *testing.T) {
	const clients, size, diskBudget = 3, 8 << 20, 10 << 20
	b := newBufBackend(t)
	go func() {
		for range b.arrived {
		}
	}()
	p, url := bufferingProxy(t, b, clients, Config{BufferMemory: 64 << 10, BufferTotalMemory: 128 << 10,
		BufferTotalDisk: diskBudget, BufferDir: t.TempDir()})
	var slow []*rawConn
	for i := 0; i < clients; i++ {
		c := dialRaw(t, url)
		c.send(t, "GET /big?n="+strconv.Itoa(size)+" HTTP/1.1\r\nHost: test\r\n\r\n")
		slow = append(slow, c)
	}
	waitFor(t, "the budget to be reached", func() bool { return p.bufs.disk.peak.Load() > diskBudget-size })
	time.Sleep(50 * time.Millisecond) // the others meet the full budget
	for i, c := range slow {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != size {
			t.Fatalf("client %d got %d bytes, %v; want %d", i, n, err, size)
		}
	}
	if d := p.bufs.disk.peak.Load(); d > diskBudget {
		t.Errorf("spill files held %d B, the budget is %d", d, diskBudget)
	}
	if m := p.bufs.mem.peak.Load(); m > 128<<10 {
		t.Errorf("memory buffers held %d B, the budget is %d", m, 128<<10)
	}
}
