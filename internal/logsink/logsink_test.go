package logsink

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rfc5424 matches "<134>1 TIMESTAMP HOST APP PID - - MSG".
var rfc5424 = regexp.MustCompile(`^<134>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ switchyard \d+ - - (.*)$`)

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := Open("udp://"+pc.LocalAddr().String(), "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 3; i++ {
		fmt.Fprintf(s, "GET /%d 200\n", i)
	}
	s.Flush()
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 3; i++ {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		m := rfc5424.FindStringSubmatch(string(buf[:n]))
		if m == nil || m[1] != fmt.Sprintf("GET /%d 200", i) {
			t.Fatalf("message %d is not RFC 5424 with the line: %q", i, buf[:n])
		}
	}
}

// Over TCP, messages are framed by octet counting (RFC 6587).
func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		var msgs []string
		for len(msgs) < 2 {
			l, err := r.ReadString(' ')
			if err != nil {
				break
			}
			n, _ := strconv.Atoi(strings.TrimSpace(l))
			b := make([]byte, n)
			if _, err := r.Read(b); err != nil {
				break
			}
			msgs = append(msgs, string(b))
		}
		got <- msgs
	}()
	s, err := Open("tcp://"+ln.Addr().String(), "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("one\n"))
	s.Write([]byte("two words\n"))
	s.Close()
	msgs := <-got
	if len(msgs) != 2 || rfc5424.FindStringSubmatch(msgs[1]) == nil || !strings.HasSuffix(msgs[1], "two words") {
		t.Fatalf("messages: %q", msgs)
	}
}

func TestFileSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	s, err := Open(path, "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(s, "g%d line %d\n", g, i)
				if i%100 == 0 {
					s.Flush() // flushes racing the background loop
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 8000 {
		t.Fatalf("%d lines, want 8000", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if !regexp.MustCompile(`^g\d line \d+$`).MatchString(l) || seen[l] {
			t.Fatalf("torn or repeated line %q", l)
		}
		seen[l] = true
	}
}

// A destination that cannot keep up costs lines, never a blocked writer.
func TestDropWhenFull(t *testing.T) {
	block := make(chan struct{})
	s := newSink(func([]byte) error { <-block; return nil }, nil)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for i := 0; i < 2*MaxBuffered/len(line); i++ {
		s.Write(line) // must not block
	}
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped past MaxBuffered")
	}
	close(block)
	s.Close()
}

func TestOpenErrors(t *testing.T) {
	for _, addr := range []string{"ftp://127.0.0.1:21", "udp://", "/nonexistent-dir/x/access.log"} {
		if _, err := Open(addr, "switchyard"); err == nil {
			t.Errorf("Open(%q): no error", addr)
		}
	}
}
