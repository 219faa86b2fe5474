package deployconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// wunderproxyExample is a LaunchConfig as wunderproxy's json.Encoder wrote
// it: every field present, zero values included, a trailing newline.
const wunderproxyExample = `{"ContainerConfig":{"Hostname":"","Domainname":"","User":"","Memory":536870912,"MemorySwap":0,"CpuShares":512,"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"PortSpecs":null,"ExposedPorts":{"9292/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["RACK_ENV=production","GREETING=a=b"],"Cmd":["bundle","exec","unicorn"],"Dns":null,"Image":"localhost:5000/phrase:abc123","Volumes":null,"WorkingDir":"","Entrypoint":null,"NetworkDisabled":false,"HostConfig":null},"HostConfig":{"PublishAllPorts":true,"NetworkMode":"","Binds":null,"PortBindings":null,"LxcConf":null},"HealthCheckPath":"status","Revision":"abc123","ForceReload":false}
`

func TestParseWunderproxy(t *testing.T) {
	c, err := parseWunderproxy([]byte(wunderproxyExample))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", c.Image, "localhost:5000/phrase:abc123"},
		{"port", c.Port, 9292},
		{"cmd", c.Cmd, []string{"bundle", "exec", "unicorn"}},
		{"env", c.Env, map[string]string{"RACK_ENV": "production", "GREETING": "a=b"}},
		{"memory", c.Resources.MemoryBytes(), int64(512 << 20)},
		{"health.path", c.Health.Path, "/status"},
		{"labels", c.Labels, map[string]string{"wunderproxy.revision": "abc123"}},
		{"workers default", c.Workers, DefaultWorkers},
		{"stop default", c.Stop.Signal, "SIGTERM"},
		{"all static env", c.envFileAll, true},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseWunderproxyCases(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		check   func(*Config) bool
		wantErr string
	}{
		{name: "minimal, lower-case keys", json: `{"containerconfig": {"image": "app"}}`,
			check: func(c *Config) bool { return c.Port == 9292 && c.Health.Path == "/" && c.Labels == nil }},
		{name: "single other port", json: `{"ContainerConfig": {"Image": "app", "ExposedPorts": {"8080/tcp": {}}}}`,
			check: func(c *Config) bool { return c.Port == 8080 }},
		{name: "several ports with 9292", json: `{"ContainerConfig": {"Image": "app", "ExposedPorts": {"8080/tcp": {}, "9292/tcp": {}}}}`,
			check: func(c *Config) bool { return c.Port == 9292 }},
		{name: "health path with slash", json: `{"ContainerConfig": {"Image": "app"}, "HealthCheckPath": "/up"}`,
			check: func(c *Config) bool { return c.Health.Path == "/up" }},
		{name: "nested host config", json: `{"ContainerConfig": {"Image": "app", "HostConfig": {"NetworkMode": "host", "Binds": ["/a:/b"]}}}`,
			check: func(c *Config) bool { return c.NetworkMode == "host" && len(c.Binds) == 1 }},
		{name: "top-level host config wins", json: `{"ContainerConfig": {"Image": "app", "HostConfig": {"NetworkMode": "host"}}, "HostConfig": {"NetworkMode": "default"}}`,
			check: func(c *Config) bool { return c.NetworkMode == "" }},
		{name: "ignored fields", json: `{"ContainerConfig": {"Image": "app", "Tty": true, "PortSpecs": ["1"]}, "HostConfig": {"PortBindings": {"9292/tcp": [{"HostIp": "", "HostPort": "8000"}]}, "LxcConf": [{"Key": "k"}]}, "ForceReload": true, "MaintenancePath": "/m"}`,
			check: func(c *Config) bool { return c.Image == "app" }},
		{name: "no ContainerConfig", json: `{"HealthCheckPath": "x"}`, wantErr: "ContainerConfig: required"},
		{name: "no image", json: `{"ContainerConfig": {}}`, wantErr: "ContainerConfig.Image: required"},
		{name: "entrypoint refused", json: `{"ContainerConfig": {"Image": "a", "Entrypoint": ["/bin/sh"], "User": "app"}}`, wantErr: "ContainerConfig.Entrypoint: not supported by switchyard"},
		{name: "volumes refused", json: `{"ContainerConfig": {"Image": "a", "Volumes": {"/data": {}}}}`, wantErr: "ContainerConfig.Volumes: not supported"},
		{name: "env without equals", json: `{"ContainerConfig": {"Image": "a", "Env": ["A=1", "B"]}}`, wantErr: `ContainerConfig.Env[1]: "B": want KEY=VALUE`},
		{name: "several ports without 9292", json: `{"ContainerConfig": {"Image": "a", "ExposedPorts": {"80/tcp": {}, "81/tcp": {}}}}`, wantErr: "ContainerConfig.ExposedPorts: several ports"},
		{name: "udp port", json: `{"ContainerConfig": {"Image": "a", "ExposedPorts": {"53/udp": {}}}}`, wantErr: `"53/udp": want a TCP port`},
		{name: "unknown key", json: `{"ContainerConfig": {"Image": "a", "Labels": {}}}`, wantErr: "ContainerConfig.Labels: unknown field"},
		{name: "mapped value invalid", json: `{"ContainerConfig": {"Image": "a", "Memory": 1024}}`, wantErr: "mapped to switchyard's fields): invalid deployment config: resources.memory"},
		{name: "trailing data", json: `{"ContainerConfig": {"Image": "a"}} {}`, wantErr: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseWunderproxy([]byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want %q wrapping ErrInvalid", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}
