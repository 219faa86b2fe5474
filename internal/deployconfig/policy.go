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
}

// Check refuses what the operator did not allow, naming each field and the
// flag that would permit it. Errors wrap ErrPolicy.
func (p Policy) Check(c *Config) error {
	if c == nil {
		return errors.New("policy check: no config")
	}
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
	if len(refused) == 0 {
		return nil
	}
	return fmt.Errorf("config %s: %w", c.name(), policyError(strings.Join(refused, "; ")))
}

// policyError is the joined message; it matches ErrPolicy with errors.Is
// without repeating the sentinel's text at the front.
type policyError string

func (e policyError) Error() string        { return string(e) }
func (e policyError) Is(target error) bool { return target == ErrPolicy }
