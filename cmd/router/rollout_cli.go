package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Environment variables the rollout CLI reads for its flag defaults.
const (
	envAdminURL       = "SHADOWSPLIT_ADMIN_URL"
	envAdminTokenFile = "SHADOWSPLIT_ADMIN_TOKEN_FILE"
)

const rolloutUsage = `usage: router rollout <status|pause|resume|promote|abort> [flags]

  status    show the phase, step, weights, last reason and history
  pause     keep the current weights and stop deciding
  resume    continue a paused rollout
  promote   send 100% to the canary now
  abort     send 0% to the canary now (roll back)

flags:
`

// rolloutCmd is `router rollout status|pause|resume|promote|abort`: a client
// of the admin API of any router replica (commands are conditional writes,
// so any replica may apply them).
func rolloutCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv(envAdminURL)
	if def == "" {
		def = "http://127.0.0.1:9090"
	}
	admin := fs.String("admin", def, "admin API base URL of a router replica (env "+envAdminURL+")")
	tokenFile := fs.String("token-file", getenv(envAdminTokenFile), "file holding the admin bearer token (env "+envAdminTokenFile+")")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	timeout := fs.Duration("timeout", 15*time.Second, "request timeout")
	fs.Usage = func() { fmt.Fprint(stderr, rolloutUsage); fs.PrintDefaults() }
	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	method, path := http.MethodPost, "/api/v1/rollout/"+verb
	switch verb {
	case "status":
		method, path = http.MethodGet, "/api/v1/rollout"
	case "pause", "resume", "promote", "abort":
	case "help", "-h", "--help":
		fs.SetOutput(stdout)
		fs.Usage()
		return nil
	default:
		fmt.Fprintf(stderr, "router rollout: unknown command %q\n\n", verb)
		fs.Usage()
		return errUsage
	}
	var token string
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("rollout: --token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*admin, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("rollout: --admin %q: %w", *admin, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", verb, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("rollout %s: read answer: %w", verb, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("rollout %s: %s (HTTP %d)", verb, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("rollout %s: HTTP %d: %s", verb, resp.StatusCode, bytes.TrimSpace(body))
	}
	if *asJSON {
		_, err = stdout.Write(append(bytes.TrimSpace(body), '\n'))
		return err
	}
	if verb == "status" {
		return printStatus(stdout, body)
	}
	var d struct {
		Action, Reason, Message string
		Weight                  int32
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("rollout %s: decode answer: %w", verb, err)
	}
	fmt.Fprintf(stdout, "%s: %s (canary %d%%): %s\n", d.Action, d.Reason, d.Weight, d.Message)
	return nil
}

func printStatus(w io.Writer, body []byte) error {
	var st rolloutStatusJSON
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("rollout status: decode answer: %w", err)
	}
	s := st.State
	if s.ID == "" {
		fmt.Fprintf(w, "no rollout yet; weights primary %d / canary %d\n", st.PrimaryWeight, st.CanaryWeight)
		return nil
	}
	fmt.Fprintf(w, "rollout %s: %s, step %d, canary %d%% (read back: primary %d / canary %d)\n",
		s.ID, s.Phase, s.Step, s.Weight, st.PrimaryWeight, st.CanaryWeight)
	fmt.Fprintf(w, "reason: %s: %s\n", s.Reason, s.Message)
	if st.Drift != "" {
		fmt.Fprintf(w, "drift: %s\n", st.Drift)
	}
	if st.RouteError != "" {
		fmt.Fprintf(w, "route error: %s\n", st.RouteError)
	}
	fmt.Fprintf(w, "this replica leads: %v; control enabled: %v\n", st.Leader, st.ControlEnabled)
	if len(s.History) > 0 {
		fmt.Fprintln(w, "history:")
		for _, h := range s.History {
			fmt.Fprintf(w, "  %s  %s -> %s  step %d  canary %d%%  %s\n", h.At.UTC().Format(time.RFC3339), h.From, h.To, h.Step, h.Weight, h.Reason)
		}
	}
	return nil
}
