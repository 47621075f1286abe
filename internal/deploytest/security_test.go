package deploytest

import (
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

func deployment(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	u := Find(objs, "Deployment", name)
	require.NotNil(t, u, "no Deployment %s", name)
	var d appsv1.Deployment
	fromUnstructured(t, u, &d)
	return &d
}

// TestPodSecuritySettings checks every pod template field by field, so a
// failure names the setting (the dry-run admission test says only that
// the pod was refused).
func TestPodSecuritySettings(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			for _, u := range OfKind(render(t, ov.name), "Deployment") {
				var d appsv1.Deployment
				fromUnstructured(t, u, &d)
				spec := d.Spec.Template.Spec
				psc := spec.SecurityContext
				require.NotNil(t, psc, "%s: no pod securityContext", d.Name)
				assert.Equal(t, ptrTo(true), psc.RunAsNonRoot, d.Name)
				assert.Equal(t, ptrTo(int64(65532)), psc.RunAsUser, d.Name)
				require.NotNil(t, psc.SeccompProfile, d.Name)
				assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, d.Name)
				assert.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC, "%s: host namespaces", d.Name)
				for _, v := range spec.Volumes {
					assert.Nil(t, v.HostPath, "%s: hostPath volume %s", d.Name, v.Name)
				}
				require.NotEmpty(t, spec.Containers)
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					id := d.Name + "/" + c.Name
					sc := c.SecurityContext
					require.NotNil(t, sc, "%s: no securityContext", id)
					assert.Equal(t, ptrTo(false), sc.AllowPrivilegeEscalation, id)
					assert.Equal(t, ptrTo(true), sc.ReadOnlyRootFilesystem, id)
					assert.Nil(t, sc.Privileged, id)
					require.NotNil(t, sc.Capabilities, id)
					assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, id)
					assert.Empty(t, sc.Capabilities.Add, id)
					assert.False(t, c.Resources.Requests.Cpu().IsZero(), "%s: no cpu request", id)
					assert.False(t, c.Resources.Requests.Memory().IsZero(), "%s: no memory request", id)
					assert.False(t, c.Resources.Limits.Memory().IsZero(), "%s: no memory limit", id)
					assert.NotNil(t, c.ReadinessProbe, "%s: no readiness probe", id)
					assert.NotNil(t, c.LivenessProbe, "%s: no liveness probe", id)
					assert.NotContains(t, c.Image, ":latest", id)
					for _, e := range c.Env {
						assert.False(t, e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil,
							"%s: secret %s in an environment variable (mount it as a file)", id, e.Name)
					}
				}
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestRouterDeployment checks what the router needs from its pod: two
// replicas, probes on the admin port, the config and secret as read-only
// files at the paths the config names, and writable volumes for the SQLite
// store and /tmp under a read-only root filesystem.
func TestRouterDeployment(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, ov.name)
			d := deployment(t, objs, routerName)
			require.NotNil(t, d.Spec.Replicas)
			assert.Equal(t, int32(2), *d.Spec.Replicas)
			require.NotNil(t, d.Spec.Strategy.RollingUpdate)
			assert.Equal(t, "0", d.Spec.Strategy.RollingUpdate.MaxUnavailable.String(), "the router is on the client path")

			spec := d.Spec.Template.Spec
			require.Len(t, spec.Containers, 1)
			c := spec.Containers[0]
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			assert.Equal(t, map[string]int32{"http": 8080, "http-admin": 9090}, ports)
			assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
			assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
			assert.Equal(t, "http-admin", c.ReadinessProbe.HTTPGet.Port.String(), "probes belong on the admin port")
			assert.Equal(t, "http-admin", c.LivenessProbe.HTTPGet.Port.String())

			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range spec.Volumes {
				volumes[v.Name] = v
			}
			// --config points into the ConfigMap mount; the ConfigMap is the
			// rendered (hash-suffixed) one.
			require.Equal(t, []string{"serve", "--config", "/etc/shadowsplit/config/config.yaml"}, c.Args)
			assert.True(t, mounts["config"].ReadOnly)
			assert.Equal(t, "/etc/shadowsplit/config", mounts["config"].MountPath)
			require.NotNil(t, volumes["config"].ConfigMap)
			cm := Find(objs, "ConfigMap", volumes["config"].ConfigMap.Name)
			require.NotNil(t, cm, "the config volume names ConfigMap %s, which the overlay does not render", volumes["config"].ConfigMap.Name)
			assert.True(t, strings.HasPrefix(cm.GetName(), "shadowsplit-router-config-"), "a hash-suffixed name rolls the pods on config change")

			require.NotNil(t, volumes["secret"].Secret)
			assert.Equal(t, routerSecret, volumes["secret"].Secret.SecretName)
			assert.True(t, mounts["secret"].ReadOnly)
			require.NotNil(t, volumes["secret"].Secret.DefaultMode)
			assert.Zero(t, *volumes["secret"].Secret.DefaultMode&0o007, "the secret files must not be world-readable")

			cfg := routerConfig(t, objs)
			for field, file := range map[string]string{
				"admin.tokenFile": cfg.Admin.TokenFile, "store.inputs.fingerprintKeyFile": cfg.Store.Inputs.FingerprintKeyFile,
			} {
				assert.True(t, strings.HasPrefix(file, mounts["secret"].MountPath+"/"),
					"%s %s is not in the secret mount %s", field, file, mounts["secret"].MountPath)
			}
			assert.Equal(t, mounts["data"].MountPath, filepath.Dir(cfg.Store.SQLite.Path),
				"store.sqlite.path must be on the writable data volume (the root filesystem is read-only)")

			for name, path := range map[string]string{"data": "/var/lib/shadowsplit", "tmp": "/tmp"} {
				assert.Equal(t, path, mounts[name].MountPath)
				assert.False(t, mounts[name].ReadOnly)
				require.NotNil(t, volumes[name].EmptyDir, "volume %s", name)
				assert.NotNil(t, volumes[name].EmptyDir.SizeLimit, "volume %s: unbounded emptyDir", name)
			}
			assert.Equal(t, ptrTo(int64(65532)), spec.SecurityContext.FSGroup, "the volumes must be writable by the non-root user")

			// Grace must cover the drain and the longest stable call.
			require.NotNil(t, spec.TerminationGracePeriodSeconds)
			need := cfg.ShutdownDrain.Duration + cfg.Stable.Timeout.Duration
			assert.Greater(t, *spec.TerminationGracePeriodSeconds, int64(need.Seconds()),
				"terminationGracePeriodSeconds below shutdownDrain + stable.timeout (%s)", need)
		})
	}
}

