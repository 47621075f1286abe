package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// configNamespace is the Pulumi config namespace: keys are set with
// `pulumi config set shadowsplit:<key> <value>`.
const configNamespace = "shadowsplit"

// Shapes of the managed route (docs/virtualservice.md).
const (
	shapeInline = "inline"
	shapeTap    = "tap"
)

// defaultIstioCRDs is Istio's CRD file for the istio.io/api version the
// router is built and tested against (its go.mod; internal/kubetest installs
// the same file). Point istioCrds at your mesh's own version.
const defaultIstioCRDs = "https://raw.githubusercontent.com/istio/api/v1.32.0/kubernetes/customresourcedefinitions.gen.yaml"

// Settings is the whole Pulumi configuration of the program, resolved and
// validated. Every field has a default (see loadSettings).
type Settings struct {
	// Namespace everything is deployed into. Default "models".
	Namespace string
	// CreateNamespace creates Namespace labelled for Istio sidecar injection
	// and Pod Security "restricted". Default true; false expects it to exist.
	CreateNamespace bool
	// App is the model's public name: its Service and host (what clients
	// call), the VirtualService, and the prefix of the model Services
	// <App>-stable and <App>-canary. Default "model".
	App string
	// RouterImage is the router image; it also holds /modelserver, the
	// example model server. Default "shadowsplit/router:dev".
	RouterImage string
	// RouterReplicas defaults to 2 (one moves the weights, all serve).
	RouterReplicas int
	// ModelName is the model name in request paths (/v2/models/<name>/infer)
	// as stable serves it. Default "demo" (the example model server's).
	ModelName string
	// CanaryModelName is the canary's model name when it differs; empty
	// means the same as ModelName.
	CanaryModelName string
	// Stable and Canary are the two model versions' workloads.
	Stable, Canary Model
	// Shape is "inline" (default) or "tap".
	Shape string
	// CanaryWeight is the canary's initial live share in percent, 0..100;
	// the router's weight (inline) or stable's (tap) is 100-CanaryWeight.
	// Default 0: the rollout starts at 100/0.
	CanaryWeight int
	// ShadowPercent is the share of client requests the router copies to
	// the canary in the inline shape, 0..100. Default 10.
	ShadowPercent int
	// MirrorPercent is the VirtualService's mirrorPercentage in the tap
	// shape, 0..100. Default 20.
	MirrorPercent float64
	// InstallIstioCRDs applies Istio's CRDs from IstioCRDs first. Default
	// false: a cluster running Istio has them.
	InstallIstioCRDs bool
	// IstioCRDs is a path or URL of Istio's CRD manifest. Default
	// defaultIstioCRDs.
	IstioCRDs string
}

// Model is one model version's workload. The defaults run the repository's
// example model server (cmd/modelserver) from the router image.
type Model struct {
	Image    string   `json:"image"`
	Command  []string `json:"command"`
	Args     []string `json:"args"`
	Port     int      `json:"port"`
	Replicas int      `json:"replicas"`
	// ReadinessPath is an HTTP GET path for the readiness and liveness
	// probes. Default /v2/health/ready.
	ReadinessPath string `json:"readinessPath"`
}

// Names derived from Settings, so every resource agrees on them.
func (s Settings) stableService() string { return s.App + "-stable" }
func (s Settings) canaryService() string { return s.App + "-canary" }

// routerName names the router's ServiceAccount, Role, Deployment, Service
// and Lease; deploy/kustomize uses the same.
const routerName = "shadowsplit-router"

// configSource is the part of pulumi/config the program reads; *config.Config
// implements it. Numbers and booleans are parsed here, so a malformed value
// is an error naming the key (config.GetInt would read it as 0).
type configSource interface {
	Get(key string) string
	GetObject(key string, output any) error
}

