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
  switchyard help                                 this text

Run "switchyard serve --help" for every setting and its environment variable.
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

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}
