package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/api"
)

// clientConfig is what every API client subcommand is told.
type clientConfig struct {
	api     string
	token   string
	timeout time.Duration
	user    string
	json    bool   // print the API's JSON instead of a summary
	limit   int    // history only
	pidFile string // upgrade only
}

// Defaults of the client settings.
const (
	defaultAPIURL        = "http://127.0.0.1:8001"
	defaultClientTimeout = "15m"
	defaultHistoryLimit  = "20"
)

func clientSettings(cmd string, c *clientConfig) *settings {
	s := &settings{cmd: cmd}
	s.str(&c.api, "api", []string{"SWITCHYARD_API"}, defaultAPIURL, "management API URL (host:port means http://host:port)")
	s.str(&c.token, "api-token", []string{"SWITCHYARD_API_TOKEN"}, "", "bearer token the API requires")
	s.duration(&c.timeout, "timeout", []string{"SWITCHYARD_CLIENT_TIMEOUT"}, defaultClientTimeout, "how long to wait for each API call (a launch pulls an image and waits for health checks)")
	s.str(&c.user, "user", []string{"SWITCHYARD_USER"}, defaultUser(), "who you are, for the deployment history (sent as "+api.UserHeader+")")
	s.boolean(&c.json, "json", nil, "false", "print the API's JSON instead of a summary")
	if cmd == "upgrade" {
		s.str(&c.pidFile, "pid-file", []string{"SWITCHYARD_PID_FILE"}, "", "signal the process this pid file names (SIGUSR2) instead of calling the API")
	}
	if cmd == "history" {
		s.integer(&c.limit, "limit", nil, defaultHistoryLimit, "how many deployments to show, newest first", 1)
	}
	return s
}

// clientCommand is one API client subcommand; its run is in the file
// named for it.
type clientCommand struct {
	args    string // positional arguments, for usage
	nargs   int    // how many; -1: any (joined by the command)
	summary string
	run     func(ctx context.Context, r *clientRun, args []string) error
}

var clientCommands = map[string]clientCommand{
	"launch":   {"ID", 1, "launch the deployment config ID (or an unambiguous prefix) and wait until it is healthy", runLaunch},
	"switch":   {"CONTAINER", 1, "make a launched container active (container id, short id or config id), then drain and stop the old one", runSwitch},
	"deploy":   {"ID", 1, "launch the config ID, then switch to the launched container", runDeploy},
	"rollback": {"", 0, "launch the previous config and switch to it (it cancels a running launch, switch or restart first)", runRollback},
	"discard":  {"CONTAINER", 1, "remove a launched container nobody will switch to", runDiscard},
	"cancel":   {"[OPERATION]", -1, "cancel the running operation (only OPERATION, as status shows it, when given) and wait until it has cleaned up", runCancel},
	"status":   {"", 0, "show the active container and the proxy's figures; exit 1 when not healthy, 3 when the API cannot tell", runStatus},
	"history":  {"", 0, "show recent deployments, newest first", runHistory},
	"upgrade": {"", 0, "start the switchyard binary now on disk as a new process that takes over the listening sockets " +
		"and the app without refusing a connection; exit 0 once it serves (through the API, or with --pid-file by SIGUSR2)", runUpgrade},
}

// clientRun is what a client subcommand runs with.
type clientRun struct {
	api    *api.Client
	cfg    *clientConfig
	stdout io.Writer // the answer: a summary, or the API's JSON
	stderr io.Writer // progress and errors
}

// runClient runs an API client subcommand and returns the exit code: 0 ok,
// 1 failed, 2 usage error.
func runClient(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	cmd := clientCommands[name]
	cfg := &clientConfig{}
	s := clientSettings(name, cfg)
	rest, help, err := parseSubcommand(name, cmd.args, cmd.summary, s, args, stdout)
	if help {
		return 0
	}
	if err == nil && len(rest) != cmd.nargs && cmd.nargs >= 0 {
		err = fmt.Errorf("want %d argument(s) %s, got %q (run switchyard %s --help)", cmd.nargs, cmd.args, rest, name)
	}
	var c *api.Client
	if err == nil {
		c, err = api.NewClient(cfg.api, api.ClientOptions{Token: cfg.token, User: cfg.user, Timeout: cfg.timeout})
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %s: %v\n", name, err)
		return 2
	}
	// Ctrl-C (or SIGTERM) ends the wait for the API; each command says what
	// that leaves on the server. A second Ctrl-C kills the client at once.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	if err := cmd.run(ctx, &clientRun{api: c, cfg: cfg, stdout: stdout, stderr: stderr}, rest); err != nil {
		if ctx.Err() != nil && !errors.As(err, new(*exitError)) {
			err = &exitError{exitInterrupted, fmt.Errorf("interrupted: %w", err)}
		}
		printError(stderr, err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

// exitError makes a client command exit with code instead of 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes beyond 0 (done), 1 (failed) and 2 (usage).
const (
	exitUnknown     = 3   // status: the API gave no answer about the app's health
	exitInterrupted = 130 // Ctrl-C, as shells report SIGINT
)

// printError prints the one-line failure and, below it, any further lines
// of the API's message (an unhealthy container's last log lines), then
// what to do next if the command knows.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "switchyard: %v\n", err)
	var ae *api.Error
	if errors.As(err, &ae) {
		for _, l := range ae.Details() {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	var he *hintError
	if errors.As(err, &he) {
		fmt.Fprintln(w, he.hint)
	}
}

// hintError adds what to do next to an error, printed after it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// defaultUser is $USER@hostname, cut to what the API accepts.
func defaultUser() string {
	u := os.Getenv("USER")
	if u == "" {
		u = "unknown"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		u += "@" + h
	}
	return string([]rune(u)[:min(utf8.RuneCountInString(u), api.MaxUserLen)])
}
