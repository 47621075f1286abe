package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tService    = "kubernetes:core/v1:Service"
	tNamespace  = "kubernetes:core/v1:Namespace"
	tConfigMap  = "kubernetes:core/v1:ConfigMap"
	tSecret     = "kubernetes:core/v1:Secret"
	tSA         = "kubernetes:core/v1:ServiceAccount"
	tRole       = "kubernetes:rbac.authorization.k8s.io/v1:Role"
	tBinding    = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
	tPDB        = "kubernetes:policy/v1:PodDisruptionBudget"
	tNetpol     = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	tVS         = "kubernetes:networking.istio.io/v1:VirtualService"
	tDR         = "kubernetes:networking.istio.io/v1:DestinationRule"
	tCRD        = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
)

func TestDefaultsDeployEverythingAndExportURLs(t *testing.T) {
	r, err := runProgram(t, withToken())
	require.NoError(t, err)

	counts := map[string]int{}
	for _, x := range r.resources {
		counts[x.Type]++
		if x.Type != tNamespace {
			assert.Equal(t, "models", path(x.Inputs, "metadata", "namespace"), "%s %s", x.Type, x.Name)
		}
	}
	assert.Equal(t, map[string]int{
		tNamespace: 1, tDeployment: 3, tService: 4, tConfigMap: 1, tSecret: 1, tSA: 1, tRole: 1, tBinding: 1,
		tPDB: 1, tNetpol: 1, tDR: 3, tVS: 1,
	}, counts, "resources: %v", r.names())

	ns := r.get(t, tNamespace, "models")
	assert.Equal(t, map[string]any{
		"istio-injection":                    "enabled",
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}, path(ns.Inputs, "metadata", "labels"))

	for _, name := range []string{"model", "model-stable", "model-canary", "shadowsplit-router"} {
		r.get(t, tService, name)
	}
	for _, name := range []string{"model-stable", "model-canary", "shadowsplit-router"} {
		dr := r.get(t, tDR, name)
		assert.Equal(t, name, path(dr.Inputs, "spec", "host"))
		assert.Nil(t, path(dr.Inputs, "spec", "subsets"), "the router matches destinations by host")
	}

	assert.Equal(t, map[string]string{
		"modelUrl":       "http://model.models.svc.cluster.local:8080",
		"reportUrl":      "http://shadowsplit-router.models.svc.cluster.local:9090/reports",
		"namespace":      "models",
		"virtualService": "model",
		"shape":          "inline",
	}, r.outputs)
}

func TestVirtualServiceShapes(t *testing.T) {
	dest := func(host string) map[string]any {
		return map[string]any{"host": host, "port": map[string]any{"number": float64(8080)}}
	}
	t.Run("inline 100/0 by default", func(t *testing.T) {
		r, err := runProgram(t, withToken())
		require.NoError(t, err)
		vs := r.get(t, tVS, "model")
		assert.Equal(t, []any{"model"}, path(vs.Inputs, "spec", "hosts"))
		route := path(vs.Inputs, "spec", "http", 0).(map[string]any)
		assert.Equal(t, map[string]any{
			"name": "shadowsplit",
			"route": []any{
				map[string]any{"destination": dest("shadowsplit-router"), "weight": float64(100)},
				map[string]any{"destination": dest("model-canary"), "weight": float64(0)},
			},
		}, route)
	})
	t.Run("tap 90/10 with a 25% mirror", func(t *testing.T) {
		r, err := runProgram(t, withToken("shape", "tap", "canaryWeight", "10", "mirrorPercent", "25"))
		require.NoError(t, err)
		vs := r.get(t, tVS, "model")
		assert.Equal(t, map[string]any{
			"name": "shadowsplit",
			"route": []any{
				map[string]any{"destination": dest("model-stable"), "weight": float64(90)},
				map[string]any{"destination": dest("model-canary"), "weight": float64(10)},
			},
			"mirror":           dest("shadowsplit-router"),
			"mirrorPercentage": map[string]any{"value": float64(25)},
		}, path(vs.Inputs, "spec", "http", 0))
		assert.Equal(t, "tap", r.outputs["shape"])

		var cfg map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &cfg))
		assert.Equal(t, "tap", cfg["mode"])
		assert.Equal(t, 100, path(cfg, "shadow", "percent"), "Istio samples (mirrorPercentage); the router replays every copy")
	})
	t.Run("the router owns the weights after install", func(t *testing.T) {
		assert.Equal(t, []string{"spec.http[0].route[0].weight", "spec.http[0].route[1].weight"},
			weightPaths(Settings{Shape: shapeInline}))
		assert.Equal(t, []string{"spec.http[0].route[0].weight", "spec.http[0].route[1].weight", "spec.http[0].mirrorPercentage"},
			weightPaths(Settings{Shape: shapeTap}))
	})
}

