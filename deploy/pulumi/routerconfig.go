package main

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The router's config file, in cmd/router's vocabulary (docs/configuration.md).
// Only the keys this program sets; the router's defaults cover the rest.
// The router decodes the file strictly, so a key here that cmd/router does
// not know stops the pod: TestRouterConfigMatchesKustomize keeps this in step
// with deploy/kustomize, whose config internal/deploytest runs the real
// router on.
type routerConfigFile struct {
	Mode          string          `yaml:"mode"`
	Listen        string          `yaml:"listen"`
	AdminListen   string          `yaml:"adminListen"`
	Stable        upstreamConfig  `yaml:"stable"`
	Canary        upstreamConfig  `yaml:"canary"`
	Shadow        *shadowConfig   `yaml:"shadow,omitempty"`
	Tap           *tapConfig      `yaml:"tap,omitempty"`
	Compare       compareConfig   `yaml:"compare"`
	Store         storeConfig     `yaml:"store"`
	Rollout       rolloutConfig   `yaml:"rollout"`
	Admin         adminConfig     `yaml:"admin"`
	Telemetry     telemetryConfig `yaml:"telemetry"`
	ShutdownDrain string          `yaml:"shutdownDrain"`
}

type upstreamConfig struct {
	URL     string `yaml:"url"`
	Model   string `yaml:"model,omitempty"`
	Timeout string `yaml:"timeout"`
}

type shadowConfig struct {
	Percent int `yaml:"percent"`
}

type tapConfig struct {
	MaxInFlight        int `yaml:"maxInFlight"`
	MaxReplayPerSecond int `yaml:"maxReplayPerSecond"`
}

type compareConfig struct {
	Window string `yaml:"window"`
}

// storeConfig keeps compared pairs in SQLite on the pod's data volume.
type storeConfig struct {
	Driver string `yaml:"driver"`
	SQLite struct {
		Path     string `yaml:"path"`
		MaxPages int    `yaml:"maxPages"`
	} `yaml:"sqlite"`
	Retention struct {
		MaxAge string `yaml:"maxAge"`
	} `yaml:"retention"`
	Inputs struct {
		FingerprintKeyFile string `yaml:"fingerprintKeyFile"`
	} `yaml:"inputs"`
}

// rolloutConfig turns on the rollout loop against the VirtualService this
// program creates. The Lease name must be the one the Role allows.
type rolloutConfig struct {
	Enabled   bool         `yaml:"enabled"`
	Target    string       `yaml:"target"`
	Namespace string       `yaml:"namespace"`
	Name      string       `yaml:"name"`
	Route     string       `yaml:"route"`
	Hosts     rolloutHosts `yaml:"hosts"`
	Leader    leaderConfig `yaml:"leaderElection"`
}

type rolloutHosts struct {
	Router string `yaml:"router"`
	Stable string `yaml:"stable"`
	Canary string `yaml:"canary"`
}

type leaderConfig struct {
	LeaseName string `yaml:"leaseName"`
}

type adminConfig struct {
	TokenFile string `yaml:"tokenFile"`
}

type telemetryConfig struct {
	Traces   string `yaml:"traces"`
	LogLevel string `yaml:"logLevel"`
}

// Paths inside the router pod; the Deployment mounts the ConfigMap and the
// Secret there.
const (
	configDir      = "/etc/shadowsplit/config"
	configFileName = "config.yaml"
	secretDir      = "/etc/shadowsplit/secret"
	tokenFileName  = "admin-token"
	// fingerprintKeyName is the Secret key (and file) of the HMAC key for
	// input fingerprints.
	fingerprintKeyName = "fingerprint-key"
	dataDir            = "/var/lib/shadowsplit"
	// shutdownDrainSeconds and stableTimeoutSeconds size the pod's
	// terminationGracePeriodSeconds.
	shutdownDrainSeconds = 10
	stableTimeoutSeconds = 30
	routerPort           = 8080
	adminPort            = 9090
)

// routerConfig renders the router's config.yaml for s. The router calls the
// model Services directly, never the public host (which would loop back
// through the VirtualService).
func routerConfig(s Settings) ([]byte, error) {
	f := routerConfigFile{
		Mode:        s.Shape,
		Listen:      fmt.Sprintf(":%d", routerPort),
		AdminListen: fmt.Sprintf(":%d", adminPort),
		Stable:      upstreamConfig{URL: fmt.Sprintf("http://%s:%d", s.stableService(), s.Stable.Port), Timeout: fmt.Sprintf("%ds", stableTimeoutSeconds)},
		Canary: upstreamConfig{URL: fmt.Sprintf("http://%s:%d", s.canaryService(), s.Canary.Port), Timeout: "5s",
			Model: s.CanaryModelName},
		Compare: compareConfig{Window: "5m"},
		Rollout: rolloutConfig{
			Enabled: true, Target: "kube", Namespace: s.Namespace, Name: s.App, Route: managedRoute,
			Hosts:  rolloutHosts{Router: routerName, Stable: s.stableService(), Canary: s.canaryService()},
			Leader: leaderConfig{LeaseName: routerName},
		},
		Admin:         adminConfig{TokenFile: secretDir + "/" + tokenFileName},
		Telemetry:     telemetryConfig{Traces: "none", LogLevel: "info"},
		ShutdownDrain: fmt.Sprintf("%ds", shutdownDrainSeconds),
	}
	f.Shadow = &shadowConfig{Percent: s.ShadowPercent}
	// One store per replica, lost with the pod; 1 GiB cap inside the 2Gi
	// volume. The key comes from the Secret, so fingerprints match across
	// replicas and restarts.
	f.Store.Driver = "sqlite"
	f.Store.SQLite.Path = dataDir + "/diffs.db"
	f.Store.SQLite.MaxPages = 262144
	f.Store.Retention.MaxAge = "168h"
	f.Store.Inputs.FingerprintKeyFile = secretDir + "/" + fingerprintKeyName
	if s.Shape == shapeTap {
		// Istio samples (mirrorPercentage): the router replays every copy
		// it is sent (a tap router with shadow.percent 0 replays nothing),
		// within a budget that bounds the extra load on stable.
		f.Shadow = &shadowConfig{Percent: 100}
		f.Tap = &tapConfig{MaxInFlight: 64, MaxReplayPerSecond: 100}
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	return out, nil
}
