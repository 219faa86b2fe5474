package deployconfig

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// LoadEnvFile reads the operator's static env file: KEY=VALUE lines, with
// blank lines, "#" comment lines and an optional "export " prefix. Spaces
// around the key and an unquoted value are trimmed; a value in matching
// single or double quotes is taken literally between them (no escapes, no
// inline comments). A malformed line, or a key set twice, is an error naming
// path:line.
func LoadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, maxObjectSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, err := parseEnvLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if first, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s:%d: %s is already set on line %d: keep one", path, n, k, first)
		}
		seen[k] = n
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return env, nil
}

func parseEnvLine(line string) (key, value string, err error) {
	if rest, ok := strings.CutPrefix(line, "export "); ok {
		line = strings.TrimSpace(rest)
	}
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		return "", "", fmt.Errorf("want KEY=VALUE, got %q", line)
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if msg := checkEnvKey(k); msg != "" {
		return "", "", fmt.Errorf("key %q: %s", k, msg)
	}
	if v != "" && (v[0] == '"' || v[0] == '\'') {
		if len(v) < 2 || v[len(v)-1] != v[0] {
			return "", "", fmt.Errorf("%s: the value's opening %c quote is not closed at the end of the line", k, v[0])
		}
		v = v[1 : len(v)-1]
	}
	return k, v, nil
}

// ResolveEnv returns the container environment as sorted "K=V": the keys
// named in c.EnvFile taken from static (the operator's env file), then
// c.Env, which wins. A config in wunderproxy's format takes every key of
// static, as wunderproxy did. A key missing from static is an error naming
// it (wrapping ErrInvalid).
func (c *Config) ResolveEnv(static map[string]string) ([]string, error) {
	env := map[string]string{}
	if c.envFileAll {
		for k, v := range static {
			env[k] = v
		}
	}
	var missing []string
	for _, k := range c.EnvFile {
		v, ok := static[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		env[k] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("config %s: %w: env_file: %s not in the operator's env file: add them there or remove them from env_file",
			c.name(), ErrInvalid, strings.Join(missing, ", "))
	}
	for k, v := range c.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}