func routerConfigOf(t *testing.T, r result) string {
	t.Helper()
	cms := r.byType(tConfigMap)
	require.Len(t, cms, 1)
	s, ok := path(cms[0].Inputs, "data", "config.yaml").(string)
	require.True(t, ok)
	return s
}

// TestRoleMatchesKustomizeRBAC keeps the Pulumi Role equal to
// deploy/kustomize/base/rbac.yaml (whose behaviour internal/deploytest and
// internal/istio prove on a real API server), with the VirtualService rule
// naming this stack's VirtualService.
func TestRoleMatchesKustomizeRBAC(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "kustomize", "base", "rbac.yaml"))
	require.NoError(t, err)
	var want []any
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	for {
		var doc map[string]any
		if dec.Decode(&doc) != nil {
			break
		}
		if doc["kind"] == "Role" {
			want = doc["rules"].([]any)
		}
	}
	require.NotEmpty(t, want)
	// The kustomize overlay patches the placeholder to its VirtualService.
	for _, rule := range want {
		rm := rule.(map[string]any)
		if names, ok := rm["resourceNames"].([]any); ok && rm["resources"].([]any)[0] == "virtualservices" {
			require.Equal(t, []any{"model"}, names)
			rm["resourceNames"] = []any{"iris"}
		}
	}

	r, err := runProgram(t, withToken("app", "iris", "namespace", "ml"))
	require.NoError(t, err)
	role := r.get(t, tRole, "shadowsplit-router")
	assert.Equal(t, "ml", path(role.Inputs, "metadata", "namespace"))
	assert.Equal(t, normalise(want), normalise(path(role.Inputs, "rules")))

	rb := r.get(t, tBinding, "shadowsplit-router")
	assert.Equal(t, map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shadowsplit-router"},
		path(rb.Inputs, "roleRef"))
	assert.Equal(t, []any{map[string]any{"kind": "ServiceAccount", "name": "shadowsplit-router", "namespace": "ml"}},
		path(rb.Inputs, "subjects"))

	// Nothing cluster-scoped beyond the Namespace itself.
	for _, x := range r.resources {
		assert.NotContains(t, x.Type, "ClusterRole", x.Name)
	}
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &cfg))
	assert.Equal(t, map[string]any{
		"enabled": true, "target": "kube", "namespace": "ml", "name": "iris", "route": "shadowsplit",
		"hosts":          map[string]any{"router": "shadowsplit-router", "stable": "iris-stable", "canary": "iris-canary"},
		"leaderElection": map[string]any{"leaseName": "shadowsplit-router"},
	}, cfg["rollout"], "the rollout manages this stack's VirtualService and holds the Lease the Role allows")
	assert.Equal(t, "iris", r.outputs["virtualService"])
	assert.Equal(t, "http://iris.ml.svc.cluster.local:8080", r.outputs["modelUrl"])
}

// normalise drops empty lists so the YAML rule `resourceNames` absent and a
// Pulumi rule without it compare equal, and turns YAML's []any of strings
// into the same shape as the mocks'.
func normalise(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			out = append(out, normalise(e))
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			if s, ok := e.([]any); ok && len(s) == 0 {
				continue
			}
			out[k] = normalise(e)
		}
		return out
	}
	return v
}

