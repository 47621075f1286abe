package main

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// nonRootUID is distroless's "nonroot" user, the image's USER.
const nonRootUID = 65532

// restrictedPodSecurity is the pod half of Pod Security "restricted":
// non-root, RuntimeDefault seccomp. fsGroup makes emptyDir and Secret
// volumes readable and writable by the non-root user.
func restrictedPodSecurity() *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:   pulumi.Bool(true),
		RunAsUser:      pulumi.Int(nonRootUID),
		RunAsGroup:     pulumi.Int(nonRootUID),
		FsGroup:        pulumi.Int(nonRootUID),
		SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// restrictedContainerSecurity is the container half: no privilege
// escalation, no capabilities, read-only root filesystem.
func restrictedContainerSecurity() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		RunAsNonRoot:             pulumi.Bool(true),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.StringArray{pulumi.String("ALL")}},
	}
}

func httpProbe(path, port string, period int) *corev1.ProbeArgs {
	return &corev1.ProbeArgs{
		HttpGet:        &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String(port)},
		PeriodSeconds:  pulumi.Int(period),
		TimeoutSeconds: pulumi.Int(2),
	}
}

func stringArray(xs []string) pulumi.StringArray {
	out := make(pulumi.StringArray, len(xs))
	for i, x := range xs {
		out[i] = pulumi.String(x)
	}
	return out
}

func stringMap(m map[string]string) pulumi.StringMap {
	out := make(pulumi.StringMap, len(m))
	for k, v := range m {
		out[k] = pulumi.String(v)
	}
	return out
}
