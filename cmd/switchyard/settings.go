package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// setting is one configuration knob: a flag, the environment variables that
// set it when the flag is absent (first match wins), and its default.
type setting struct {
	flag  string
	envs  []string
	def   string
	usage string
	set   func(string) error
	// isBool lets the flag stand alone (--allow-privileged means true).
	isBool bool
}

// settings parses flags, then the environment, then defaults, in that order
// of precedence, and names the setting in every error.
type settings struct {
	cmd  string
	list []*setting
	// given are the settings a flag or the environment set (not a
	// default); flagged those a flag set.
	given, flagged map[string]bool
}

func (s *settings) add(flagName string, envs []string, def, usage string, set func(string) error) {
	s.list = append(s.list, &setting{flag: flagName, envs: envs, def: def, usage: usage, set: set})
}

func (s *settings) str(p *string, flagName string, envs []string, def, usage string) {
	s.add(flagName, envs, def, usage, func(v string) error { *p = v; return nil })
}

func (s *settings) boolean(p *bool, flagName string, envs []string, def, usage string) {
	s.add(flagName, envs, def, usage, func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p = b
		return nil
	})
	s.list[len(s.list)-1].isBool = true
}

func (s *settings) integer(p *int, flagName string, envs []string, def, usage string, min int) {
	s.add(flagName, envs, def, usage, func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < min {
			return fmt.Errorf("%d: must be at least %d", n, min)
		}
		*p = n
		return nil
	})
}

func (s *settings) duration(p *time.Duration, flagName string, envs []string, def, usage string) {
	s.add(flagName, envs, def, usage, func(v string) error {
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	})
}

// parseDuration takes a Go duration ("500ms", "3s", "1m") or, as
// gunicorn-proxy's QUEUE_TIMEOUT does, a bare number of milliseconds.
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(n) * time.Millisecond
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, fmt.Errorf("%q is not a duration (want milliseconds as a bare number, or 500ms, 3s, 1m)", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", v)
	}
	return d, nil
}

func parseCIDRs(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// flagValue adapts a setting to flag.Value.
type flagValue struct{ s *setting }

func (f flagValue) String() string     { return "" }
func (f flagValue) Set(v string) error { return f.s.set(v) }
func (f flagValue) IsBoolFlag() bool   { return f.s.isBool }

// parse applies args, then the environment (getenv), then defaults. It
// returns the positional arguments. Errors are one line naming the setting.
func (s *settings) parse(args []string, getenv func(string) string) ([]string, error) {
	fs := flag.NewFlagSet(s.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, st := range s.list {
		fs.Var(flagValue{st}, st.flag, st.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errors.New(strings.Replace(err.Error(), "flag provided but not defined: -", "unknown flag --", 1))
	}
	seen := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	s.given, s.flagged = seen, maps.Clone(seen)
	for _, st := range s.list {
		if seen[st.flag] {
			continue
		}
		applied := false
		for _, env := range st.envs {
			if v := getenv(env); v != "" {
				if err := st.set(v); err != nil {
					return nil, fmt.Errorf("%s=%s: %v", env, v, err)
				}
				applied, seen[st.flag] = true, true
				break
			}
		}
		if !applied && st.def != "" {
			if err := st.set(st.def); err != nil {
				return nil, fmt.Errorf("default of --%s: %v", st.flag, err)
			}
		}
	}
	return fs.Args(), nil
}

// lookup is the setting of a flag name, nil when there is none.
func (s *settings) lookup(flagName string) *setting {
	for _, st := range s.list {
		if st.flag == flagName {
			return st
		}
	}
	return nil
}

// orderArgs moves flags before positional arguments, so that
// `switchyard launch ID --api host:8001` works as well as the flag package's
// flags-first order. A setting's flag takes the next argument as its value,
// but a boolean one stands alone (--json; --json=false to turn it off).
func orderArgs(args []string, s *settings) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		if st := s.lookup(strings.TrimLeft(a, "-")); st != nil && !st.isBool && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), pos...)
}

// usage prints the settings as a table for --help.
func (s *settings) usage(w io.Writer) {
	for _, st := range s.list {
		env := cmp.Or(strings.Join(st.envs, ", "), "-")
		def := cmp.Or(st.def, "-")
		fmt.Fprintf(w, "  --%-22s %s\n  %-24s env: %s; default: %s\n", st.flag, st.usage, "", env, def)
	}
}

// headersFromEnv reads gunicorn-proxy's HEADER_* variables: HEADER_X_FRAME_OPTIONS=DENY
// adds "X-Frame-Options: DENY" to every response.
func headersFromEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "HEADER_") || len(k) == len("HEADER_") {
			continue
		}
		out = append(out, strings.ReplaceAll(k[len("HEADER_"):], "_", "-")+": "+v)
	}
	sort.Strings(out)
	return out
}
