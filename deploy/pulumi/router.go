package main

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// routerLabels select the router's pods.
var routerLabels = map[string]string{"app.kubernetes.io/name": routerName}

func routerMeta(ns pulumi.StringInput, name string) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{
		Name:      pulumi.String(name),
		Namespace: ns,
		Labels: stringMap(map[string]string{
			"app.kubernetes.io/name":      routerName,
			"app.kubernetes.io/component": "router",
			"app.kubernetes.io/part-of":   "shadowsplit",
		}),
	}
}

// deployRouterRBAC creates the router's ServiceAccount and its namespaced
// Role and RoleBinding: the rules of deploy/kustomize/base/rbac.yaml
// (TestRoleMatchesKustomizeRBAC keeps them equal), with the VirtualService
// rule limited to this stack's VirtualService. Nothing cluster-scoped.
func deployRouterRBAC(ctx *pulumi.Context, s Settings, ns pulumi.StringInput, opts ...pulumi.ResourceOption) (*corev1.ServiceAccount, error) {
	sa, err := corev1.NewServiceAccount(ctx, routerName, &corev1.ServiceAccountArgs{
		Metadata: routerMeta(ns, routerName),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router ServiceAccount: %w", err)
	}
	rule := func(group, resource string, names []string, verbs ...string) rbacv1.PolicyRuleInput {
		r := rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.StringArray{pulumi.String(group)},
			Resources: pulumi.StringArray{pulumi.String(resource)},
			Verbs:     stringArray(verbs),
		}
		if names != nil {
			r.ResourceNames = stringArray(names)
		}
		return r
	}
	role, err := rbacv1.NewRole(ctx, routerName, &rbacv1.RoleArgs{
		Metadata: routerMeta(ns, routerName),
		Rules: rbacv1.PolicyRuleArray{
			// The one managed VirtualService; list/watch are authorized
			// against resourceNames because the router's informer selects
			// metadata.name. No create, no delete.
			rule("networking.istio.io", "virtualservices", []string{s.App}, "get", "list", "watch", "update", "patch"),
			// Leader election: create cannot be limited by name; the rest is.
			rule("coordination.k8s.io", "leases", nil, "create"),
			rule("coordination.k8s.io", "leases", []string{routerName}, "get", "update"),
			// Events on the VirtualService (drift, rollout transitions).
			rule("", "events", nil, "create", "patch"),
			rule("events.k8s.io", "events", nil, "create", "patch"),
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router Role: %w", err)
	}
	_, err = rbacv1.NewRoleBinding(ctx, routerName, &rbacv1.RoleBindingArgs{
		Metadata: routerMeta(ns, routerName),
		RoleRef: &rbacv1.RoleRefArgs{
			ApiGroup: pulumi.String("rbac.authorization.k8s.io"),
			Kind:     pulumi.String("Role"),
			Name:     role.Metadata.Name().Elem(),
		},
		Subjects: rbacv1.SubjectArray{&rbacv1.SubjectArgs{
			Kind:      pulumi.String("ServiceAccount"),
			Name:      sa.Metadata.Name().Elem(),
			Namespace: ns,
		}},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router RoleBinding: %w", err)
	}
	return sa, nil
}

// routerSecrets are the Secret's files, from secret Pulumi config.
type routerSecrets struct {
	// AdminToken is the admin API's bearer token.
	AdminToken pulumi.StringInput
	// FingerprintKey is the HMAC key of the diff store's input fingerprints.
	FingerprintKey pulumi.StringInput
}

// deployRouter creates the router's config, secret, Deployment, Service,
// PodDisruptionBudget and NetworkPolicy. The ConfigMap and Secret are
// auto-named (Pulumi appends a suffix and replaces them when their data
// changes), so a config or token change rolls the Deployment.
func deployRouter(ctx *pulumi.Context, s Settings, ns pulumi.StringInput, sa *corev1.ServiceAccount,
	secrets routerSecrets, opts ...pulumi.ResourceOption) (*corev1.Service, error) {
	cfgYAML, err := routerConfig(s)
	if err != nil {
		return nil, err
	}
	cm, err := corev1.NewConfigMap(ctx, routerName+"-config", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{Namespace: ns, Labels: stringMap(routerLabels)},
		Data:     pulumi.StringMap{configFileName: pulumi.String(string(cfgYAML))},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router ConfigMap: %w", err)
	}
	secret, err := corev1.NewSecret(ctx, routerName+"-secret", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Namespace: ns, Labels: stringMap(routerLabels)},
		Type:     pulumi.String("Opaque"),
		// Both come from secret config values, so Pulumi keeps them
		// encrypted in its state as well.
		StringData: pulumi.StringMap{tokenFileName: secrets.AdminToken, fingerprintKeyName: secrets.FingerprintKey},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router Secret: %w", err)
	}

	podLabels := map[string]string{
		"app.kubernetes.io/name":      routerName,
		"app.kubernetes.io/component": "router",
		"app.kubernetes.io/part-of":   "shadowsplit",
		"app":                         routerName,
		"version":                     "v1",
	}
	container := &corev1.ContainerArgs{
		Name:            pulumi.String("router"),
		Image:           pulumi.String(s.RouterImage),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Args:            pulumi.StringArray{pulumi.String("serve"), pulumi.String("--config"), pulumi.String(configDir + "/" + configFileName)},
		Ports: corev1.ContainerPortArray{
			&corev1.ContainerPortArgs{Name: pulumi.String("http"), ContainerPort: pulumi.Int(routerPort), Protocol: pulumi.String("TCP")},
			&corev1.ContainerPortArgs{Name: pulumi.String("http-admin"), ContainerPort: pulumi.Int(adminPort), Protocol: pulumi.String("TCP")},
		},
		Env: corev1.EnvVarArray{&corev1.EnvVarArgs{
			Name:      pulumi.String("GOMEMLIMIT"),
			ValueFrom: &corev1.EnvVarSourceArgs{ResourceFieldRef: &corev1.ResourceFieldSelectorArgs{Resource: pulumi.String("limits.memory")}},
		}},
		// On the admin port: a slow model must not make the router look dead.
		ReadinessProbe: withFailureThreshold(httpProbe("/readyz", "http-admin", 5), 2),
		LivenessProbe:  withFailureThreshold(httpProbe("/healthz", "http-admin", 10), 3),
		Resources: &corev1.ResourceRequirementsArgs{
			Requests: pulumi.StringMap{"cpu": pulumi.String("250m"), "memory": pulumi.String("128Mi")},
			Limits:   pulumi.StringMap{"memory": pulumi.String("512Mi")},
		},
		SecurityContext: restrictedContainerSecurity(),
		VolumeMounts: corev1.VolumeMountArray{
			&corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(configDir), ReadOnly: pulumi.Bool(true)},
			&corev1.VolumeMountArgs{Name: pulumi.String("secret"), MountPath: pulumi.String(secretDir), ReadOnly: pulumi.Bool(true)},
			&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(dataDir)},
			&corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
		},
	}
	spread := func(key string) corev1.TopologySpreadConstraintInput {
		return &corev1.TopologySpreadConstraintArgs{
			MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String(key), WhenUnsatisfiable: pulumi.String("ScheduleAnyway"),
			LabelSelector: &metav1.LabelSelectorArgs{MatchLabels: stringMap(routerLabels)},
		}
	}
	_, err = appsv1.NewDeployment(ctx, routerName, &appsv1.DeploymentArgs{
		Metadata: routerMeta(ns, routerName),
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas:             pulumi.Int(s.RouterReplicas),
			RevisionHistoryLimit: pulumi.Int(5),
			Selector:             &metav1.LabelSelectorArgs{MatchLabels: stringMap(routerLabels)},
			Strategy: &appsv1.DeploymentStrategyArgs{
				Type: pulumi.String("RollingUpdate"),
				// Never below the replica count: inline, the router is on
				// the client path.
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxUnavailable: pulumi.Int(0), MaxSurge: pulumi.Int(1)},
			},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels: stringMap(podLabels),
					Annotations: pulumi.StringMap{
						"proxy.istio.io/config": pulumi.String(`{"holdApplicationUntilProxyStarts": true}`),
						"prometheus.io/scrape":  pulumi.String("true"),
						"prometheus.io/port":    pulumi.String(fmt.Sprint(adminPort)),
						"prometheus.io/path":    pulumi.String("/metrics"),
					},
				},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:            sa.Metadata.Name(),
					TerminationGracePeriodSeconds: pulumi.Int(shutdownDrainSeconds + stableTimeoutSeconds + 5),
					SecurityContext:               restrictedPodSecurity(),
					TopologySpreadConstraints: corev1.TopologySpreadConstraintArray{
						spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone"),
					},
					Containers: corev1.ContainerArray{container},
					Volumes: corev1.VolumeArray{
						&corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name()}},
						&corev1.VolumeArgs{Name: pulumi.String("secret"), Secret: &corev1.SecretVolumeSourceArgs{
							SecretName: secret.Metadata.Name(), DefaultMode: pulumi.Int(0o440),
						}},
						&corev1.VolumeArgs{Name: pulumi.String("data"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("2Gi")}},
						&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")}},
					},
				},
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router Deployment: %w", err)
	}

	svc, err := corev1.NewService(ctx, routerName, &corev1.ServiceArgs{
		Metadata: routerMeta(ns, routerName),
		Spec: &corev1.ServiceSpecArgs{
			Selector: stringMap(routerLabels),
			Ports: corev1.ServicePortArray{
				servicePort("http", routerPort, "http"),
				servicePort("http-admin", adminPort, "http-admin"),
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router Service: %w", err)
	}

	minAvailable := 1
	if s.RouterReplicas < 2 {
		// minAvailable equal to the replica count would block every drain.
		minAvailable = 0
	}
	_, err = policyv1.NewPodDisruptionBudget(ctx, routerName, &policyv1.PodDisruptionBudgetArgs{
		Metadata: routerMeta(ns, routerName),
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{
			MinAvailable:               pulumi.Int(minAvailable),
			UnhealthyPodEvictionPolicy: pulumi.String("AlwaysAllow"),
			Selector:                   &metav1.LabelSelectorArgs{MatchLabels: stringMap(routerLabels)},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router PodDisruptionBudget: %w", err)
	}

	tcp := func(port int) networkingv1.NetworkPolicyPortInput {
		return &networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(port), Protocol: pulumi.String("TCP")}
	}
	_, err = networkingv1.NewNetworkPolicy(ctx, routerName, &networkingv1.NetworkPolicyArgs{
		Metadata: routerMeta(ns, routerName),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: &metav1.LabelSelectorArgs{MatchLabels: stringMap(routerLabels)},
			PolicyTypes: pulumi.StringArray{pulumi.String("Ingress")},
			Ingress: networkingv1.NetworkPolicyIngressRuleArray{
				// Model traffic (inline) or mirrored copies (tap), from the mesh.
				&networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: networkingv1.NetworkPolicyPortArray{tcp(routerPort)},
					From:  networkingv1.NetworkPolicyPeerArray{&networkingv1.NetworkPolicyPeerArgs{NamespaceSelector: &metav1.LabelSelectorArgs{}}},
				},
				// Admin port: this namespace only.
				&networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: networkingv1.NetworkPolicyPortArray{tcp(adminPort)},
					From:  networkingv1.NetworkPolicyPeerArray{&networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{}}},
				},
				// Prometheus in `monitoring`: admin, Istio merged metrics, Envoy.
				&networkingv1.NetworkPolicyIngressRuleArgs{
					Ports: networkingv1.NetworkPolicyPortArray{tcp(adminPort), tcp(15020), tcp(15090)},
					From: networkingv1.NetworkPolicyPeerArray{&networkingv1.NetworkPolicyPeerArgs{NamespaceSelector: &metav1.LabelSelectorArgs{
						MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String("monitoring")},
					}}},
				},
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("router NetworkPolicy: %w", err)
	}
	return svc, nil
}

func withFailureThreshold(p *corev1.ProbeArgs, n int) *corev1.ProbeArgs {
	p.FailureThreshold = pulumi.Int(n)
	return p
}

// servicePort names the port for Istio's protocol selection (name prefix
// and appProtocol).
func servicePort(name string, port int, target string) corev1.ServicePortInput {
	return &corev1.ServicePortArgs{
		Name: pulumi.String(name), Port: pulumi.Int(port), TargetPort: pulumi.String(target),
		Protocol: pulumi.String("TCP"), AppProtocol: pulumi.String("http"),
	}
}
