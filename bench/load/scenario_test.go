package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	const capacity = 60
	scs, err := parseScenarios("default,long,x=40", capacity, 10*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name    string
		sent    int
		timeout time.Duration
		peak    float64
	}{
		{"over", 2000, time.Second, 200},
		{"burst", 100 + 190, 3 * time.Second, 200},
		{"under", 400, time.Second, 40},
		{"long", 5400, 3 * time.Second, 90},
		{"step", 300 + 1200 + 300, 3 * time.Second, 120},
		{"x", 400, time.Second, 40}, // -duration and -queue-timeout
	}
	if len(scs) != len(want) {
		t.Fatalf("%d scenarios, want %d", len(scs), len(want))
	}
	for i, w := range want {
		sc := scs[i]
		if sc.name != w.name || len(sc.sendTimes()) != w.sent || sc.queueTimeout != w.timeout || sc.peakRate() != w.peak {
			t.Errorf("%s: %d sent, timeout %v, peak %v; want %+v", sc.name, len(sc.sendTimes()), sc.queueTimeout, sc.peakRate(), w)
		}
	}
	if at := scs[1].sendTimes(); at[100] != 500*time.Millisecond || at[101] != 550*time.Millisecond {
		t.Errorf("burst: the 20 rps phase starts at %v, %v; want 500ms, 550ms", at[100], at[101])
	}
}

func TestParseScenariosErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"over", "want name=RATE"},
		{"=200", "want name=RATE"},
		{"a=fast", `rate "fast"`},
		{"a=0", `rate "0"`},
		{"a=200/soon", `duration "soon"`},
		{"a=200@-1s", `queue timeout "-1s"`},
		{"a=200/2h", "at most 1h"},
		{"a=200+", `rate ""`},
	} {
		_, err := parseScenarios(tt.in, 60, time.Second, time.Second)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("%q: %v, want an error naming the input and %q", tt.in, err, tt.want)
		}
	}
}

func TestParseProxies(t *testing.T) {
	ps, err := parseProxies("haproxy,switchyard,switchyard-fifo")
	if err != nil || len(ps) != 3 || ps[2].kind != "switchyard" || ps[2].discipline != "fifo" || ps[1].discipline != "" {
		t.Fatalf("%+v %v", ps, err)
	}
	if _, err := parseProxies("switchyard-random"); err == nil || !strings.Contains(err.Error(), "switchyard-random") {
		t.Fatalf("switchyard-random: %v", err)
	}
}
