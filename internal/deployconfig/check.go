package deployconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// Report is what CheckFile finds in a config file.
type Report struct {
	// ID is the file's id: the name it is launched by once uploaded.
	ID string
	// Object is the name to upload it as, under the configs' prefix.
	Object string
	// Config is the config as read, defaults applied (nil when the file is
	// not a JSON object).
	Config *Config
	// Problems are everything wrong with it, each naming its field: what a
	// launch would refuse. Empty: it would be accepted.
	Problems []string
}

// CheckFile reads a config file as a launch would, without a source or
// Docker: the strict parse, the validation, the operator's policy and, when
// static is not nil, the env_file keys against the operator's env file. It
// reports every problem at once. In the wunderproxy layout a file in
// wunderproxy's format is read as such, with its MD5 for an id.
func CheckFile(data []byte, layout Layout, policy Policy, static map[string]string) Report {
	r := Report{ID: ID(data)}
	r.Object = nativeNaming.name(r.ID)
	var p *problems
	if layout == LayoutWunderproxy && isWunderproxy(data) {
		r.ID = wunderproxyNaming.sum(data)
		r.Object = wunderproxyNaming.name(r.ID)
		cfg, err := parseWunderproxy(data)
		p = &problems{}
		if err != nil {
			p.list = splitProblems(err)
		}
		r.Config = cfg
	} else {
		r.Config, p = parseProblems(data)
	}
	if r.Config == nil {
		r.Problems = p.list
		return r
	}
	r.Config.ID = r.ID
	p.list = append(p.list, policy.refusals(r.Config)...)
	if static != nil {
		if _, err := r.Config.ResolveEnv(static); err != nil {
			_, msg, _ := strings.Cut(err.Error(), ErrInvalid.Error()+": ")
			p.list = append(p.list, msg)
		}
	}
	r.Problems = p.list
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return r
}

// isWunderproxy says whether a JSON object has wunderproxy's
// ContainerConfig key (parseEither's test).
func isWunderproxy(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(data), &m) != nil {
		return false
	}
	for k := range m {
		if strings.EqualFold(k, "ContainerConfig") {
			return true
		}
	}
	return false
}

// splitProblems turns a joined ErrInvalid error back into its problems.
func splitProblems(err error) []string {
	msg := err.Error()
	if errors.Is(err, ErrInvalid) {
		if _, rest, ok := strings.Cut(msg, ErrInvalid.Error()+": "); ok {
			msg = rest
		}
	}
	return strings.Split(msg, "; ")
}
