package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchyard/switchyard/internal/deployconfig"
)

// checkConfig is what `switchyard check` is told: the policy flags serve
// takes, and how the configs are named.
type checkConfig struct {
	layout  string
	envFile string
	json    bool
	policy  deployconfig.Policy
}

func checkSettings(c *checkConfig) *settings {
	s := &settings{cmd: "check"}
	s.str(&c.layout, "layout", []string{"SWITCHYARD_LAYOUT"}, deployconfig.LayoutNative.String(), "how configs are named: native (<sha256>.json) or wunderproxy (container.<md5>.json)")
	s.str(&c.envFile, "env-file", []string{"SWITCHYARD_ENV_FILE"}, "", "the operator's static KEY=value file: check the config's env_file keys against it")
	s.boolean(&c.json, "json", nil, "false", "print the report as JSON")
	addPolicySettings(s, &c.policy)
	return s
}

// runCheck is `switchyard check FILE`: it reads a config file as a launch
// would (parse, validation, the operator's policy, env_file keys), offline,
// and prints its id and every problem at once. Exit 0: a launch would
// accept it; 1: it would not; 2: usage.
func runCheck(args []string, stdout, stderr io.Writer) int {
	c := &checkConfig{}
	s := checkSettings(c)
	if wantsHelp(args) {
		fmt.Fprintln(stdout, "Usage: switchyard check [flags] FILE\n\nCheck a deployment config offline, as a launch would; print its id and every problem.\n\nSettings (flag, then environment, then default):")
		s.usage(stdout)
		return 0
	}
	rest, err := s.parse(orderArgs(args, s), os.Getenv)
	if err == nil && len(rest) != 1 {
		err = fmt.Errorf("want one argument FILE, got %q (run switchyard check --help)", rest)
	}
	var layout deployconfig.Layout
	if err == nil {
		layout, err = deployconfig.ParseLayout(c.layout)
	}
	var static map[string]string
	if err == nil && c.envFile != "" {
		static, err = deployconfig.LoadEnvFile(c.envFile)
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: check: %v\n", err)
		return 2
	}
	r := deployconfig.CheckFile(data, layout, c.policy, static)
	if c.json {
		printJSON(stdout, checkReport{ID: r.ID, Object: r.Object, OK: len(r.Problems) == 0, Problems: r.Problems, Config: r.Config})
	} else {
		printCheck(stdout, rest[0], r)
	}
	if len(r.Problems) > 0 {
		return 1
	}
	return 0
}

// checkReport is check's --json output.
type checkReport struct {
	ID       string               `json:"id"`
	Object   string               `json:"object"`
	OK       bool                 `json:"ok"`
	Problems []string             `json:"problems"`
	Config   *deployconfig.Config `json:"config,omitempty"`
}

func printCheck(w io.Writer, file string, r deployconfig.Report) {
	fmt.Fprintf(w, "%s\nid      %s\nupload  <prefix>/%s\n", file, r.ID, r.Object)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "ok: a launch would accept it")
		return
	}
	fmt.Fprintf(w, "%d problem%s: a launch would refuse it\n", len(r.Problems), plural(len(r.Problems)))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(p))
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
