// Command router is shadowsplit's single binary: `router serve` runs the
// data and admin servers; later subcommands talk to a running router.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "router:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

const usage = `usage: router <command> [flags]

commands:
  serve     run the data and admin servers (router serve --help for flags)
  rollout   status|pause|resume|promote|abort a running rollout
  report    export diffs (parquet, jsonl, csv) or write the HTML report
  version   print the version
`

// version is set at link time (-X main.version=...).
var version = "dev"

// run is main without the process globals, so tests drive the real binary's
// code path with their own arguments, environment and outputs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "report":
		return reportCmd(ctx, args[1:], getenv, stdout, stderr)
	case "rollout":
		return rolloutCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "router: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