func TestRouterWorkload(t *testing.T) {
	r, err := runProgram(t, withToken("routerImage", "registry.example.com/shadowsplit/router:v1.2.3"))
	require.NoError(t, err)
	d := r.get(t, tDeployment, "shadowsplit-router")
	assert.Equal(t, float64(2), path(d.Inputs, "spec", "replicas"))
	assert.Equal(t, float64(0), path(d.Inputs, "spec", "strategy", "rollingUpdate", "maxUnavailable"))
	pod := path(d.Inputs, "spec", "template", "spec").(map[string]any)
	assert.Equal(t, "shadowsplit-router", pod["serviceAccountName"])
	assertRestricted(t, pod, "shadowsplit-router")

	c := path(pod, "containers", 0).(map[string]any)
	assert.Equal(t, "registry.example.com/shadowsplit/router:v1.2.3", c["image"])
	assert.Equal(t, []any{"serve", "--config", "/etc/shadowsplit/config/config.yaml"}, c["args"])
	assert.Equal(t, "/readyz", path(c, "readinessProbe", "httpGet", "path"))
	assert.Equal(t, "http-admin", path(c, "readinessProbe", "httpGet", "port"))
	assert.Equal(t, "/healthz", path(c, "livenessProbe", "httpGet", "path"))
	assert.Equal(t, "http-admin", path(c, "livenessProbe", "httpGet", "port"))

	// The volumes name the auto-named ConfigMap and Secret, so a config or
	// token change (a new name) rolls the pods.
	cm := r.byType(tConfigMap)[0]
	secret := r.byType(tSecret)[0]
	assert.Equal(t, "shadowsplit-router-config-mock1234", path(cm.Inputs, "metadata", "name"))
	vols := map[string]any{}
	for _, v := range pod["volumes"].([]any) {
		vols[v.(map[string]any)["name"].(string)] = v
	}
	assert.Equal(t, path(cm.Inputs, "metadata", "name"), path(vols["config"], "configMap", "name"))
	assert.Equal(t, path(secret.Inputs, "metadata", "name"), path(vols["secret"], "secret", "secretName"))
	assert.Equal(t, float64(0o440), path(vols["secret"], "secret", "defaultMode"))
	assert.NotNil(t, path(vols["data"], "emptyDir", "sizeLimit"), "the SQLite store needs a bounded writable volume")

	// The admin token reaches the Secret as a secret (encrypted in Pulumi's
	// state), as a file the config names.
	assert.Equal(t, "test-token", path(secret.Inputs, "stringData", "admin-token"))
	assert.Equal(t, "test-fingerprint-key-0123456789", path(secret.Inputs, "stringData", "fingerprint-key"))
	assert.True(t, secret.Secrets["stringData"], "the token must stay a Pulumi secret")
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &cfg))
	assert.Equal(t, "/etc/shadowsplit/secret/admin-token", path(cfg, "admin", "tokenFile"))
	assert.Equal(t, "/etc/shadowsplit/secret/fingerprint-key", path(cfg, "store", "inputs", "fingerprintKeyFile"))
	assert.Equal(t, "/var/lib/shadowsplit/diffs.db", path(cfg, "store", "sqlite", "path"), "on the data volume")

	svc := r.get(t, tService, "shadowsplit-router")
	assert.Equal(t, []any{
		map[string]any{"name": "http", "port": float64(8080), "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
		map[string]any{"name": "http-admin", "port": float64(9090), "targetPort": "http-admin", "protocol": "TCP", "appProtocol": "http"},
	}, path(svc.Inputs, "spec", "ports"))

	pdb := r.get(t, tPDB, "shadowsplit-router")
	assert.Equal(t, float64(1), path(pdb.Inputs, "spec", "minAvailable"))
	np := r.get(t, tNetpol, "shadowsplit-router")
	assert.Equal(t, map[string]any{"app.kubernetes.io/name": "shadowsplit-router"}, path(np.Inputs, "spec", "podSelector", "matchLabels"))
	assert.Equal(t, float64(8080), path(np.Inputs, "spec", "ingress", 0, "ports", 0, "port"))
}

