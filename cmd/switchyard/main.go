// Command switchyard runs the switchyard proxy and deploy manager (`serve`)
// and is the command-line client of its management API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usageText = `switchyard: a load-shedding reverse proxy that deploys an app's containers with zero downtime.

Usage:
  switchyard serve [flags] [UPSTREAM [WORKERS]]   run the proxy (and the deploy manager)
  switchyard launch [flags] ID                    launch deployment config ID and wait until it is healthy
  switchyard switch [flags] CONTAINER             make a launched container active; drain and stop the old one
  switchyard deploy [flags] ID                    launch, then switch to the launched container
  switchyard rollback [flags]                     launch the previous config and switch to it
  switchyard discard [flags] CONTAINER            remove a launched container nobody will switch to
  switchyard cancel [flags] [OPERATION]           cancel the running operation (a launch removes its container)
  switchyard status [flags] [--json]              the active container and the proxy's figures (exit 1: unhealthy, 3: no answer)
  switchyard history [flags] [--json]             recent deployments, newest first
  switchyard publish [flags] FILE                 upload a config to the fleet's bucket under its id (create-only); print the id
  switchyard release [flags] ID [--wait]          make ID what every host of the fleet runs (or --previous)
  switchyard fleet [flags] [--json]               the fleet's hosts from their heartbeats
  switchyard upgrade [flags] [--pid-file FILE]    the binary on disk takes over from the running switchyard, refusing no connection
  switchyard check [flags] FILE                   check a config offline: its id and every problem a launch would find
  switchyard version                              the version of this binary
  switchyard help                                 this text

The client commands talk to the management API: --api (SWITCHYARD_API, default
http://127.0.0.1:8001), --api-token (SWITCHYARD_API_TOKEN), --user, --timeout.
Run "switchyard COMMAND --help" for every setting and its environment variable.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		if wantsHelp(args[1:]) {
			fmt.Fprintln(stdout, "Usage: switchyard serve [flags] [UPSTREAM [WORKERS]]\n\nSettings (flag, then environment, then default):")
			serveSettings(&serveConfig{}).usage(stdout)
			return 0
		}
		err = runServe(ctx, args[1:])
	case "launch", "switch", "deploy", "rollback", "discard", "cancel", "status", "history", "upgrade":
		return runClient(ctx, args[0], args[1:], stdout, stderr)
	case "publish", "release", "fleet":
		return runBucket(ctx, args[0], args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "version", "--version", "-version", "-v":
		runVersion(stdout)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "switchyard: unknown command %q (run switchyard help)\n", args[0])
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 1
	}
	return 0
}

// parseSubcommand reads a subcommand's settings and arguments, or, asked
// for help, prints its usage (help true: exit 0).
func parseSubcommand(name, argsText, summary string, s *settings, args []string, stdout io.Writer) (rest []string, help bool, err error) {
	if wantsHelp(args) {
		fmt.Fprintf(stdout, "Usage: switchyard %s [flags] %s\n\n%s.\n\nSettings (flag, then environment, then default):\n", name, argsText, upperFirst(summary))
		s.usage(stdout)
		return nil, true, nil
	}
	rest, err = s.parse(orderArgs(args, s), os.Getenv)
	return rest, false, err
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}
