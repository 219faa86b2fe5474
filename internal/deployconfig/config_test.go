package deployconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAllFields(t *testing.T) {
	data := []byte(`{
		"image": "registry.local/app:1.2",
		"port": 8000,
		"cmd": ["gunicorn", "app:app"],
		"env": {"MODE": "prod"},
		"env_file": ["DB_PASSWORD"],
		"workers": 8,
		"health": {"path": "/up", "interval": "500ms", "timeout": 3, "healthy_after": 2, "unhealthy_after": 5, "start_timeout": "2m"},
		"stop": {"signal": "quit", "timeout": "20s", "drain_timeout": 1.5},
		"resources": {"memory": "512m", "cpus": 1.5},
		"labels": {"team": "web"},
		"privileged": true,
		"network_mode": "host",
		"binds": ["/srv/data:/data:ro"],
		"cap_add": ["NET_ADMIN"]
	}`)
	c, err := parseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Image:   "registry.local/app:1.2",
		Port:    8000,
		Cmd:     []string{"gunicorn", "app:app"},
		Env:     map[string]string{"MODE": "prod"},
		EnvFile: []string{"DB_PASSWORD"},
		Workers: 8,
		Health: Health{Path: "/up", Interval: dur(500 * time.Millisecond), Timeout: dur(3 * time.Second),
			HealthyAfter: 2, UnhealthyAfter: 5, StartTimeout: dur(2 * time.Minute)},
		Stop:        Stop{Signal: "SIGQUIT", Timeout: dur(20 * time.Second), DrainTimeout: dur(1500 * time.Millisecond)},
		Resources:   Resources{Memory: "512m", CPUs: 1.5},
		Labels:      map[string]string{"team": "web"},
		Privileged:  true,
		NetworkMode: "host",
		Binds:       []string{"/srv/data:/data:ro"},
		CapAdd:      []string{"NET_ADMIN"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.Resources.MemoryBytes() != 512<<20 || c.Resources.NanoCPUs() != 1_500_000_000 {
		t.Errorf("MemoryBytes %d NanoCPUs %d", c.Resources.MemoryBytes(), c.Resources.NanoCPUs())
	}
}

// dur is a Duration as the decoder leaves a given value.
func dur(d time.Duration) Duration { return Duration{Duration: d, set: true} }

func TestParseDefaults(t *testing.T) {
	c, err := parseConfig([]byte(`{"image": "app", "port": 80}`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"workers", c.Workers, DefaultWorkers},
		{"health.path", c.Health.Path, "/healthcheck"},
		{"health.interval", c.Health.Interval.Duration, time.Second},
		{"health.timeout", c.Health.Timeout.Duration, 2 * time.Second},
		{"health.healthy_after", c.Health.HealthyAfter, 1},
		{"health.unhealthy_after", c.Health.UnhealthyAfter, 3},
		{"health.start_timeout", c.Health.StartTimeout.Duration, 60 * time.Second},
		{"stop.signal", c.Stop.Signal, "SIGTERM"},
		{"stop.timeout", c.Stop.Timeout.Duration, 10 * time.Second},
		{"stop.drain_timeout", c.Stop.DrainTimeout.Duration, 30 * time.Second},
		{"memory", c.Resources.MemoryBytes(), int64(0)},
		{"cpus", c.Resources.NanoCPUs(), int64(0)},
		{"id", c.ID, ""},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string // substrings of the error
	}{
		{"unknown top-level", `{"image": "a", "port": 1, "imagee": "x"}`, []string{"imagee: unknown field", "known: image, port"}},
		{"unknown nested", `{"image": "a", "port": 1, "health": {"intervall": "1s"}}`, []string{"health.intervall: unknown field"}},
		{"unknown deeper nested", `{"image": "a", "port": 1, "stop": {"signal": "TERM", "grace": 1}}`, []string{"stop.grace: unknown field"}},
		{"key in wrong case", `{"Image": "a", "port": 1}`, []string{"Image: unknown field"}},
		{"missing image", `{"port": 80}`, []string{"image: required"}},
		{"missing port", `{"image": "a"}`, []string{"port: required"}},
		{"missing both", `{}`, []string{"image: required", "port: required"}},
		{"port range", `{"image": "a", "port": 70000}`, []string{"port: 70000 is out of range"}},
		{"port type", `{"image": "a", "port": "80"}`, []string{"port: want an integer, got a JSON string"}},
		{"nested type", `{"image": "a", "port": 1, "health": {"healthy_after": "x"}}`, []string{"health.healthy_after: want an integer"}},
		{"bad duration string", `{"image": "a", "port": 1, "health": {"interval": "5 minutes"}}`, []string{`health.interval: "5 minutes" is not a duration`}},
		{"negative duration", `{"image": "a", "port": 1, "health": {"timeout": "-1s"}}`, []string{"health.timeout: -1s is negative"}},
		{"negative seconds", `{"image": "a", "port": 1, "stop": {"timeout": -3}}`, []string{"stop.timeout: -3s is negative"}},
		{"zero duration", `{"image": "a", "port": 1, "stop": {"drain_timeout": "0s"}}`, []string{"stop.drain_timeout: must be > 0"}},
		{"duration wrong type", `{"image": "a", "port": 1, "health": {"start_timeout": true}}`, []string{"health.start_timeout: true is not a duration"}},
		{"bad memory", `{"image": "a", "port": 1, "resources": {"memory": "lots"}}`, []string{`resources.memory: "lots" is not a size`}},
		{"bad memory unit", `{"image": "a", "port": 1, "resources": {"memory": "5x"}}`, []string{`resources.memory: "5x" is not a size`}},
		{"tiny memory", `{"image": "a", "port": 1, "resources": {"memory": "1m"}}`, []string{"below Docker's minimum"}},
		{"negative cpus", `{"image": "a", "port": 1, "resources": {"cpus": -1}}`, []string{"resources.cpus: -1: must be > 0"}},
		{"bad signal", `{"image": "a", "port": 1, "stop": {"signal": "SIGSTOP"}}`, []string{`stop.signal: "SIGSTOP": use one of SIGTERM`}},
		{"reserved label", `{"image": "a", "port": 1, "labels": {"switchyard.app": "x"}}`, []string{"labels.switchyard.app: keys starting \"switchyard.\" are reserved"}},
		{"bad workers", `{"image": "a", "port": 1, "workers": -2}`, []string{"workers: -2: must be >= 1"}},
		{"bad health path", `{"image": "a", "port": 1, "health": {"path": "up"}}`, []string{`health.path: "up" must start with "/"`}},
		{"bad healthy_after", `{"image": "a", "port": 1, "health": {"unhealthy_after": -1}}`, []string{"health.unhealthy_after: -1"}},
		{"bad network mode", `{"image": "a", "port": 1, "network_mode": "none"}`, []string{`network_mode: "none"`}},
		{"bad bind", `{"image": "a", "port": 1, "binds": ["data:/data"]}`, []string{`binds[0]: "data:/data": both paths must be absolute`}},
		{"bad bind mode", `{"image": "a", "port": 1, "binds": ["/a:/b:rx"]}`, []string{"binds[0]", "ro or rw"}},
		{"bad cap", `{"image": "a", "port": 1, "cap_add": ["NET ADMIN"]}`, []string{"cap_add[0]"}},
		{"bad env key", `{"image": "a", "port": 1, "env": {"A B": "x"}}`, []string{"env.A B: variable names cannot contain"}},
		{"bad env_file key", `{"image": "a", "port": 1, "env_file": ["OK", "X=Y"]}`, []string{`env_file[1]: "X=Y"`}},
		{"image with space", `{"image": "a b", "port": 1}`, []string{"image: \"a b\" contains whitespace"}},
		{"trailing garbage", `{"image": "a", "port": 1} xyz`, []string{"trailing data after the JSON object"}},
		{"second object", `{"image": "a", "port": 1}{"image": "b", "port": 2}`, []string{"trailing data"}},
		{"syntax error", "{\"image\": \"a\",\n \"port\": 1,}", []string{"invalid JSON at line 2"}},
		{"truncated", `{"image": "a"`, []string{"ends inside the object"}},
		{"not an object", `["image"]`, []string{"want a JSON object"}},
		{"null", `null`, []string{"want a JSON object"}},
		{"empty", ``, []string{"empty document"}},
		{"zero workers", `{"image": "a", "port": 1, "workers": 0}`, []string{"workers: 0: must be at least 1 (leave the field out for the default, 4)"}},
		{"zero healthy_after", `{"image": "a", "port": 1, "health": {"healthy_after": 0}}`, []string{"health.healthy_after: 0: must be at least 1"}},
		{"zero cpus", `{"image": "a", "port": 1, "resources": {"cpus": 0}}`, []string{"resources.cpus: 0: must be > 0"}},
		{"tiny cpus", `{"image": "a", "port": 1, "resources": {"cpus": 1e-10}}`, []string{"resources.cpus: 1e-10 is below Docker's minimum of 0.01"}},
		{"huge cpus", `{"image": "a", "port": 1, "resources": {"cpus": 1e300}}`, []string{"resources.cpus: 1e+300 is above 1024 CPUs"}},
		{"fast probes", `{"image": "a", "port": 1, "health": {"interval": "1ms"}}`, []string{"health.interval: 1ms is below the minimum of 100ms"}},
		{"slow probes", `{"image": "a", "port": 1, "health": {"interval": "2m"}}`, []string{"health.interval: 2m0s is above the maximum of 1m0s"}},
		{"endless start", `{"image": "a", "port": 1, "health": {"start_timeout": "100000h"}}`, []string{"health.start_timeout: 100000h0m0s is above the maximum of 30m0s"}},
		{"endless drain", `{"image": "a", "port": 1, "stop": {"drain_timeout": "2h"}}`, []string{"stop.drain_timeout: 2h0m0s is above the maximum of 1h0m0s"}},
		{"endless stop", `{"image": "a", "port": 1, "stop": {"timeout": "11m"}}`, []string{"stop.timeout: 11m0s is above the maximum of 10m0s"}},
		{"long probe", `{"image": "a", "port": 1, "health": {"timeout": 3600}}`, []string{"health.timeout: 1h0m0s is above the maximum of 1m0s"}},
		{"many probes", `{"image": "a", "port": 1, "health": {"healthy_after": 1000}}`, []string{"health.healthy_after: 1000: must be 1 to 100"}},
		{"duplicate key", `{"image": "a", "port": 1, "privileged": false, "privileged": true}`, []string{"privileged: duplicate key"}},
		{"duplicate nested key", `{"image": "a", "port": 1, "env": {"A": "1", "A": "2"}}`, []string{"env.A: duplicate key"}},
		{"type in a list", `{"image": "a", "port": 1, "cmd": ["a", 2]}`, []string{"cmd[1]: want a string, got a JSON number 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tt.json))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A config with many problems reports all of them in one error, each named
// by its field, and none twice (a port of the wrong type is not also
// "required").
func TestParseReportsEveryProblem(t *testing.T) {
	doc := `{"imagee": "app", "port": "80", "workers": 0,
		"health": {"intervall": "1s", "timeout": "soon", "healthy_after": "x"},
		"stop": {"signal": "STOP", "drain_timeout": "100000h"},
		"resources": {"cpus": 1e-10}, "env": {"A": 1}, "labels": {"x": "1", "x": "2"}}`
	_, err := parseConfig([]byte(doc))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want ErrInvalid", err)
	}
	want := []string{
		"imagee: unknown field", "port: want an integer, got a JSON string", "workers: 0",
		"health.intervall: unknown field", `health.timeout: "soon" is not a duration`, "health.healthy_after: want an integer",
		`stop.signal: "STOP"`, "stop.drain_timeout: 100000h0m0s is above the maximum",
		"resources.cpus: 1e-10 is below", "env.A: want a string", "labels.x: duplicate key", "image: required",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not report %q:\n%v", w, err)
		}
	}
	if n := strings.Count(err.Error(), "port:"); n != 1 {
		t.Errorf("port reported %d times: %v", n, err)
	}
	if n := strings.Count(err.Error(), "; ") + 1; n != len(want) {
		t.Errorf("%d problems reported, want %d: %v", n, len(want), err)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(*Config) bool
	}{
		{"signal without SIG", `"stop": {"signal": "hup"}`, func(c *Config) bool { return c.Stop.Signal == "SIGHUP" }},
		{"signal with SIG", `"stop": {"signal": "SIGWINCH"}`, func(c *Config) bool { return c.Stop.Signal == "SIGWINCH" }},
		{"memory bytes", `"resources": {"memory": "268435456"}`, func(c *Config) bool { return c.Resources.MemoryBytes() == 268435456 }},
		{"memory 1g", `"resources": {"memory": "1g"}`, func(c *Config) bool { return c.Resources.MemoryBytes() == 1<<30 }},
		{"memory 1.5GiB", `"resources": {"memory": "1.5GiB"}`, func(c *Config) bool { return c.Resources.MemoryBytes() == 3<<29 }},
		{"cpus 0.25", `"resources": {"cpus": 0.25}`, func(c *Config) bool { return c.Resources.NanoCPUs() == 250_000_000 }},
		{"null duration means default", `"health": {"interval": null}`, func(c *Config) bool { return c.Health.Interval.Duration == time.Second }},
		{"bridge network", `"network_mode": "bridge"`, func(c *Config) bool { return c.NetworkMode == "bridge" }},
		{"label not reserved", `"labels": {"switchyardx": "1"}`, func(c *Config) bool { return c.Labels["switchyardx"] == "1" }},
		{"trailing whitespace", `"workers": 1`, nil},
		{"bounds are inclusive", `"health": {"interval": "100ms", "start_timeout": "30m"}, "stop": {"drain_timeout": "1h", "timeout": "10m"}, "resources": {"cpus": 0.01}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"image": "a", "port": 1, ` + tt.extra + "}\n\n"
			c, err := parseConfig([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}

func TestDurationMarshal(t *testing.T) {
	b, err := dur(90 * time.Second).MarshalJSON()
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
}