// assertRestricted checks the Pod Security "restricted" fields of a pod spec.
func assertRestricted(t *testing.T, pod map[string]any, id string) {
	t.Helper()
	assert.Equal(t, true, path(pod, "securityContext", "runAsNonRoot"), id)
	assert.Equal(t, float64(65532), path(pod, "securityContext", "runAsUser"), id)
	assert.Equal(t, "RuntimeDefault", path(pod, "securityContext", "seccompProfile", "type"), id)
	for _, c := range pod["containers"].([]any) {
		assert.Equal(t, false, path(c, "securityContext", "allowPrivilegeEscalation"), id)
		assert.Equal(t, true, path(c, "securityContext", "readOnlyRootFilesystem"), id)
		assert.Equal(t, []any{"ALL"}, path(c, "securityContext", "capabilities", "drop"), id)
		assert.NotNil(t, path(c, "resources", "limits", "memory"), id)
	}
}

func TestModelWorkloads(t *testing.T) {
	t.Run("example model server by default", func(t *testing.T) {
		r, err := runProgram(t, withToken("canaryModelName", "demo-v2"))
		require.NoError(t, err)
		for variant, name := range map[string]string{"stable": "demo", "canary": "demo-v2"} {
			d := r.get(t, tDeployment, "model-"+variant)
			pod := path(d.Inputs, "spec", "template", "spec").(map[string]any)
			assertRestricted(t, pod, variant)
			assert.Equal(t, false, pod["automountServiceAccountToken"])
			assert.Equal(t, []any{"/modelserver"}, path(pod, "containers", 0, "command"))
			assert.Equal(t, []any{"--listen", ":8080", "--model-name", name, "--variant", variant}, path(pod, "containers", 0, "args"))
			assert.Equal(t, map[string]any{"app": "model", "version": variant}, path(d.Inputs, "spec", "selector", "matchLabels"))
			svc := r.get(t, tService, "model-"+variant)
			assert.Equal(t, map[string]any{"app": "model", "version": variant}, path(svc.Inputs, "spec", "selector"))
		}
		public := r.get(t, tService, "model")
		assert.Equal(t, map[string]any{"app": "model", "version": "stable"}, path(public.Inputs, "spec", "selector"),
			"callers outside the mesh reach stable")
		var cfg map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &cfg))
		assert.Equal(t, "demo-v2", path(cfg, "canary", "model"), "the router rewrites the model name on the shadow path")
	})
	t.Run("your own images", func(t *testing.T) {
		r, err := runProgram(t, withToken(
			"stable", `{"image": "registry.example.com/iris:v1", "port": 9000, "readinessPath": "/ready", "replicas": 3}`,
			"canary", `{"image": "registry.example.com/iris:v2", "args": ["--threads", "2"], "port": 9000, "readinessPath": "/ready"}`))
		require.NoError(t, err)
		stable := r.get(t, tDeployment, "model-stable")
		assert.Equal(t, float64(3), path(stable.Inputs, "spec", "replicas"))
		c := path(stable.Inputs, "spec", "template", "spec", "containers", 0).(map[string]any)
		assert.Equal(t, "registry.example.com/iris:v1", c["image"])
		assert.Nil(t, c["command"], "the image's own entrypoint")
		assert.Equal(t, "/ready", path(c, "readinessProbe", "httpGet", "path"))
		canary := r.get(t, tDeployment, "model-canary")
		assert.Equal(t, []any{"--threads", "2"}, path(canary.Inputs, "spec", "template", "spec", "containers", 0, "args"))

		var cfg map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &cfg))
		assert.Equal(t, "http://model-stable:9000", path(cfg, "stable", "url"))
		assert.Equal(t, "http://model-canary:9000", path(cfg, "canary", "url"))
		vs := r.get(t, tVS, "model")
		assert.Equal(t, float64(9000), path(vs.Inputs, "spec", "http", 0, "route", 1, "destination", "port", "number"))
	})
}

