package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Token is the bearer token the API requires; empty: none sent.
	Token string
	// User names the caller in the deployment history (sent as
	// UserHeader); empty: the API uses the caller's address. At most
	// MaxUserLen printable characters.
	User string
	// Timeout bounds each call, on top of its context's deadline. A launch
	// pulls an image and waits for health checks: give it minutes. 0: none.
	Timeout time.Duration
	// HTTP makes the requests. Default: a new http.Client.
	HTTP *http.Client
}

// Client calls a switchyard management API: the typed side of the routes
// New serves. Its errors are an *Error for an error answer, or say why no
// answer came. It is safe for concurrent use.
type Client struct {
	base string // URL without a trailing slash
	o    ClientOptions
}

// NewClient returns a client of the API at addr: a URL such as
// http://127.0.0.1:8001, or host:port (":8001" is the loopback address).
func NewClient(addr string, o ClientOptions) (*Client, error) {
	base, err := baseURL(addr)
	if err != nil {
		return nil, err
	}
	if !validUser(o.User) {
		return nil, fmt.Errorf("--user %q: want at most %d printable characters", shorten(o.User, 40), MaxUserLen)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	return &Client{base: base, o: o}, nil
}

// Launch is POST /launch: it returns when the container is healthy.
func (c *Client) Launch(ctx context.Context, id string) (ContainerInfo, error) {
	var info ContainerInfo
	err := c.call(ctx, http.MethodPost, "/launch", LaunchRequest{ID: id}, &info)
	return info, err
}

// Switch is POST /switch: it returns when the old container is gone.
func (c *Client) Switch(ctx context.Context, ref string) (SwitchResult, error) {
	var res SwitchResult
	err := c.call(ctx, http.MethodPost, "/switch", SwitchRequest{Container: ref}, &res)
	return res, err
}

// Upgrade is POST /upgrade: the binary on disk takes over from the
// running switchyard.
func (c *Client) Upgrade(ctx context.Context) (UpgradeResult, error) {
	var res UpgradeResult
	err := c.call(ctx, http.MethodPost, "/upgrade", struct{}{}, &res)
	return res, err
}

// Rollback is POST /rollback.
func (c *Client) Rollback(ctx context.Context) (SwitchResult, error) {
	var res SwitchResult
	err := c.call(ctx, http.MethodPost, "/rollback", struct{}{}, &res)
	return res, err
}

// Discard is POST /discard: it removes a launched container.
func (c *Client) Discard(ctx context.Context, ref string) (ContainerInfo, error) {
	var info ContainerInfo
	err := c.call(ctx, http.MethodPost, "/discard", DiscardRequest{Container: ref}, &info)
	return info, err
}

// Cancel is POST /cancel: it cancels the running operation (op, when not
// empty: only that one) and returns, once it has ended, its name.
func (c *Client) Cancel(ctx context.Context, op string) (string, error) {
	var res CancelResponse
	err := c.call(ctx, http.MethodPost, "/cancel", CancelRequest{Operation: op}, &res)
	return res.Cancelled, err
}

// Series is GET /series.
func (c *Client) Series(ctx context.Context) ([]Point, error) {
	var res SeriesResponse
	err := c.call(ctx, http.MethodGet, "/series", nil, &res)
	return res.Points, err
}

// Status is GET /status. An unhealthy app (503, with the same body) is not
// an error: the answer's Healthy says it.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var st StatusResponse
	err := c.call(ctx, http.MethodGet, "/status", nil, &st, http.StatusServiceUnavailable)
	return st, err
}

// History is GET /deployments: the limit most recent events, newest first
// (0: as many as the API keeps).
func (c *Client) History(ctx context.Context, limit int) ([]Event, error) {
	path := "/deployments"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var h DeploymentsResponse
	err := c.call(ctx, http.MethodGet, path, nil, &h)
	return h.Deployments, err
}

// call sends in (JSON, unless nil) and decodes a 200 answer, or one of the
// extra ok statuses, into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any, ok ...int) error {
	if c.o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.Timeout)
		defer cancel()
	}
	// While a switchyard upgrade hands over, operations are refused with
	// 503 upgrade_in_progress, never started: asking again is safe, and the
	// new process answers within seconds.
	deadline := time.Now().Add(upgradeRetry)
	for {
		err := c.callOnce(ctx, method, path, in, out, ok...)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindUpgrading || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// upgradeRetry is how long a call refused by an upgrade in progress is
// tried again.
var upgradeRetry = 30 * time.Second

func (c *Client) callOnce(ctx context.Context, method, path string, in, out any, ok ...int) error {
	req, err := c.request(ctx, method, path, in)
	if err != nil {
		return err
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base+path, c.transportError(ctx, err))
	}
	if resp.StatusCode != http.StatusOK && !slices.Contains(ok, resp.StatusCode) {
		var e ErrorResponse
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			// Not our API (a proxy in between, a wrong address): show its start.
			e = ErrorResponse{Error: fmt.Sprintf("unexpected answer from %s: %q", c.base+path, shorten(string(raw), 120))}
		}
		return &Error{Status: resp.StatusCode, Kind: e.Kind, Message: e.Error}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("answer of %s is not the expected JSON (is --api the switchyard API?): %w", c.base+path, err)
	}
	return nil
}

// request makes the request with the client's headers: a POST always
// carries a JSON body (the API requires its content type).
func (c *Client) request(ctx context.Context, method, path string, in any) (*http.Request, error) {
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
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	if c.o.User != "" {
		req.Header.Set(UserHeader, c.o.User)
	}
	return req, nil
}

// transportError says what a failed round trip means for the user.
func (c *Client) transportError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the switchyard API at %s: connection refused; is switchyard serve running there? (set --api or SWITCHYARD_API)", c.base)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no answer from the API at %s within %s (--timeout); the operation may still be running: check switchyard status", c.base, c.o.Timeout)
	}
	return fmt.Errorf("API at %s: %w", c.base, err)
}

// baseURL accepts a URL or, for convenience, host:port (":8001" means the
// loopback address).
func baseURL(v string) (string, error) {
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
