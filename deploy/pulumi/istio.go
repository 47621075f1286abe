package main

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// managedRoute is the name of the HTTP route the router manages
// (internal/istio.DefaultRoute).
const managedRoute = "shadowsplit"

// destination is a VirtualService destination with an explicit port: the
// router's Service has two (data and admin), and the router keeps whatever
// port it reads when it writes the weights back.
func destination(host string, port int) map[string]any {
	return map[string]any{"host": host, "port": map[string]any{"number": port}}
}

// virtualServiceSpec is the managed route in the configured shape
// (docs/virtualservice.md): inline routes through the router, tap routes to
// stable and mirrors to the router.
func virtualServiceSpec(s Settings) map[string]any {
	primary := destination(routerName, routerPort)
	if s.Shape == shapeTap {
		primary = destination(s.stableService(), s.Stable.Port)
	}
	route := map[string]any{
		"name": managedRoute,
		"route": []any{
			map[string]any{"destination": primary, "weight": 100 - s.CanaryWeight},
			map[string]any{"destination": destination(s.canaryService(), s.Canary.Port), "weight": s.CanaryWeight},
		},
	}
	if s.Shape == shapeTap {
		// Set from the start, with its port; a mirror the router adds
		// itself names only the host.
		route["mirror"] = destination(routerName, routerPort)
		route["mirrorPercentage"] = map[string]any{"value": s.MirrorPercent}
	}
	return map[string]any{"hosts": []any{s.App}, "http": []any{route}}
}

// weightPaths are the VirtualService fields the router owns after install.
// Pulumi ignores changes to them, so `pulumi up` never resets a rollout in
// progress (the Argo CD ignoreDifferences of docs/virtualservice.md, in
// Pulumi's terms). Changing anything else in spec.http later re-applies the
// whole list (Istio's CRD makes it atomic): do it between rollouts.
func weightPaths(s Settings) []string {
	p := []string{"spec.http[0].route[0].weight", "spec.http[0].route[1].weight"}
	if s.Shape == shapeTap {
		p = append(p, "spec.http[0].mirrorPercentage")
	}
	return p
}

// deployIstio creates the DestinationRules and the VirtualService. No
// subsets: each version has its own Service and the router matches
// destinations by host.
func deployIstio(ctx *pulumi.Context, s Settings, ns pulumi.StringInput, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	meta := func(name string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: ns,
			Labels: pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("shadowsplit")}}
	}
	rules := []struct {
		host   string
		policy map[string]any
	}{
		{s.stableService(), map[string]any{
			"connectionPool":   map[string]any{"http": map[string]any{"http2MaxRequests": 1000}},
			"outlierDetection": outlier(5, "10s", 50),
		}},
		// A failing canary is ejected from its live share quickly.
		{s.canaryService(), map[string]any{
			"connectionPool": map[string]any{
				"tcp":  map[string]any{"maxConnections": 100},
				"http": map[string]any{"http2MaxRequests": 200, "http1MaxPendingRequests": 50},
			},
			"outlierDetection": outlier(3, "5s", 100),
		}},
		// Never eject both router replicas: inline, it carries stable.
		{routerName, map[string]any{
			"connectionPool":   map[string]any{"http": map[string]any{"http2MaxRequests": 1000}},
			"outlierDetection": outlier(5, "10s", 50),
		}},
	}
	for _, r := range rules {
		_, err := apiextensions.NewCustomResource(ctx, r.host, &apiextensions.CustomResourceArgs{
			ApiVersion:  pulumi.String("networking.istio.io/v1"),
			Kind:        pulumi.String("DestinationRule"),
			Metadata:    meta(r.host),
			OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{"host": r.host, "trafficPolicy": r.policy}},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("DestinationRule %s: %w", r.host, err)
		}
	}
	vs, err := apiextensions.NewCustomResource(ctx, s.App, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String("networking.istio.io/v1"),
		Kind:        pulumi.String("VirtualService"),
		Metadata:    meta(s.App),
		OtherFields: kubernetes.UntypedArgs{"spec": virtualServiceSpec(s)},
	}, append(opts, pulumi.IgnoreChanges(weightPaths(s)))...)
	if err != nil {
		return nil, fmt.Errorf("VirtualService %s: %w", s.App, err)
	}
	return vs, nil
}

func outlier(consecutive5xx int, interval string, maxEjectionPercent int) map[string]any {
	return map[string]any{
		"consecutive5xxErrors": consecutive5xx,
		"interval":             interval,
		"baseEjectionTime":     "30s",
		"maxEjectionPercent":   maxEjectionPercent,
	}
}
