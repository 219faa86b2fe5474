package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/deployconfig"
	"github.com/switchyard/switchyard/internal/fleet"
)

// bucketConfig is what the fleet's CI commands (publish, release, fleet)
// are told: where the configs are, as serve's --configs and S3 settings,
// read with the standard AWS credential chain.
type bucketConfig struct {
	configs, endpoint, region, pathStyle string
	timeout                              time.Duration
	user                                 string
	json, wait, previous                 bool
}

// defaultWaitTimeout bounds release --wait.
const defaultWaitTimeout = "15m"

func bucketSettings(cmd string, c *bucketConfig) *settings {
	s := &settings{cmd: cmd}
	s.str(&c.configs, "configs", []string{"SWITCHYARD_CONFIGS"}, "", "the fleet's configs: s3://BUCKET/PREFIX, as the hosts' --configs (required)")
	s.str(&c.endpoint, "s3-endpoint", []string{"SWITCHYARD_S3_ENDPOINT", "AWS_ENDPOINT_URL"}, "", "S3-compatible endpoint URL (default: AWS)")
	s.str(&c.region, "s3-region", []string{"SWITCHYARD_S3_REGION", "AWS_REGION"}, "", "S3 region (default: the AWS config's, else us-east-1)")
	s.str(&c.pathStyle, "s3-path-style", []string{"SWITCHYARD_S3_PATH_STYLE"}, "auto", "path-style S3 addressing: true, false, or auto (true when --s3-endpoint is set)")
	switch cmd {
	case "release":
		s.boolean(&c.wait, "wait", nil, "false", "wait until every live host serves the release healthy (exit 0) or one fails to launch it (exit 1); progress on stderr")
		s.boolean(&c.previous, "previous", nil, "false", "release what current.json names as released before (no ID)")
		s.duration(&c.timeout, "timeout", []string{"SWITCHYARD_CLIENT_TIMEOUT"}, defaultWaitTimeout, "how long --wait waits")
		s.str(&c.user, "user", []string{"SWITCHYARD_USER"}, defaultUser(), "who releases, written into current.json")
	case "fleet":
		s.boolean(&c.json, "json", nil, "false", "print the heartbeats as JSON")
	}
	return s
}

// bucketCommand is a fleet CI command: its usage, and its run.
type bucketCommand struct {
	args, summary string
	nargs         func(c *bucketConfig) int
	run           func(ctx context.Context, c *bucketConfig, b *deployconfig.Bucket, args []string, stdout, stderr io.Writer) error
}

var bucketCommands = map[string]bucketCommand{
	"publish": {"FILE", "upload a config file under its SHA-256 id (create-only) and print the id", func(*bucketConfig) int { return 1 }, runPublish},
	"release": {"ID | --previous", "make ID what every host of the fleet runs: current.json, written with a conditional PUT",
		func(c *bucketConfig) int {
			if c.previous {
				return 0
			}
			return 1
		}, runRelease},
	"fleet": {"", "show the fleet's hosts from their heartbeats", func(*bucketConfig) int { return 0 }, runFleet},
}

// runBucket runs a fleet CI command: exit 0 done, 1 failed, 2 usage.
func runBucket(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	cmd := bucketCommands[name]
	c := &bucketConfig{}
	s := bucketSettings(name, c)
	rest, help, err := parseSubcommand(name, cmd.args, cmd.summary, s, args, stdout)
	if help {
		return 0
	}
	if err == nil && len(rest) != cmd.nargs(c) {
		err = fmt.Errorf("want %s, got %q (run switchyard %s --help)", cmd.args, rest, name)
	}
	if err == nil && !strings.HasPrefix(c.configs, "s3://") {
		err = fmt.Errorf("--configs %q: give the fleet's s3://BUCKET/PREFIX (or SWITCHYARD_CONFIGS)", c.configs)
	}
	var b *deployconfig.Bucket
	if err == nil {
		b, err = deployconfig.OpenBucket(ctx, c.configs, c.openOptions())
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, c, b, rest, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "switchyard: %s: %v\n", name, err)
		return 1
	}
	return 0
}

func (c *bucketConfig) openOptions() deployconfig.OpenOptions {
	return deployconfig.OpenOptions{Endpoint: c.endpoint, Region: c.region,
		PathStyle: c.pathStyle == "true" || (c.pathStyle == "auto" && c.endpoint != "")}
}

// store is the bucket as the fleet package sees it.
var _ fleet.Store = (*deployconfig.Bucket)(nil)
