package proxy

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestAccessLogFormats(t *testing.T) {
	tests := []struct {
		name   string
		format string
		check  func(t *testing.T, line string)
	}{
		{"text", "text", func(t *testing.T, line string) {
			re := regexp.MustCompile(`^\S+Z 127\.0\.0\.1 "POST /sleep\?d=20ms HTTP/1\.1" 200 \d+/\d+/(\d+)/(\d+) (\d+) 3 \S+-\w+ app -$`)
			m := re.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %q does not match %s", line, re)
			}
			if m[1] < "20" && len(m[1]) < 3 {
				t.Errorf("app time %s ms < the 20 ms the app slept", m[1])
			}
			if m[3] < "100" && len(m[3]) < 3 {
				t.Errorf("request size %s: headers and body not counted", m[3])
			}
		}},
		{"haproxy template", "%HM %HU %ST %TR/%Tw/%Tr/%Ta %U", func(t *testing.T, line string) {
			if !regexp.MustCompile(`^POST /sleep\?d=20ms 200 \d+/\d+/\d+/\d+ \d+$`).MatchString(line) {
				t.Fatalf("line %q", line)
			}
		}},
		{"json", "json", func(t *testing.T, line string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON: %q: %v", line, err)
			}
			if m["method"] != "POST" || m["uri"] != "/sleep?d=20ms" || m["status"] != float64(200) || m["target"] != "app" {
				t.Fatalf("fields: %v", m)
			}
			if app, _ := m["app_ms"].(float64); app < 20 {
				t.Errorf("app_ms %v < 20", m["app_ms"])
			}
			for _, k := range []string{"read_ms", "queue_ms", "total_ms", "bytes_in", "request_id", "time"} {
				if _, ok := m[k]; !ok {
					t.Errorf("no %s in %v", k, m)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf strings.Builder
			al, err := NewAccessLog(&lockedWriter{w: &buf}, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			b := newBackend(t, "app")
			p := newProxy(t, Config{AccessLog: al})
			setTarget(t, p, b, 1)
			url := startProxy(t, p)
			resp, err := client.Post(url+"/sleep?d=20ms", "text/plain", strings.NewReader("abc"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			waitFor(t, "the log line", func() bool { return strings.Count(buf.String(), "\n") == 1 })
			tt.check(t, strings.TrimSuffix(buf.String(), "\n"))
		})
	}
}

func TestAccessLogShedLine(t *testing.T) {
	var buf strings.Builder
	al, _ := NewAccessLog(&lockedWriter{w: &buf}, "%ST %Tw %Tr %E")
	b := newBackend(t, "app")
	b.hold = make(chan struct{})
	defer close(b.hold)
	p := newProxy(t, Config{AccessLog: al, QueueTimeout: 50 * time.Millisecond})
	setTarget(t, p, b, 1)
	url := startProxy(t, p)
	go get(context.Background(), url+"/hold")
	waitFor(t, "worker taken", func() bool { return b.inflight.Load() == 1 })
	get(context.Background(), url+"/x")
	waitFor(t, "the shed line", func() bool { return strings.Contains(buf.String(), "503") })
	if !regexp.MustCompile(`503 \d+ -1 "queue timeout"`).MatchString(buf.String()) {
		t.Fatalf("shed line %q: want the queue time, -1 for the app, and the reason", buf.String())
	}
}

func TestAccessLogTemplateErrors(t *testing.T) {
	for _, f := range []string{"%HM %Q", "%", "%Z"} {
		if _, err := NewAccessLog(io.Discard, f); err == nil {
			t.Errorf("template %q: no error", f)
		}
	}
	if _, err := NewAccessLog(io.Discard, "100%% %HM"); err != nil {
		t.Errorf("%%%% escape: %v", err)
	}
}

// A request id or URI with quotes, spaces or control characters cannot
// forge fields of the text log: they are escaped as \xHH, and the line
// keeps its shape.
func TestAccessLogEscapes(t *testing.T) {
	tests := []struct {
		name, request string
		field         int    // of the line split at spaces
		want          string // that field
	}{
		{"quote and spaces in the request id",
			"GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: a\" 200 1/2/3/4 5 6 forged \"b\r\n\r\n",
			9, `a\x22\x20200\x201/2/3/4\x205\x206\x20forged\x20\x22b`},
		{"tab and high bytes in the request id",
			"GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: a\tb\xc3\xa9\r\n\r\n",
			9, `a\x09b\xc3\xa9`},
		{"quote in the URI",
			"GET /x?q=\"a HTTP/1.1\r\nHost: t\r\nX-Request-Id: id\r\n\r\n",
			3, `/x?q=\x22a`},
		{"backslash in the URI",
			"GET /x?q=\\x22 HTTP/1.1\r\nHost: t\r\nX-Request-Id: id\r\n\r\n",
			3, `/x?q=\x5cx22`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "app")
			logs := &syncLog{}
			al, _ := NewAccessLog(logs, LogFormatText)
			p := newProxy(t, Config{AccessLog: al})
			setTarget(t, p, b, 1)
			url := startProxy(t, p)
			if code := rawExchange(t, url, tt.request); code != 200 {
				t.Fatalf("status %d", code)
			}
			waitFor(t, "the log line", func() bool { return logs.String() != "" })
			line := strings.TrimSuffix(logs.String(), "\n")
			f := strings.Split(line, " ")
			if len(f) != 12 || strings.Count(line, `"`) != 2 {
				t.Fatalf("line %q: %d fields, %d quotes; want 12 and 2", line, len(f), strings.Count(line, `"`))
			}
			if f[tt.field] != tt.want {
				t.Errorf("field %d is %q, want %q (line %q)", tt.field, f[tt.field], tt.want, line)
			}
		})
	}
}
