package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/api"
	"github.com/switchyard/switchyard/internal/manager"
)

// clientConfig is what every API client subcommand is told.
type clientConfig struct {
	api     string
	token   string
	timeout time.Duration
	user    string
	json    bool // print the API's JSON instead of a summary
	limit   int  // history only
}

func clientSettings(cmd string, c *clientConfig) *settings {
	s := &settings{cmd: cmd}
	s.str(&c.api, "api", []string{"SWITCHYARD_API"}, "http://127.0.0.1:8001", "management API URL (host:port means http://host:port)")
	s.str(&c.token, "api-token", []string{"SWITCHYARD_API_TOKEN"}, "", "bearer token the API requires")
	s.duration(&c.timeout, "timeout", []string{"SWITCHYARD_CLIENT_TIMEOUT"}, "15m", "how long to wait for each API call (a launch pulls an image and waits for health checks)")
	s.str(&c.user, "user", []string{"SWITCHYARD_USER"}, defaultUser(), "who you are, for the deployment history (sent as "+api.UserHeader+")")
	if cmd == "history" {
		s.integer(&c.limit, "limit", nil, "20", "how many deployments to show, newest first", 1)
	}
	return s
}

// clientCommand is one API client subcommand.
type clientCommand struct {
	args    string // positional arguments, for usage
	nargs   int
	summary string
	run     func(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error
}

var clientCommands = map[string]clientCommand{
	"launch":   {"ID", 1, "launch the deployment config ID (or an unambiguous prefix) and wait until it is healthy", runLaunch},
	"switch":   {"CONTAINER", 1, "make a launched container active (container id, short id or config id), then drain and stop the old one", runSwitch},
	"deploy":   {"ID", 1, "launch the config ID, then switch to the launched container", runDeploy},
	"rollback": {"", 0, "launch the previous config and switch to it", runRollback},
	"status":   {"", 0, "show the active container and the proxy's figures; exit 1 when not healthy", runStatus},
	"history":  {"", 0, "show recent deployments, newest first", runHistory},
}

// errNotHealthy makes `status` exit 1 once it has printed an unhealthy
// status, so scripts can test it.
var errNotHealthy = errors.New("not healthy (HTTP 503)")

// runClient runs an API client subcommand and returns the exit code: 0 ok,
// 1 failed, 2 usage error.
func runClient(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	cmd := clientCommands[name]
	cfg := &clientConfig{}
	s := clientSettings(name, cfg)
	if wantsHelp(args) {
		fmt.Fprintf(stdout, "Usage: switchyard %s [flags] %s\n\n%s.\n\nSettings (flag, then environment, then default):\n", name, cmd.args, upperFirst(cmd.summary))
		fmt.Fprintf(stdout, "  --%-22s print the API's JSON instead of a summary\n", "json")
		s.usage(stdout)
		return 0
	}
	args, cfg.json = takeBoolFlag(args, "json")
	rest, err := s.parse(orderArgs(args, s), os.Getenv)
	if err == nil && len(rest) != cmd.nargs {
		err = fmt.Errorf("%s: want %d argument(s) %s, got %q (run switchyard %s --help)", name, cmd.nargs, cmd.args, rest, name)
	}
	var c *apiClient
	if err == nil {
		c, err = newAPIClient(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 2
	}
	if err := cmd.run(ctx, c, cfg, rest, stdout, stderr); err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

// printError prints the one-line failure and, below it, any further lines
// of the API's message (an unhealthy container's last log lines).
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "switchyard: %v\n", err)
	var ae *apiError
	if errors.As(err, &ae) {
		for _, l := range ae.details() {
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

func runLaunch(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	info, raw, err := launch(ctx, c, args[0], stderr)
	if err != nil {
		return err
	}
	if cfg.json {
		_, err = stdout.Write(raw)
		return err
	}
	fmt.Fprintln(stdout, containerLine("launched", info))
	fmt.Fprintf(stderr, "make it active with: switchyard switch %s\n", shortID(info.ID, 12))
	return nil
}

func launch(ctx context.Context, c *apiClient, id string, stderr io.Writer) (manager.ContainerInfo, []byte, error) {
	fmt.Fprintf(stderr, "launching %s (config), this pulls the image and waits for health checks\n", progressID(id, 8))
	var info manager.ContainerInfo
	raw, err := c.call(ctx, http.MethodPost, "/launch", api.LaunchRequest{ID: id}, &info)
	if err != nil {
		return info, nil, fmt.Errorf("launch %s: %w", shortID(id, 8), err)
	}
	return info, raw, nil
}

func runSwitch(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	return switchTo(ctx, c, cfg, args[0], stdout, stderr)
}

func switchTo(ctx context.Context, c *apiClient, cfg *clientConfig, ref string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "switching to %s, then draining and stopping the old container\n", progressID(ref, 12))
	var res manager.SwitchResult
	raw, err := c.call(ctx, http.MethodPost, "/switch", api.SwitchRequest{Container: ref}, &res)
	if err != nil {
		return fmt.Errorf("switch %s: %w", shortID(ref, 12), err)
	}
	return printSwitch(stdout, cfg, raw, res)
}

func runDeploy(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "deploy step 1/2: ")
	info, _, err := launch(ctx, c, args[0], stderr)
	if err != nil {
		return &hintError{err, "nothing was switched: the active container keeps serving"}
	}
	if !cfg.json {
		fmt.Fprintln(stdout, containerLine("launched", info))
	}
	fmt.Fprintf(stderr, "deploy step 2/2: ")
	if err := switchTo(ctx, c, cfg, info.ID, stdout, stderr); err != nil {
		return &hintError{err, fmt.Sprintf("container %s was launched but is not active; see switchyard status, retry with: switchyard switch %s",
			shortID(info.ID, 12), shortID(info.ID, 12))}
	}
	return nil
}

func runRollback(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintln(stderr, "rolling back: launching the previous config and switching to it")
	var res manager.SwitchResult
	raw, err := c.call(ctx, http.MethodPost, "/rollback", nil, &res)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return printSwitch(stdout, cfg, raw, res)
}

func printSwitch(w io.Writer, cfg *clientConfig, raw []byte, res manager.SwitchResult) error {
	if cfg.json {
		_, err := w.Write(raw)
		return err
	}
	fmt.Fprintln(w, containerLine("active  ", res.Active))
	switch {
	case res.Previous == nil:
		fmt.Fprintln(w, "previous none")
	case res.Drained:
		fmt.Fprintf(w, "previous %s stopped after its requests finished (drained in %s)\n",
			shortID(res.Previous.ID, 12), humanDuration(res.DrainFor))
	default:
		fmt.Fprintf(w, "previous %s stopped when the drain timeout passed (%s), with requests still in flight\n",
			shortID(res.Previous.ID, 12), humanDuration(res.DrainFor))
	}
	return nil
}

func runStatus(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	var st api.StatusResponse
	raw, err := c.call(ctx, http.MethodGet, "/status", nil, &st, http.StatusServiceUnavailable)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if cfg.json {
		stdout.Write(raw)
	} else {
		printStatus(stdout, st)
	}
	if !st.Healthy {
		return fmt.Errorf("status: %w", errNotHealthy)
	}
	return nil
}

// printStatus writes the readable summary of /status.
func printStatus(w io.Writer, st api.StatusResponse) {
	now := st.Started.Add(st.Uptime) // the server's clock, not ours
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "app\t%s (switchyard %s, up %s)\n", st.App, st.Version, humanDuration(st.Uptime))
	switch {
	case st.Healthy:
		fmt.Fprintf(tw, "health\thealthy\n")
	case st.Active == nil:
		fmt.Fprintf(tw, "health\tNOT HEALTHY: no active container\n")
	default:
		fmt.Fprintf(tw, "health\tNOT HEALTHY: active container is %s\n", st.Active.Health)
	}
	if a := st.Active; a != nil {
		fmt.Fprintf(tw, "active\t%s  image %s  config %s  %s  up %s  in flight %d\n", shortID(a.ID, 12), a.Image,
			shortID(a.ConfigID, 8), a.Health, humanDuration(now.Sub(a.Started)), a.InFlight)
	} else {
		fmt.Fprintf(tw, "active\tnone\n")
	}
	if st.Operation != "" {
		fmt.Fprintf(tw, "running\t%s\n", st.Operation)
	}
	p := st.Proxy
	fmt.Fprintf(tw, "requests\t%d  in flight %d  queued %d  shed %d  failed %d\n", p.Requests, p.InFlight, p.Queued, p.Shed, p.Failed)
	codes := slices.Sorted(maps.Keys(p.Codes))
	var cs []string
	for _, code := range codes {
		cs = append(cs, fmt.Sprintf("%d: %d", code, p.Codes[code]))
	}
	if len(cs) == 0 {
		cs = []string{"none yet"}
	}
	fmt.Fprintf(tw, "codes\t%s\n", strings.Join(cs, "  "))
	for _, name := range []string{"queue", "app", "total"} {
		if l, ok := p.Latency[name]; ok && l.N > 0 {
			fmt.Fprintf(tw, "%s ms\tp50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (%d)\n", name, l.P50, l.P90, l.P99, l.Max, l.N)
		}
	}
	if st.Previous != "" {
		fmt.Fprintf(tw, "previous\tconfig %s (what rollback launches)\n", shortID(st.Previous, 8))
	}
	fmt.Fprintf(tw, "configs\t%s\n", st.Source)
	tw.Flush()

	fmt.Fprintf(w, "\nlaunched containers (%d):\n", len(st.Launched))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONTAINER\tIMAGE\tCONFIG\tHEALTH\tUP\tIN FLIGHT")
	for _, c := range st.Launched {
		mark := " " // "*" marks the active one, as git branch does
		if st.Active != nil && c.ID == st.Active.ID {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%d\n", mark, shortID(c.ID, 12), c.Image, shortID(c.ConfigID, 8),
			c.Health, humanDuration(now.Sub(c.Started)), c.InFlight)
	}
	tw.Flush()
}

func runHistory(ctx context.Context, c *apiClient, cfg *clientConfig, args []string, stdout, stderr io.Writer) error {
	var h api.DeploymentsResponse
	raw, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/deployments?limit=%d", cfg.limit), nil, &h)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if cfg.json {
		_, err = stdout.Write(raw)
		return err
	}
	if len(h.Deployments) == 0 {
		fmt.Fprintln(stdout, "no deployments yet")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tRESULT\tCONFIG\tCONTAINER\tWHO\tTOOK\tERROR")
	for _, e := range h.Deployments {
		errLine, _, _ := strings.Cut(e.Error, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Action, e.Result,
			orDash(shortID(e.ConfigID, 8)), orDash(shortID(e.Container, 12)), orDash(e.Who), humanDuration(e.Duration), shorten(errLine, 80))
	}
	return tw.Flush()
}

// containerLine is one container on one line, after label.
func containerLine(label string, c manager.ContainerInfo) string {
	return fmt.Sprintf("%s %s  image %s  config %s  %s  at %s", label, shortID(c.ID, 12), c.Image,
		shortID(c.ConfigID, 8), orDash(string(c.Health)), orDash(c.Addr))
}

// apiClient calls the management API.
type apiClient struct {
	base    string // URL without a trailing slash
	token   string
	user    string
	timeout time.Duration
	http    *http.Client
}

func newAPIClient(cfg *clientConfig) (*apiClient, error) {
	base, err := apiBaseURL(cfg.api)
	if err != nil {
		return nil, err
	}
	if err := checkUser(cfg.user); err != nil {
		return nil, err
	}
	return &apiClient{base: base, token: cfg.token, user: cfg.user, timeout: cfg.timeout, http: &http.Client{}}, nil
}

// apiBaseURL accepts a URL or, for convenience, host:port (":8001" means
// the loopback address).
func apiBaseURL(v string) (string, error) {
	s := strings.TrimSpace(v)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--api %q: want http://host:port (or host:port)", v)
	}
	if u.Hostname() == "" {
		u.Host = "127.0.0.1" + u.Host
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// checkUser applies the API's limits to --user, so a bad value is a usage
// error here rather than a 400 there.
func checkUser(u string) error {
	if utf8.RuneCountInString(u) > api.MaxUserLen || !utf8.ValidString(u) ||
		strings.ContainsFunc(u, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return fmt.Errorf("--user %q: want at most %d printable characters", shorten(u, 40), api.MaxUserLen)
	}
	return nil
}

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

// apiError is an error answer of the API.
type apiError struct {
	status int
	kind   string
	msg    string
}

// Error is one line: the message's first line, the status and the kind.
func (e *apiError) Error() string {
	first, _, _ := strings.Cut(e.msg, "\n")
	kind := e.kind
	if kind == "" {
		kind = http.StatusText(e.status)
	}
	return fmt.Sprintf("%s (HTTP %d %s)", first, e.status, kind)
}

// details are the message's further lines.
func (e *apiError) details() []string {
	_, rest, _ := strings.Cut(strings.TrimRight(e.msg, "\n"), "\n")
	if rest == "" {
		return nil
	}
	return strings.Split(rest, "\n")
}

// call sends in (JSON, unless nil) and decodes a 200 answer, or one of the
// extra ok statuses, into out. It returns the raw answer for --json.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any, ok ...int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("API request %s %s: %w", method, c.base+path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "switchyard-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.user != "" {
		req.Header.Set(api.UserHeader, c.user)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base+path, c.transportError(ctx, err))
	}
	if resp.StatusCode != http.StatusOK && !slices.Contains(ok, resp.StatusCode) {
		var e api.ErrorResponse
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			// Not our API (a proxy in between, a wrong --api): show its start.
			e = api.ErrorResponse{Error: fmt.Sprintf("unexpected answer from %s: %q", c.base+path, shorten(string(raw), 120))}
		}
		return nil, &apiError{status: resp.StatusCode, kind: e.Kind, msg: e.Error}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("answer of %s is not the expected JSON (is --api the switchyard API?): %w", c.base+path, err)
	}
	return raw, nil
}

