package deployconfig

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Wunderproxy (github.com/dynport/dgtk/wunderproxy) stored each deployment
// as <prefix>/container.<md5>.json, the JSON of its LaunchConfig, and on a
// deploy copied that object to <prefix>/current.json. A LaunchConfig is
//
//	{"ContainerConfig": {...Docker's create body: Image, Env, Cmd, Memory, ExposedPorts...},
//	 "HostConfig": {"NetworkMode", "Binds", "PortBindings", "PublishAllPorts", "LxcConf"},
//	 "HealthCheckPath": "healthcheck", "Revision": "...", "ForceReload": false}
//
// parseWunderproxy maps it to a Config:
//
//	ContainerConfig.Image        -> image
//	ContainerConfig.Cmd          -> cmd
//	ContainerConfig.Env ["K=V"]  -> env
//	ContainerConfig.Memory       -> resources.memory (bytes; 0 = no limit)
//	ContainerConfig.ExposedPorts -> port: the only exposed port, else 9292,
//	                                the port wunderproxy always published
//	HealthCheckPath              -> health.path ("/" + path; "" probes "/", as wunderproxy did)
//	HostConfig.NetworkMode       -> network_mode ("default" = bridge; policy applies)
//	HostConfig.Binds             -> binds (policy applies)
//	Revision                     -> labels["wunderproxy.revision"]
//	(the static env file)        -> every key is passed, as wunderproxy did
//
// HostConfig may also sit inside ContainerConfig (older Docker API); the
// top-level one wins. Ignored, because switchyard does it itself or Docker
// no longer uses it: port publishing (PublishAllPorts, PortBindings,
// PortSpecs), terminal attachment (Attach*, Tty, OpenStdin, StdinOnce),
// CpuShares, MemorySwap, LxcConf, ForceReload, MaintenancePath. Refused
// when set, because dropping them would change what runs: Entrypoint, User,
// WorkingDir, Volumes, VolumesFrom, Dns, Hostname, Domainname,
// NetworkDisabled. Keys match case-insensitively, as they did for
// wunderproxy; unknown keys are errors. Everything else of ours (workers,
// stop, health timings) takes its default.

// wunderproxyPort is the container port wunderproxy hard-coded ("9292/tcp").
const wunderproxyPort = 9292

type wpLaunchConfig struct {
	ContainerConfig *wpContainerConfig
	HostConfig      *wpHostConfig
	HealthCheckPath string
	Revision        string
	ForceReload     bool
	MaintenancePath string
}

type wpContainerConfig struct {
	Hostname        string
	Domainname      string
	User            string
	Memory          int64
	MemorySwap      int64
	CpuShares       int64
	AttachStdin     bool
	AttachStdout    bool
	AttachStderr    bool
	PortSpecs       []string
	ExposedPorts    map[string]struct{}
	Tty             bool
	OpenStdin       bool
	StdinOnce       bool
	Env             []string
	Cmd             []string
	Dns             []string
	Image           string
	Volumes         map[string]struct{}
	VolumesFrom     any
	WorkingDir      string
	Entrypoint      []string
	NetworkDisabled bool
	HostConfig      *wpHostConfig
}

type wpHostConfig struct {
	PublishAllPorts bool
	NetworkMode     string
	Binds           []string
	PortBindings    map[string][]struct{ HostIp, HostPort string }
	LxcConf         any
}

