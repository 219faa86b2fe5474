package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestParseServeFleet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c *serveConfig)
	}{
		{name: "off by default", args: nil, check: func(t *testing.T, c *serveConfig) {
			if c.fleet.follow || c.fleet.proxyFallback(c) != nil || c.hostID != "" {
				t.Fatalf("fleet %+v host %q", c.fleet, c.hostID)
			}
		}},
		{name: "follow an S3 bucket", args: []string{"--configs", "s3://b/app", "--follow", "--host-id", "web-1", "--listen", "10.0.0.1:8000"},
			check: func(t *testing.T, c *serveConfig) {
				fb := c.fleet.proxyFallback(c)
				if !c.fleet.follow || fb == nil || fb.Origin != "web-1" || c.fleet.advertiseAddr(c.listen) != "10.0.0.1:8000" {
					t.Fatalf("fleet %+v", c.fleet)
				}
			}},
		{name: "static peers, without follow", args: []string{"--peers", "10.0.0.2:8000, 10.0.0.3:8000"},
			check: func(t *testing.T, c *serveConfig) {
				fb := c.fleet.proxyFallback(c)
				if fb == nil || len(fb.Peers()) != 2 {
					t.Fatalf("fallback %+v", fb)
				}
			}},
		{name: "peers with fallback off", args: []string{"--peers", "10.0.0.2:8000", "--peer-fallback=false"},
			check: func(t *testing.T, c *serveConfig) {
				if c.fleet.proxyFallback(c) != nil {
					t.Fatal("fallback on")
				}
			}},
		{name: "advertise given", args: []string{"--configs", "s3://b/app", "--follow", "--advertise", "web-1.internal:8000"},
			check: func(t *testing.T, c *serveConfig) {
				if c.fleet.advertiseAddr(c.listen) != "web-1.internal:8000" {
					t.Fatal(c.fleet.advertiseAddr(c.listen))
				}
			}},
		{name: "follow needs S3", args: []string{"--follow"}, wantErr: "use s3://bucket/prefix"},
		{name: "follow needs a manager", args: []string{"--follow", "--upstream", "a:1", "--configs", "s3://b/app"}, wantErr: "no deployments to follow"},
		{name: "bad host id", args: []string{"--host-id", "web/1"}, wantErr: "host-id"},
		{name: "bad peer", args: []string{"--peers", "nohost"}, wantErr: "want host:port"},
		{name: "bad advertise", args: []string{"--advertise", "x"}, wantErr: "advertise"},
		{name: "zero poll interval", args: []string{"--poll-interval", "0s"}, wantErr: "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServe(tc.args, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestAdvertiseAddr(t *testing.T) {
	f := &fleetSettings{}
	for listen, want := range map[string]string{"127.0.0.2:8000": "127.0.0.2:8000", "web:80": "web:80", "bad": ""} {
		if got := f.advertiseAddr(listen); got != want {
			t.Errorf("advertiseAddr(%q) = %q, want %q", listen, got, want)
		}
	}
	if got := f.advertiseAddr(":8000"); got != "" && !strings.HasSuffix(got, ":8000") {
		t.Errorf("advertiseAddr(:8000) = %q", got)
	}
}

// The fleet CI commands refuse bad usage before touching S3.
func TestBucketCommandsUsage(t *testing.T) {
	t.Setenv("SWITCHYARD_CONFIGS", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish"}, "want FILE"},
		{[]string{"release"}, "want ID | --previous"},
		{[]string{"release", "--previous", "abc"}, "want ID | --previous"},
		{[]string{"release", "abc"}, "give the fleet's s3://BUCKET/PREFIX"},
		{[]string{"fleet", "--configs", "./dir"}, "give the fleet's s3://BUCKET/PREFIX"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"release", "--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "--wait") {
		t.Errorf("release --help: %d %s", code, out.String())
	}
}