// TestRouterConfigMatchesKustomize: for the same model, the config this
// program writes is the one deploy/kustomize ships, which
// internal/deploytest runs the real router on.
func TestRouterConfigMatchesKustomize(t *testing.T) {
	for _, shape := range []string{shapeInline, shapeTap} {
		t.Run(shape, func(t *testing.T) {
			r, err := runProgram(t, withToken("shape", shape))
			require.NoError(t, err)
			var got, want map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(routerConfigOf(t, r)), &got))
			raw, err := os.ReadFile(filepath.Join("..", "kustomize", "overlays", shape, "router-config.yaml"))
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(raw, &want))
			assert.Equal(t, want, got)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Run("admin token required", func(t *testing.T) {
		_, err := runProgram(t, map[string]string{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "pulumi config set --secret shadowsplit:adminToken")
	})
	t.Run("fingerprint key required", func(t *testing.T) {
		_, err := runProgram(t, map[string]string{"adminToken": "x"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "pulumi config set --secret shadowsplit:fingerprintKey")
	})
	t.Run("every bad key named at once", func(t *testing.T) {
		_, err := runProgram(t, withToken("shape", "sideways", "canaryWeight", "150", "mirrorPercent", "lots",
			"namespace", "Bad_NS", "createNamespace", "maybe", "stable", `{"port": 0}`))
		require.Error(t, err)
		for _, want := range []string{
			`shadowsplit:shape: "sideways": must be inline or tap`,
			`shadowsplit:canaryWeight: "150"`,
			`shadowsplit:mirrorPercent: "lots": must be a number`,
			`shadowsplit:namespace: "Bad_NS"`,
			`shadowsplit:createNamespace: "maybe": must be true or false`,
		} {
			assert.Contains(t, err.Error(), want)
		}
	})
	t.Run("existing namespace", func(t *testing.T) {
		r, err := runProgram(t, withToken("createNamespace", "false", "namespace", "ml"))
		require.NoError(t, err)
		assert.Empty(t, r.byType(tNamespace))
		assert.Equal(t, "ml", r.outputs["namespace"])
	})
}

const twoCRDs = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: virtualservices.networking.istio.io
  labels: {app: istio-pilot}
spec:
  group: networking.istio.io
  names: {kind: VirtualService, plural: virtualservices}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: destinationrules.networking.istio.io
spec:
  group: networking.istio.io
  names: {kind: DestinationRule, plural: destinationrules}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
`

func TestIstioCRDs(t *testing.T) {
	t.Run("not installed unless asked", func(t *testing.T) {
		r, err := runProgram(t, withToken())
		require.NoError(t, err)
		assert.Empty(t, r.byType(tCRD))
	})
	t.Run("from a URL", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(twoCRDs))
		}))
		defer srv.Close()
		r, err := runProgram(t, withToken("installIstioCrds", "true", "istioCrds", srv.URL+"/crds.yaml"))
		require.NoError(t, err)
		crds := r.byType(tCRD)
		require.Len(t, crds, 2)
		vs := r.get(t, tCRD, "virtualservices.networking.istio.io")
		assert.Nil(t, path(vs.Inputs, "metadata", "namespace"), "CRDs are cluster-scoped")
		assert.Equal(t, "networking.istio.io", path(vs.Inputs, "spec", "group"))
		assert.Equal(t, map[string]any{"app": "istio-pilot"}, path(vs.Inputs, "metadata", "labels"))
	})
	t.Run("from a file, which must hold only CRDs", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "crds.yaml")
		require.NoError(t, os.WriteFile(file, []byte(twoCRDs+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o600))
		_, err := runProgram(t, withToken("installIstioCrds", "true", "istioCrds", file))
		require.Error(t, err)
		assert.Contains(t, err.Error(), `document 2 (v1 ConfigMap "x") is not an apiextensions.k8s.io/v1 CustomResourceDefinition`)
	})
	t.Run("a download that fails names the URL", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		_, err := runProgram(t, withToken("installIstioCrds", "true", "istioCrds", srv.URL+"/missing.yaml"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), srv.URL+"/missing.yaml")
		assert.Contains(t, err.Error(), "404")
	})
}
