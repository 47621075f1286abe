// Command baseline runs loadtest/baseline: a bare httputil.ReverseProxy to
// stable with a fire-and-forget mirror to canary, the yardstick of
// `make bench`.
//
//	baseline --listen 127.0.0.1:9090 --stable http://127.0.0.1:8081 --canary http://127.0.0.1:8082 --mirror-percent 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/loadtest/baseline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on")
	stable := fs.String("stable", "", "stable upstream URL (required)")
	canary := fs.String("canary", "", "canary upstream URL (needed when --mirror-percent > 0)")
	percent := fs.Int("mirror-percent", 0, "share of requests mirrored to canary, 0..100")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := baseline.Config{MirrorPercent: *percent}
	var err error
	if cfg.Stable, err = parseURL("--stable", *stable); err != nil {
		return err
	}
	if *canary != "" {
		if cfg.Canary, err = parseURL("--canary", *canary); err != nil {
			return err
		}
	}
	p, err := baseline.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("flag --listen %q: %w", *listen, err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	fmt.Fprintf(stderr, "baseline: mirrored %d, mirrors still in flight %d\n", p.Mirrored(), p.MirrorsInFlight())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func parseURL(flagName, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("flag %s %q: want an absolute URL like http://127.0.0.1:8081", flagName, s)
	}
	return u, nil
}
