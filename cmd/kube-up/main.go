// Command kube-up starts the project's test Kubernetes API server (etcd +
// kube-apiserver with Istio's CRDs, as internal/kubetest runs it for tests),
// writes an admin kubeconfig, prints how to use it, and runs until Ctrl-C or
// SIGTERM, then stops both processes. `make kube-up` builds the binaries
// first and runs it.
//
// Usage: kube-up [-kubeconfig PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/kubetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kube-up:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("kube-up", flag.ContinueOnError)
	path := fs.String("kubeconfig", "", "write the admin kubeconfig here (default: kubeconfig in a new temporary directory, removed on exit)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	if *path == "" {
		dir, err := os.MkdirTemp("", "kube-up-")
		if err != nil {
			return fmt.Errorf("kubeconfig dir: %w", err)
		}
		defer os.RemoveAll(dir)
		*path = filepath.Join(dir, "kubeconfig")
	}
	if *path, err = filepath.Abs(*path); err != nil {
		return fmt.Errorf("kubeconfig path: %w", err)
	}

	began := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	env, err := kubetest.Start(startCtx)
	cancel()
	if errors.Is(err, kubetest.ErrAssetsMissing) {
		return fmt.Errorf("%w\n(`make kube-up` builds them first)", err)
	}
	if err != nil {
		return err
	}
	defer func() {
		began := time.Now()
		fmt.Fprintln(stdout, "stopping kube-apiserver, then etcd...")
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
			return
		}
		fmt.Fprintf(stdout, "stopped in %s\n", time.Since(began).Round(100*time.Millisecond))
	}()

	if err := env.WriteKubeconfig(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kube-apiserver %s up with %d Istio CRDs in %s\n", env.Config().Host, len(env.CRDs()),
		time.Since(began).Round(100*time.Millisecond))
	fmt.Fprintf(stdout, "kubeconfig: %s\n\n    export KUBECONFIG=%s\n\nCtrl-C stops it.\n", *path, *path)

	<-ctx.Done()
	return nil
}