// parseWunderproxy parses a wunderproxy LaunchConfig and maps it to a Config
// (see the table above), with our defaults applied and validated. It sets
// no ID. Errors wrap ErrInvalid.
func parseWunderproxy(data []byte) (*Config, error) {
	var w wpLaunchConfig
	if err := decodeStrict(data, &w, true); err != nil {
		return nil, fmt.Errorf("%w: wunderproxy config: %w", ErrInvalid, err)
	}
	cc := w.ContainerConfig
	if cc == nil {
		return nil, fmt.Errorf("%w: wunderproxy config: ContainerConfig: required", ErrInvalid)
	}
	var p problems
	refuseUnsupported(cc, &p)
	c := &Config{Image: cc.Image, Cmd: cc.Cmd, envFileAll: true}
	if cc.Image == "" {
		p.add("ContainerConfig.Image", "required: the Docker image to run")
	}
	c.Env = wunderproxyEnv(cc.Env, &p)
	port, msg := wunderproxyExposedPort(cc.ExposedPorts)
	if msg != "" {
		p.add("ContainerConfig.ExposedPorts", "%s", msg)
	}
	c.Port = port
	switch {
	case cc.Memory < 0:
		p.add("ContainerConfig.Memory", "%d: must be >= 0", cc.Memory)
	case cc.Memory > 0:
		c.Resources.Memory = strconv.FormatInt(cc.Memory, 10)
	}
	// wunderproxy probed "http://localhost:PORT/" + HealthCheckPath.
	c.Health.Path = "/" + strings.TrimPrefix(w.HealthCheckPath, "/")
	if hc := cmp.Or(w.HostConfig, cc.HostConfig); hc != nil {
		c.NetworkMode = hc.NetworkMode
		if c.NetworkMode == "default" {
			c.NetworkMode = ""
		}
		c.Binds = hc.Binds
	}
	if w.Revision != "" {
		c.Labels = map[string]string{"wunderproxy.revision": w.Revision}
	}
	if err := p.err(); err != nil {
		return nil, fmt.Errorf("wunderproxy config: %w", err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("wunderproxy config (mapped to switchyard's fields): %w", err)
	}
	return c, nil
}

// refuseUnsupported refuses the container settings switchyard has no
// counterpart for, rather than ignoring them.
func refuseUnsupported(cc *wpContainerConfig, p *problems) {
	for _, f := range []struct {
		field string
		set   bool
	}{
		{"Entrypoint", len(cc.Entrypoint) > 0},
		{"User", cc.User != ""},
		{"WorkingDir", cc.WorkingDir != ""},
		{"Volumes", len(cc.Volumes) > 0},
		{"VolumesFrom", cc.VolumesFrom != nil && cc.VolumesFrom != ""},
		{"Dns", len(cc.Dns) > 0},
		{"Hostname", cc.Hostname != ""},
		{"Domainname", cc.Domainname != ""},
		{"NetworkDisabled", cc.NetworkDisabled},
	} {
		if f.set {
			p.add("ContainerConfig."+f.field, "not supported by switchyard: build it into the image, or convert the config to switchyard's format")
		}
	}
}

// wunderproxyEnv maps KEY=VALUE entries to env (nil when there are none).
func wunderproxyEnv(entries []string, p *problems) map[string]string {
	var env map[string]string
	for i, kv := range entries {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			p.add(fmt.Sprintf("ContainerConfig.Env[%d]", i), "%q: want KEY=VALUE", kv)
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		env[k] = v
	}
	return env
}

// wunderproxyExposedPort picks the container port: the only exposed one,
// else 9292 (which wunderproxy always used).
func wunderproxyExposedPort(exposed map[string]struct{}) (int, string) {
	if len(exposed) != 1 {
		if _, ok := exposed["9292/tcp"]; len(exposed) > 1 && !ok {
			return 0, "several ports and none is 9292/tcp: switchyard needs the one HTTP port"
		}
		return wunderproxyPort, ""
	}
	for spec := range exposed {
		num, proto, _ := strings.Cut(spec, "/")
		n, err := strconv.Atoi(num)
		if err != nil || (proto != "" && proto != "tcp") {
			return 0, fmt.Sprintf("%q: want a TCP port like \"9292/tcp\"", spec)
		}
		return n, ""
	}
	return wunderproxyPort, ""
}

// parseEither parses wunderproxy's format when the object has a
// ContainerConfig key, else ours: a wunderproxy prefix may hold both.
func parseEither(data []byte) (*Config, error) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) == nil {
		for k := range m {
			if strings.EqualFold(k, "ContainerConfig") {
				return parseWunderproxy(data)
			}
		}
	}
	return parseConfig(data)
}
