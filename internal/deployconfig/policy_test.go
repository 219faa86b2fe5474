package deployconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	base := func() *Config { return &Config{Image: "a", Port: 1, ID: "0123456789abcdef0123"} }
	tests := []struct {
		name    string
		policy  Policy
		mutate  func(*Config)
		refused []string // fields named in the error; none means allowed
	}{
		{"plain config, strict policy", Policy{}, func(*Config) {}, nil},
		{"bridge network is not host", Policy{}, func(c *Config) { c.NetworkMode = "bridge" }, nil},
		{"privileged refused", Policy{}, func(c *Config) { c.Privileged = true }, []string{"privileged: refused by policy (start switchyard with --allow-privileged to permit)"}},
		{"privileged allowed", Policy{AllowPrivileged: true}, func(c *Config) { c.Privileged = true }, nil},
		{"host network refused", Policy{}, func(c *Config) { c.NetworkMode = "host" }, []string{"network_mode: refused by policy", "--allow-host-network"}},
		{"host network allowed", Policy{AllowHostNetwork: true}, func(c *Config) { c.NetworkMode = "host" }, nil},
		{"binds refused", Policy{}, func(c *Config) { c.Binds = []string{"/a:/b"} }, []string{"binds: refused by policy", "--allow-bind-mounts"}},
		{"binds allowed", Policy{AllowBindMounts: true}, func(c *Config) { c.Binds = []string{"/a:/b"} }, nil},
		{"cap_add refused", Policy{}, func(c *Config) { c.CapAdd = []string{"NET_ADMIN"} }, []string{"cap_add: refused by policy", "--allow-cap-add"}},
		{"cap_add allowed", Policy{AllowCapAdd: true}, func(c *Config) { c.CapAdd = []string{"NET_ADMIN"} }, nil},
		{"all refused at once", Policy{AllowBindMounts: true}, func(c *Config) {
			c.Privileged, c.NetworkMode, c.Binds, c.CapAdd = true, "host", []string{"/a:/b"}, []string{"SYS_TIME"}
		}, []string{"config 0123456789ab:", "privileged:", "network_mode:", "cap_add:"}},
		{"all allowed", Policy{AllowPrivileged: true, AllowHostNetwork: true, AllowBindMounts: true, AllowCapAdd: true}, func(c *Config) {
			c.Privileged, c.NetworkMode, c.Binds, c.CapAdd = true, "host", []string{"/a:/b"}, []string{"SYS_TIME"}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(c)
			err := tt.policy.Check(c)
			if len(tt.refused) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("error %v does not wrap ErrPolicy", err)
			}
			for _, w := range tt.refused {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "binds") && tt.policy.AllowBindMounts {
				t.Errorf("allowed binds named in %q", err)
			}
		})
	}
	if err := (Policy{}).Check(nil); err == nil {
		t.Error("Check(nil) succeeded")
	}
}

// CheckFile reports every problem of a file at once: parse, validation,
// policy and env_file keys, with the id to upload it by.
func TestCheckFile(t *testing.T) {
	data := []byte(`{"image": "app", "port": "80", "workerz": 2, "privileged": true, "network_mode": "host",
		"env_file": ["DB", "SECRET"], "health": {"interval": "1ms"}}`)
	r := CheckFile(data, LayoutNative, Policy{AllowHostNetwork: true}, map[string]string{"DB": "x"})
	if r.ID != ID(data) || r.Object != ID(data)+".json" || r.Config == nil {
		t.Fatalf("report %+v", r)
	}
	want := []string{"port: want an integer", "workerz: unknown field", "health.interval: 1ms is below",
		"privileged: refused by policy (start switchyard with --allow-privileged", "env_file: SECRET not in the operator's env file"}
	if len(r.Problems) != len(want) {
		t.Fatalf("%d problems, want %d: %q", len(r.Problems), len(want), r.Problems)
	}
	for i, w := range want {
		if !strings.HasPrefix(r.Problems[i], w) {
			t.Errorf("problem %d %q, want %q", i, r.Problems[i], w)
		}
	}

	good := []byte(`{"image": "app", "port": 80}`)
	if r := CheckFile(good, LayoutNative, Policy{}, nil); len(r.Problems) != 0 || r.Config.Workers != DefaultWorkers {
		t.Fatalf("good config: %+v", r)
	}
	wp := []byte(`{"ContainerConfig": {"Image": "app", "User": "root"}}`)
	if r := CheckFile(wp, LayoutWunderproxy, Policy{}, nil); r.ID != md5Hex(wp) || r.Object != "container."+md5Hex(wp)+".json" ||
		len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "ContainerConfig.User") {
		t.Fatalf("wunderproxy config: %+v", r)
	}
	if r := CheckFile([]byte(`nope`), LayoutNative, Policy{}, nil); len(r.Problems) != 1 || r.Config != nil && r.Config.Image != "" {
		t.Fatalf("not JSON: %+v", r)
	}
}
