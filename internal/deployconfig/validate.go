package deployconfig

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
)

// problems collects what is wrong with a config, each prefixed by its JSON
// path, so that one round trip shows the author everything that is wrong.
type problems struct {
	list []string
	// bad are the paths that could not be decoded: validation says nothing
	// more of them (a port given as a string is not also "required").
	bad []string
}

// add records a problem of field, unless field could not be decoded.
func (p *problems) add(field, format string, args ...any) {
	for _, b := range p.bad {
		if field == b || strings.HasPrefix(field, b+".") || strings.HasPrefix(field, b+"[") {
			return
		}
	}
	p.addBad(field, format, args...)
}

// addBad records a decoding problem of field ("": the whole document).
func (p *problems) addBad(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	p.list = append(p.list, msg)
	p.bad = append(p.bad, field)
}

// err is every problem as one error wrapping ErrInvalid, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p.list, "; "))
}

// plain is every problem as one error, or nil.
func (p *problems) plain() error {
	if len(p.list) == 0 {
		return nil
	}
	return errors.New(strings.Join(p.list, "; "))
}

// stopSignals are the signals a container may be asked to stop with.
var stopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// minMemory is Docker's smallest memory limit; checking it here fails the
// config at fetch time instead of at container create.
const minMemory = 6 << 20

// validate checks a defaulted config and normalises Stop.Signal. Errors
// wrap ErrInvalid and name every bad field.
func (c *Config) validate() error {
	var p problems
	c.validateInto(&p)
	return p.err()
}

// validateInto adds what is wrong with a defaulted config to p.
func (c *Config) validateInto(p *problems) {
	c.validateContainer(p)
	c.validateEnv(p)
	if c.Workers < 1 {
		p.add("workers", "%d: must be >= 1", c.Workers)
	}
	c.Health.validate(p)
	c.Stop.validate(p)
	c.Resources.validate(p)
	c.validateLabels(p)
	c.validateHostAccess(p)
}

// validateContainer checks the image and the port.
func (c *Config) validateContainer(p *problems) {
	switch {
	case c.Image == "":
		p.add("image", "required: the Docker image to run")
	case hasSpaceOrControl(c.Image):
		p.add("image", "%q contains whitespace or control characters", c.Image)
	}
	switch {
	case c.Port == 0:
		p.add("port", "required: the container's HTTP port, 1-65535")
	case c.Port < 1 || c.Port > 65535:
		p.add("port", "%d is out of range 1-65535", c.Port)
	}
}

// validateEnv checks env's keys and values and env_file's keys.
func (c *Config) validateEnv(p *problems) {
	for _, k := range sortedKeys(c.Env) {
		if msg := checkEnvKey(k); msg != "" {
			p.add("env."+k, "%s", msg)
		}
		if strings.ContainsRune(c.Env[k], 0) {
			p.add("env."+k, "value contains a NUL byte")
		}
	}
	for i, k := range c.EnvFile {
		if msg := checkEnvKey(k); msg != "" {
			p.add(fmt.Sprintf("env_file[%d]", i), "%q: %s", k, msg)
		}
	}
}

// validateLabels refuses empty keys and switchyard's own.
func (c *Config) validateLabels(p *problems) {
	for _, k := range sortedKeys(c.Labels) {
		switch {
		case k == "":
			p.add("labels", "empty label key")
		case strings.HasPrefix(strings.ToLower(k), "switchyard."):
			p.add("labels."+k, "keys starting \"switchyard.\" are reserved for switchyard's own labels")
		}
	}
}

// validateHostAccess checks the form of what reaches into the host (the
// network mode, binds, capabilities); Policy decides whether it is allowed.
func (c *Config) validateHostAccess(p *problems) {
	switch c.NetworkMode {
	case "", "bridge", "host":
	default:
		p.add("network_mode", "%q: only \"bridge\" (the default) or \"host\"", c.NetworkMode)
	}
	for i, b := range c.Binds {
		if msg := checkBind(b); msg != "" {
			p.add(fmt.Sprintf("binds[%d]", i), "%q: %s", b, msg)
		}
	}
	for i, capName := range c.CapAdd {
		if capName == "" || strings.IndexFunc(capName, func(r rune) bool {
			return r != '_' && !('A' <= r && r <= 'Z') && !('a' <= r && r <= 'z') && !('0' <= r && r <= '9')
		}) >= 0 {
			p.add(fmt.Sprintf("cap_add[%d]", i), "%q is not a capability name like NET_ADMIN", capName)
		}
	}
}

