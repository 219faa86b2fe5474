package deployconfig

import (
	"errors"
	"fmt"
	"strings"
)

// Policy is what the operator allows configs to ask for. The zero value
// refuses all of it: a config from S3 must not be able to take the host.
type Policy struct {
	// AllowPrivileged permits "privileged": true. Default false.
	AllowPrivileged bool
	// AllowHostNetwork permits "network_mode": "host". Default false.
	AllowHostNetwork bool
	// AllowBindMounts permits "binds". Default false.
	AllowBindMounts bool
	// AllowCapAdd permits "cap_add". Default false.
	AllowCapAdd bool

	// DefaultMemory is the memory limit in bytes of the containers whose
	// config sets none. Default 0: none.
	DefaultMemory int64
	// PidsLimit caps the number of processes in every container (a fork
	// bomb in the app stays in its container). Default 0: no limit.
	PidsLimit int64
}

// MemoryBytes is the memory limit of c's container: its own, else the
// operator's default (0: none).
func (p Policy) MemoryBytes(c *Config) int64 {
	if m := c.Resources.MemoryBytes(); m > 0 {
		return m
	}
	return p.DefaultMemory
}

// Check refuses what the operator did not allow, naming each field and the
// flag that would permit it. Errors wrap ErrPolicy.
func (p Policy) Check(c *Config) error {
	if c == nil {
		return errors.New("policy check: no config")
	}
	refused := p.refusals(c)
	if len(refused) == 0 {
		return nil
	}
	return fmt.Errorf("config %s: %w", c.name(), policyError(strings.Join(refused, "; ")))
}

// refusals are what the policy refuses of c, one line per field.
func (p Policy) refusals(c *Config) []string {
	var refused []string
	refuse := func(field, flag string) {
		refused = append(refused, fmt.Sprintf("%s: %s (start switchyard with %s to permit)", field, ErrPolicy, flag))
	}
	if c.Privileged && !p.AllowPrivileged {
		refuse("privileged", "--allow-privileged")
	}
	if c.NetworkMode == "host" && !p.AllowHostNetwork {
		refuse("network_mode", "--allow-host-network")
	}
	if len(c.Binds) > 0 && !p.AllowBindMounts {
		refuse("binds", "--allow-bind-mounts")
	}
	if len(c.CapAdd) > 0 && !p.AllowCapAdd {
		refuse("cap_add", "--allow-cap-add")
	}
	return refused
}

// ParseSize reads a size as configs write memory limits: bytes, or a
// number with a binary unit ("512m", "1g", "1.5GiB"), at least Docker's
// minimum of 6m. The operator's --default-memory is read so.
func ParseSize(s string) (int64, error) {
	n, err := parseMemory(s)
	if err == nil && n < minMemory {
		err = fmt.Errorf("%q is below Docker's minimum of 6m", s)
	}
	return n, err
}

// policyError is the joined message; it matches ErrPolicy with errors.Is
// without repeating the sentinel's text at the front.
type policyError string

func (e policyError) Error() string        { return string(e) }
func (e policyError) Is(target error) bool { return target == ErrPolicy }