// TestServicesPDBAndNetworkPolicy checks the objects that select pods do
// select them, and that every Service port is named for Istio's protocol
// selection.
func TestServicesPDBAndNetworkPolicy(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, ov.name)
			podLabels := map[string]labels.Set{}
			for _, u := range OfKind(objs, "Deployment") {
				var d appsv1.Deployment
				fromUnstructured(t, u, &d)
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				require.NoError(t, err)
				assert.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: selector does not match its template", d.Name)
				podLabels[d.Name] = d.Spec.Template.Labels
			}
			selects := func(sel labels.Selector) []string {
				var out []string
				for name, l := range podLabels {
					if sel.Matches(l) {
						out = append(out, name)
					}
				}
				return out
			}

			wantSelect := map[string]string{
				routerName: routerName, stableService: "model-stable", canaryService: "model-canary", vsName: "model-stable",
			}
			for _, u := range OfKind(objs, "Service") {
				var s corev1.Service
				fromUnstructured(t, u, &s)
				assert.Equal(t, []string{wantSelect[s.Name]}, selects(labels.SelectorFromSet(s.Spec.Selector)), "Service %s selects", s.Name)
				for _, p := range s.Spec.Ports {
					assert.True(t, p.Name == "http" || strings.HasPrefix(p.Name, "http-"),
						"Service %s port %s: Istio selects the protocol by the name prefix", s.Name, p.Name)
					assert.Equal(t, ptrTo("http"), p.AppProtocol, "Service %s port %s", s.Name, p.Name)
				}
			}

			var pdb policyv1.PodDisruptionBudget
			fromUnstructured(t, Find(objs, "PodDisruptionBudget", routerName), &pdb)
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			require.NoError(t, err)
			assert.Equal(t, []string{routerName}, selects(sel))
			require.NotNil(t, pdb.Spec.MinAvailable)
			assert.Less(t, pdb.Spec.MinAvailable.IntValue(), int(*deployment(t, objs, routerName).Spec.Replicas),
				"minAvailable equal to replicas would block every node drain")

			var np networkingv1.NetworkPolicy
			fromUnstructured(t, Find(objs, "NetworkPolicy", routerName), &np)
			sel, err = metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			require.NoError(t, err)
			assert.Equal(t, []string{routerName}, selects(sel))
			allowed := map[int]bool{}
			for _, r := range np.Spec.Ingress {
				require.NotEmpty(t, r.From, "an ingress rule without `from` admits everyone")
				for _, p := range r.Ports {
					allowed[p.Port.IntValue()] = true
				}
			}
			assert.True(t, allowed[8080] && allowed[9090], "data and admin ports must be reachable: %v", allowed)
		})
	}
}