func (h *Health) validate(p *problems) {
	switch {
	case !strings.HasPrefix(h.Path, "/"):
		p.add("health.path", "%q must start with \"/\"", h.Path)
	case hasSpaceOrControl(h.Path):
		p.add("health.path", "%q contains whitespace or control characters", h.Path)
	}
	for _, d := range []struct {
		field   string
		d       Duration
		lo, hi  time.Duration
		whyLess string
	}{
		{"health.interval", h.Interval, MinHealthInterval, MaxHealthInterval, "probing more often loads the app for nothing"},
		{"health.timeout", h.Timeout, 0, MaxHealthTimeout, ""},
		{"health.start_timeout", h.StartTimeout, 0, MaxStartTimeout, ""},
	} {
		if msg := d.d.check(d.lo, d.hi, d.whyLess); msg != "" {
			p.add(d.field, "%s", msg)
		}
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"health.healthy_after", h.HealthyAfter}, {"health.unhealthy_after", h.UnhealthyAfter}} {
		if n.v < 1 || n.v > MaxHealthCount {
			p.add(n.field, "%d: must be 1 to %d", n.v, MaxHealthCount)
		}
	}
}

func (s *Stop) validate(p *problems) {
	sig := strings.ToUpper(strings.TrimSpace(s.Signal))
	if !strings.HasPrefix(sig, "SIG") {
		sig = "SIG" + sig
	}
	if slices.Contains(stopSignals, sig) {
		s.Signal = sig
	} else {
		p.add("stop.signal", "%q: use one of %s (the SIG prefix is optional)", s.Signal, strings.Join(stopSignals, ", "))
	}
	if msg := s.Timeout.check(0, MaxStopTimeout, ""); msg != "" {
		p.add("stop.timeout", "%s", msg)
	}
	if msg := s.DrainTimeout.check(0, MaxDrainTimeout, ""); msg != "" {
		p.add("stop.drain_timeout", "%s", msg)
	}
}

func (r *Resources) validate(p *problems) {
	if r.Memory != "" {
		n, err := parseMemory(r.Memory)
		switch {
		case err != nil:
			p.add("resources.memory", "%v", err)
		case n < minMemory:
			p.add("resources.memory", "%q is below Docker's minimum of 6m", r.Memory)
		}
	}
	switch {
	case r.CPUs < 0:
		p.add("resources.cpus", "%g: must be > 0", r.CPUs)
	case r.CPUs > 0 && r.CPUs < MinCPUs:
		p.add("resources.cpus", "%g is below Docker's minimum of %g CPUs (it would mean no limit at all)", r.CPUs, MinCPUs)
	case r.CPUs > MaxCPUs:
		p.add("resources.cpus", "%g is above %d CPUs: give the cores the app may use, e.g. 0.5 or 2", r.CPUs, MaxCPUs)
	}
}

// checkEnvKey returns what is wrong with an environment variable name, or "".
func checkEnvKey(k string) string {
	switch {
	case k == "":
		return "empty variable name"
	case strings.ContainsAny(k, "=\x00") || hasSpaceOrControl(k):
		return "variable names cannot contain '=', whitespace or control characters"
	}
	return ""
}

// checkBind returns what is wrong with a "src:dst[:ro|rw]" bind, or "".
func checkBind(b string) string {
	parts := strings.Split(b, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "want src:dst or src:dst:ro"
	}
	if len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
		return "the mode must be ro or rw"
	}
	for _, pth := range parts[:2] {
		if !path.IsAbs(pth) {
			return "both paths must be absolute"
		}
	}
	return ""
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
