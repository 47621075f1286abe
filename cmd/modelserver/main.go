// Command modelserver serves the demo model (internal/demomodel) over KServe
// V1 and the Open Inference Protocol V2 REST. The demo and `make bench` start
// two of them, --variant stable and --variant canary, behind the router.
//
//	modelserver --listen 127.0.0.1:8081 --variant stable
//	modelserver --listen 127.0.0.1:8082 --variant canary --delay 20ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
	"github.com/shadowsplit/shadowsplit/internal/modelserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "modelserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	name := fs.String("model-name", modelserver.DefaultModelName, "model name served in the paths")
	variant := fs.String("variant", demomodel.VariantStable, "model variant: stable or canary")
	delay := fs.Duration("delay", 0, "latency added to every predict/infer answer, e.g. 20ms")
	failRate := fs.Float64("fail-rate", 0, "share of predict/infer requests answered with 500, in [0, 1]")
	v1Output := fs.String("v1-output", string(modelserver.V1Probabilities), "V1 predictions: probabilities or label")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	m, err := demomodel.Load(*variant)
	if err != nil {
		return fmt.Errorf("flag --variant: %w", err)
	}
	h, err := modelserver.NewHandler(modelserver.Config{
		Model: m, ModelName: *name, Delay: *delay, FailRate: *failRate,
		V1Output: modelserver.V1Output(*v1Output), Logger: log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("flag --listen %q: %w", *listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("modelserver listening", "addr", ln.Addr().String(), "model", *name, "variant", *variant,
		"delay", delay.String(), "fail_rate", *failRate)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
