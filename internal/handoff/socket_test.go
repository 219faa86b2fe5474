package handoff

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oldProcess is the serving side of the socket hand-off, with one TCP
// listener; outcome gets what Prepare's done was told.
func oldProcess(t *testing.T, prepareErr error) (h *Handoff, sock, addr string, outcome chan error) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	outcome = make(chan error, 1)
	h = &Handoff{o: Options{ReadyTimeout: 2 * time.Second, Prepare: func(context.Context) (func(error), error) {
		return func(err error) { outcome <- err }, prepareErr
	}}, listeners: map[string]*net.TCPListener{tcp.Addr().String(): tcp.(*net.TCPListener)}, replaced: make(chan struct{})}
	sock = filepath.Join(t.TempDir(), "handoff.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.serveSocket(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, sock, tcp.Addr().String(), outcome
}

// The successor receives a working duplicate of the listener; once it says
// ready the old process is replaced.
func TestSocketHandoff(t *testing.T) {
	h, sock, addr, outcome := oldProcess(t, nil)
	conn, lns, err := fetchListeners(sock, time.Second)
	if err != nil || conn == nil || lns[addr] == nil {
		t.Fatalf("fetch: %v %v", lns, err)
	}
	defer lns[addr].Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if a, err := lns[addr].Accept(); err != nil {
		t.Fatalf("accept on the received listener: %v", err)
	} else {
		a.Close()
	}
	select {
	case <-h.Replaced():
		t.Fatal("replaced before the successor said ready")
	default:
	}
	conn.Write([]byte(socketReady))
	conn.Close()
	if err := <-outcome; err != nil {
		t.Fatalf("outcome: %v", err)
	}
	<-h.Replaced()
}

// A successor that goes away before it serves leaves the old process in
// place, told why; a refused hand-off (Prepare's error) reaches the
// successor; nobody on the socket is a first start.
func TestSocketHandoffFailures(t *testing.T) {
	h, sock, _, outcome := oldProcess(t, nil)
	conn, lns, err := fetchListeners(sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns {
		ln.Close()
	}
	conn.Close() // died before it served
	if err := <-outcome; err == nil || !strings.Contains(err.Error(), "exited before it served") {
		t.Fatalf("outcome: %v", err)
	}
	select {
	case <-h.Replaced():
		t.Fatal("replaced by a successor that failed")
	default:
	}

	_, sock2, _, _ := oldProcess(t, errors.New("upgrade in progress: busy"))
	if _, _, err := fetchListeners(sock2, time.Second); err == nil || !strings.Contains(err.Error(), "upgrade in progress: busy") {
		t.Fatalf("refused hand-off: %v", err)
	}

	if conn, lns, err := fetchListeners(filepath.Join(t.TempDir(), "none.sock"), time.Second); conn != nil || lns != nil || err != nil {
		t.Fatalf("no predecessor: %v %v %v", conn, lns, err)
	}
}
