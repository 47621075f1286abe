package main

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// deployModels creates the stable and canary model Deployments, a Service
// for each (<app>-stable, <app>-canary: the router and the VirtualService
// address them), and the public Service <app> that clients call: its
// VirtualService decides where requests really go, the Service gives the
// host DNS and a port, and sends callers outside the mesh to stable.
func deployModels(ctx *pulumi.Context, s Settings, ns pulumi.StringInput, opts ...pulumi.ResourceOption) (*corev1.Service, error) {
	for _, v := range []struct {
		variant string
		m       Model
	}{{"stable", s.Stable}, {"canary", s.Canary}} {
		name := s.App + "-" + v.variant
		selector := map[string]string{"app": s.App, "version": v.variant}
		labels := map[string]string{
			"app": s.App, "version": v.variant,
			"app.kubernetes.io/name": s.App, "app.kubernetes.io/component": name,
		}
		meta := &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: ns,
			Labels: stringMap(map[string]string{"app.kubernetes.io/name": s.App, "app.kubernetes.io/component": name})}
		probe := func(period int) *corev1.ProbeArgs { return httpProbe(v.m.ReadinessPath, "http", period) }
		// Unset (not empty) command and args keep the image's own
		// entrypoint and arguments.
		var command, args pulumi.StringArrayInput
		if len(v.m.Command) > 0 {
			command = stringArray(v.m.Command)
		}
		if len(v.m.Args) > 0 {
			args = stringArray(v.m.Args)
		}
		_, err := appsv1.NewDeployment(ctx, name, &appsv1.DeploymentArgs{
			Metadata: meta,
			Spec: &appsv1.DeploymentSpecArgs{
				Replicas: pulumi.Int(v.m.Replicas),
				Selector: &metav1.LabelSelectorArgs{MatchLabels: stringMap(selector)},
				Template: &corev1.PodTemplateSpecArgs{
					Metadata: &metav1.ObjectMetaArgs{Labels: stringMap(labels)},
					Spec: &corev1.PodSpecArgs{
						// The models never call the Kubernetes API.
						AutomountServiceAccountToken: pulumi.Bool(false),
						SecurityContext:              restrictedPodSecurity(),
						Containers: corev1.ContainerArray{&corev1.ContainerArgs{
							Name:            pulumi.String("model"),
							Image:           pulumi.String(v.m.Image),
							ImagePullPolicy: pulumi.String("IfNotPresent"),
							Command:         command,
							Args:            args,
							Ports: corev1.ContainerPortArray{&corev1.ContainerPortArgs{
								Name: pulumi.String("http"), ContainerPort: pulumi.Int(v.m.Port), Protocol: pulumi.String("TCP"),
							}},
							ReadinessProbe: probe(5),
							LivenessProbe:  probe(10),
							Resources: &corev1.ResourceRequirementsArgs{
								Requests: pulumi.StringMap{"cpu": pulumi.String("100m"), "memory": pulumi.String("64Mi")},
								Limits:   pulumi.StringMap{"memory": pulumi.String("256Mi")},
							},
							SecurityContext: restrictedContainerSecurity(),
						}},
					},
				},
			},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("model Deployment %s: %w", name, err)
		}
		_, err = corev1.NewService(ctx, name, &corev1.ServiceArgs{
			Metadata: meta,
			Spec: &corev1.ServiceSpecArgs{
				Selector: stringMap(selector),
				Ports:    corev1.ServicePortArray{servicePort("http", v.m.Port, "http")},
			},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("model Service %s: %w", name, err)
		}
	}
	public, err := corev1.NewService(ctx, s.App, &corev1.ServiceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(s.App), Namespace: ns,
			Labels: stringMap(map[string]string{"app.kubernetes.io/name": s.App, "app.kubernetes.io/component": "public"})},
		Spec: &corev1.ServiceSpecArgs{
			Selector: stringMap(map[string]string{"app": s.App, "version": "stable"}),
			Ports:    corev1.ServicePortArray{servicePort("http", s.Stable.Port, "http")},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("public Service %s: %w", s.App, err)
	}
	return public, nil
}