// transportError says what a failed round trip means for the user.
func (c *apiClient) transportError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the switchyard API at %s: connection refused; is switchyard serve running there? (set --api or SWITCHYARD_API)", c.base)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no answer from the API at %s within %s (--timeout); the operation may still be running: check switchyard status", c.base, c.timeout)
	}
	return fmt.Errorf("API at %s: %w", c.base, err)
}

// takeBoolFlag removes --name (or -name, --name=true/false) from args:
// settings flags all take a value, a switch like --json does not.
func takeBoolFlag(args []string, name string) ([]string, bool) {
	var out []string
	set := false
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...), set
		}
		switch strings.TrimLeft(a, "-") {
		case name, name + "=true", name + "=1":
			if strings.HasPrefix(a, "-") {
				set = true
				continue
			}
		case name + "=false", name + "=0":
			if strings.HasPrefix(a, "-") {
				set = false
				continue
			}
		}
		out = append(out, a)
	}
	return out, set
}

// orderArgs moves flags before positional arguments, so that
// `switchyard launch ID --api host:8001` works as well as the flag package's
// flags-first order.
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
		if name := strings.TrimLeft(a, "-"); !strings.Contains(name, "=") && i+1 < len(args) {
			for _, st := range s.list {
				if st.flag == name { // it takes the next argument as its value
					i++
					flags = append(flags, args[i])
				}
			}
		}
	}
	return append(append(flags, "--"), pos...)
}

// shortID cuts a hex id to n characters, as docker ps does; anything else
// (a name, a short prefix) is shown whole.
func shortID(id string, n int) string {
	if len(id) > n && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:n]
	}
	return id
}

// progressID is shortID with an ellipsis when it cut.
func progressID(id string, n int) string {
	if s := shortID(id, n); s != id {
		return s + "…"
	}
	return id
}

// humanDuration rounds d for people: 850ms, 42s, 3m12s, 5h02m, 3d04h.
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