// TestRouterConfigMatchesTheVirtualService reads the router config out of
// the rendered ConfigMap and checks the manifests agree: the mode is the
// VirtualService's shape, the router calls the model Services directly (a
// rendered Service, on a port it has, never the public host), and the
// VirtualService routes to rendered Services.
func TestRouterConfigMatchesTheVirtualService(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, ov.name)
			cfg := routerConfig(t, objs)
			assert.Equal(t, ov.shape, cfg.Mode)

			servicePorts := map[string][]int32{}
			for _, u := range OfKind(objs, "Service") {
				var s corev1.Service
				fromUnstructured(t, u, &s)
				for _, p := range s.Spec.Ports {
					servicePorts[s.Name] = append(servicePorts[s.Name], p.Port)
				}
			}
			for field, raw := range map[string]string{"stable.url": cfg.Stable.URL, "canary.url": cfg.Canary.URL} {
				u, err := url.Parse(raw)
				require.NoError(t, err, field)
				host, port, err := net.SplitHostPort(u.Host)
				require.NoError(t, err, "%s %s: name the port", field, raw)
				n, err := strconv.Atoi(port)
				require.NoError(t, err)
				assert.Contains(t, servicePorts[host], int32(n), "%s %s: no such Service port", field, raw)
				assert.NotEqual(t, vsName, host, "%s: the public host would loop through the VirtualService", field)
			}
			assert.Equal(t, "http://"+stableService+":8080", cfg.Stable.URL)
			assert.Equal(t, "http://"+canaryService+":8080", cfg.Canary.URL)

			vs := Find(objs, "VirtualService", vsName)
			require.NotNil(t, vs)
			hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
			require.Len(t, hosts, 1)
			assert.Contains(t, servicePorts, hosts[0], "the public host needs a Service for DNS")
			http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
			require.Len(t, http, 1)
			route := http[0].(map[string]any)
			assert.Equal(t, "shadowsplit", route["name"])
			dests := route["route"].([]any)
			var hostsSeen []string
			for _, d := range dests {
				dest := d.(map[string]any)["destination"].(map[string]any)
				h := dest["host"].(string)
				hostsSeen = append(hostsSeen, h)
				port := dest["port"].(map[string]any)["number"]
				assert.Contains(t, servicePorts[h], int32(toInt(t, port)), "destination %s port %v", h, port)
			}
			if ov.shape == "inline" {
				assert.Equal(t, []string{routerName, canaryService}, hostsSeen)
			} else {
				assert.Equal(t, []string{stableService, canaryService}, hostsSeen)
				mirror := route["mirror"].(map[string]any)
				assert.Equal(t, routerName, mirror["host"])
			}
			for _, u := range OfKind(objs, "DestinationRule") {
				h, _, _ := unstructured.NestedString(u.Object, "spec", "host")
				assert.Contains(t, servicePorts, h, "DestinationRule %s for an unknown host", u.GetName())
				_, hasSubsets, _ := unstructured.NestedSlice(u.Object, "spec", "subsets")
				assert.False(t, hasSubsets, "DestinationRule %s: the router matches destinations by host, not subset", u.GetName())
			}
		})
	}
}

func toInt(t *testing.T, v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	case int:
		return n
	}
	t.Fatalf("not a number: %T %v", v, v)
	return 0
}

// shippedConfig is the part of the router's config the manifests must agree
// with. The router itself (cmd/router) decodes the whole file strictly; see
// TestRenderedConfigStartsTheRouter.
type shippedConfig struct {
	Mode   string `json:"mode"`
	Stable struct {
		URL     string   `json:"url"`
		Timeout duration `json:"timeout"`
	} `json:"stable"`
	Canary struct {
		URL string `json:"url"`
	} `json:"canary"`
	Admin struct {
		TokenFile string `json:"tokenFile"`
	} `json:"admin"`
	Store struct {
		SQLite struct {
			Path string `json:"path"`
		} `json:"sqlite"`
		Inputs struct {
			FingerprintKeyFile string `json:"fingerprintKeyFile"`
		} `json:"inputs"`
	} `json:"store"`
	ShutdownDrain duration `json:"shutdownDrain"`
}

func routerConfig(t *testing.T, objs []*unstructured.Unstructured) shippedConfig {
	t.Helper()
	raw := routerConfigYAML(t, objs)
	var c shippedConfig
	require.NoError(t, yaml.Unmarshal([]byte(raw), &c))
	return c
}

func routerConfigYAML(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	cms := OfKind(objs, "ConfigMap")
	require.Len(t, cms, 1)
	raw, ok, _ := unstructured.NestedString(cms[0].Object, "data", "config.yaml")
	require.True(t, ok, "ConfigMap %s has no config.yaml", cms[0].GetName())
	return raw
}

// duration reads "30s" the way the router's config does.
type duration = metav1.Duration

// TestUserOverlaySetsImage renders the overlay the way docs/install.md
// step 4 tells users to: their own kustomization with `images:` pointing
// at their registry. Every container (the router and the example models,
// which run /modelserver from the same image) takes it.
func TestUserOverlaySetsImage(t *testing.T) {
	const image = "registry.example.com/shadowsplit/router:v0.1.0"
	objs := renderUserOverlay(t, "inline", "namespace: ml\nimages:\n- name: shadowsplit/router\n"+
		"  newName: registry.example.com/shadowsplit/router\n  newTag: v0.1.0\n")
	deployments := OfKind(objs, "Deployment")
	require.Len(t, deployments, 3)
	for _, u := range deployments {
		var d appsv1.Deployment
		fromUnstructured(t, u, &d)
		for _, c := range d.Spec.Template.Spec.Containers {
			assert.Equal(t, image, c.Image, "%s/%s", d.Name, c.Name)
		}
		assert.Equal(t, "ml", d.Namespace)
	}
}