var _ configSource = (*config.Config)(nil)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// loadSettings reads the config namespace "shadowsplit", applies defaults
// and validates. The error lists every bad key, each with its value and
// what is expected.
func loadSettings(c configSource) (Settings, error) {
	var errs []error
	bad := func(key string, value any, msg string) {
		errs = append(errs, fmt.Errorf("config %s:%s: %q: %s", configNamespace, key, fmt.Sprint(value), msg))
	}
	boolOr := func(key string, def bool) bool {
		v := c.Get(key)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(key, v, "must be true or false")
		}
		return b
	}
	intOr := func(key string, def int) int {
		v := c.Get(key)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			bad(key, v, "must be an integer")
		}
		return n
	}
	floatOr := func(key string, def float64) float64 {
		v := c.Get(key)
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			bad(key, v, "must be a number")
		}
		return f
	}

	s := Settings{
		Namespace:        or(c.Get("namespace"), "models"),
		CreateNamespace:  boolOr("createNamespace", true),
		App:              or(c.Get("app"), "model"),
		RouterImage:      or(c.Get("routerImage"), "shadowsplit/router:dev"),
		RouterReplicas:   intOr("routerReplicas", 2),
		ModelName:        or(c.Get("modelName"), "demo"),
		CanaryModelName:  c.Get("canaryModelName"),
		Shape:            or(c.Get("shape"), shapeInline),
		CanaryWeight:     intOr("canaryWeight", 0),
		ShadowPercent:    intOr("shadowPercent", 10),
		MirrorPercent:    floatOr("mirrorPercent", 20),
		InstallIstioCRDs: boolOr("installIstioCrds", false),
		IstioCRDs:        or(c.Get("istioCrds"), defaultIstioCRDs),
	}

	for _, v := range []struct {
		variant string
		m       *Model
	}{{"stable", &s.Stable}, {"canary", &s.Canary}} {
		variant, m := v.variant, v.m
		if c.Get(variant) != "" {
			if err := c.GetObject(variant, m); err != nil {
				bad(variant, c.Get(variant), "want an object such as {\"image\": \"registry/model:v2\", \"args\": [...], \"port\": 8080}: "+err.Error())
				continue
			}
		}
		s.defaultModel(variant, m)
		if m.Port < 1 || m.Port > 65535 {
			bad(variant+".port", m.Port, "must be a port number")
		}
		if m.Replicas < 1 {
			bad(variant+".replicas", m.Replicas, "must be at least 1")
		}
		if !strings.HasPrefix(m.ReadinessPath, "/") {
			bad(variant+".readinessPath", m.ReadinessPath, "must be an absolute path such as /v2/health/ready")
		}
	}

	if !dnsLabel.MatchString(s.Namespace) || len(s.Namespace) > 63 {
		bad("namespace", s.Namespace, "must be a DNS label (lower case letters, digits, '-')")
	}
	// <app>-canary must stay a valid Service name (63 characters).
	if !dnsLabel.MatchString(s.App) || len(s.App) > 56 {
		bad("app", s.App, "must be a DNS label of at most 56 characters")
	}
	if s.Shape != shapeInline && s.Shape != shapeTap {
		bad("shape", s.Shape, "must be inline or tap")
	}
	if s.CanaryWeight < 0 || s.CanaryWeight > 100 {
		bad("canaryWeight", s.CanaryWeight, "must be an integer percentage 0..100 (the router starts from it)")
	}
	if s.ShadowPercent < 0 || s.ShadowPercent > 100 {
		bad("shadowPercent", s.ShadowPercent, "must be 0..100")
	}
	if s.MirrorPercent < 0 || s.MirrorPercent > 100 || s.MirrorPercent != s.MirrorPercent {
		bad("mirrorPercent", s.MirrorPercent, "must be 0..100")
	}
	if s.RouterReplicas < 1 {
		bad("routerReplicas", s.RouterReplicas, "must be at least 1")
	}
	for key, name := range map[string]string{"modelName": s.ModelName, "canaryModelName": s.CanaryModelName} {
		if strings.ContainsAny(name, "/?#: ") {
			bad(key, name, "must be a bare model name")
		}
	}
	if s.RouterImage == "" {
		bad("routerImage", s.RouterImage, "is required")
	}
	return s, errors.Join(errs...)
}

// defaultModel fills what the config left out with the example model
// server's values.
func (s Settings) defaultModel(variant string, m *Model) {
	if m.Image == "" {
		m.Image = s.RouterImage
		if len(m.Command) == 0 {
			m.Command = []string{"/modelserver"}
		}
		if len(m.Args) == 0 {
			name := s.ModelName
			if variant == "canary" && s.CanaryModelName != "" {
				name = s.CanaryModelName
			}
			m.Args = []string{"--listen", ":8080", "--model-name", name, "--variant", variant}
		}
	}
	if m.Port == 0 {
		m.Port = 8080
	}
	if m.Replicas == 0 {
		m.Replicas = 2
	}
	if m.ReadinessPath == "" {
		m.ReadinessPath = "/v2/health/ready"
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
