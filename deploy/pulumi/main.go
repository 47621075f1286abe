// Command shadowsplit-deploy is a Pulumi program (Go) that installs
// shadowsplit behind an Istio VirtualService: optionally Istio's CRDs, a
// namespace for Istio injection and Pod Security "restricted", the stable
// and canary model Deployments and Services, the router with its
// least-privilege RBAC, config and Secret, DestinationRules, and the
// VirtualService in the inline or tap shape at the configured initial split.
// It exports the model's URL and the report's URL.
//
//	cd deploy/pulumi
//	pulumi stack init dev
//	pulumi config set --secret shadowsplit:adminToken "$(openssl rand -hex 32)"
//	pulumi config set --secret shadowsplit:fingerprintKey "$(openssl rand -hex 32)"
//	pulumi config set shadowsplit:routerImage registry.example.com/shadowsplit/router:v0.1.0
//	pulumi up
//
// docs/install.md explains every step and key; the same objects are in
// deploy/kustomize for kubectl and GitOps users.
package main

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		_, err := program(ctx)
		return err
	})
}

// outputs are the stack's exports.
type outputs struct {
	// ModelURL is where clients send predictions: the public host, routed
	// by the VirtualService.
	ModelURL pulumi.StringOutput
	// ReportURL is the router's prediction-diff report (admin port, bearer
	// token); reach it from inside the cluster or with kubectl port-forward.
	ReportURL pulumi.StringOutput
	// Namespace, VirtualService and Shape say what the router manages.
	Namespace      pulumi.StringOutput
	VirtualService pulumi.StringOutput
	Shape          pulumi.StringOutput
}

// program declares every resource and exports the outputs. It reads the
// config namespace "shadowsplit" (see Settings); adminToken and
// fingerprintKey must be set as secrets.
func program(ctx *pulumi.Context) (*outputs, error) {
	c := config.New(ctx, configNamespace)
	s, err := loadSettings(c)
	if err != nil {
		return nil, err
	}
	var secrets routerSecrets
	if secrets.AdminToken, err = c.TrySecret("adminToken"); err != nil {
		return nil, fmt.Errorf("config %s:adminToken is required: the router's admin API and report need a bearer token; "+
			"set one with `pulumi config set --secret %s:adminToken \"$(openssl rand -hex 32)\"`", configNamespace, configNamespace)
	}
	if secrets.FingerprintKey, err = c.TrySecret("fingerprintKey"); err != nil {
		return nil, fmt.Errorf("config %s:fingerprintKey is required: the HMAC key (16 bytes or more) of the diff store's input fingerprints; "+
			"set one with `pulumi config set --secret %s:fingerprintKey \"$(openssl rand -hex 32)\"`", configNamespace, configNamespace)
	}

	var ns pulumi.StringInput = pulumi.String(s.Namespace)
	var nsOpts []pulumi.ResourceOption
	if s.CreateNamespace {
		n, err := corev1.NewNamespace(ctx, s.Namespace, &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(s.Namespace),
				Labels: pulumi.StringMap{
					// Sidecar injection; with Pod Security "restricted" the
					// mesh must use the Istio CNI node agent (docs/install.md).
					"istio-injection":                    pulumi.String("enabled"),
					"pod-security.kubernetes.io/enforce": pulumi.String("restricted"),
					"pod-security.kubernetes.io/warn":    pulumi.String("restricted"),
					"pod-security.kubernetes.io/audit":   pulumi.String("restricted"),
				},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", s.Namespace, err)
		}
		ns = n.Metadata.Name().Elem()
		nsOpts = append(nsOpts, pulumi.DependsOn([]pulumi.Resource{n}))
	}

	if _, err := deployModels(ctx, s, ns, nsOpts...); err != nil {
		return nil, err
	}
	sa, err := deployRouterRBAC(ctx, s, ns, nsOpts...)
	if err != nil {
		return nil, err
	}
	routerSvc, err := deployRouter(ctx, s, ns, sa, secrets, nsOpts...)
	if err != nil {
		return nil, err
	}
	istioOpts := nsOpts
	if s.InstallIstioCRDs {
		crds, err := installIstioCRDs(ctx, s)
		if err != nil {
			return nil, err
		}
		istioOpts = append(append([]pulumi.ResourceOption(nil), nsOpts...), pulumi.DependsOn(crds))
	}
	vs, err := deployIstio(ctx, s, ns, istioOpts...)
	if err != nil {
		return nil, err
	}

	out := &outputs{
		ModelURL: pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d", s.App, ns, s.Stable.Port),
		ReportURL: pulumi.Sprintf("http://%s.%s.svc.cluster.local:%d/reports",
			routerSvc.Metadata.Name().Elem(), ns, adminPort),
		Namespace:      pulumi.StringOutput(ns.ToStringOutput()),
		VirtualService: vs.Metadata.Name().Elem(),
		Shape:          pulumi.String(s.Shape).ToStringOutput(),
	}
	ctx.Export("modelUrl", out.ModelURL)
	ctx.Export("reportUrl", out.ReportURL)
	ctx.Export("namespace", out.Namespace)
	ctx.Export("virtualService", out.VirtualService)
	ctx.Export("shape", out.Shape)
	return out, nil
}
