package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"
)

// registered is one resource the program declared, with its inputs as
// plain Go values (secrets unwrapped; see secretPaths).
type registered struct {
	Type   string
	Name   string
	Inputs map[string]any
	// Secrets lists the top-level input keys that held a secret anywhere
	// inside them.
	Secrets map[string]bool
}

// mocks stands in for the Pulumi engine and the Kubernetes provider: it
// records every resource and returns its inputs as outputs. Like the real
// provider, it names an object that has no metadata.name after its logical
// name plus a suffix (auto-naming). Safe for concurrent use: the SDK
// registers resources from several goroutines.
type mocks struct {
	mu        sync.Mutex
	resources []registered
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	outs := args.Inputs.Copy()
	if md, ok := outs["metadata"]; ok && md.IsObject() {
		obj := md.ObjectValue().Copy()
		if _, has := obj["name"]; !has {
			obj["name"] = resource.NewStringProperty(args.Name + "-mock1234")
		}
		outs["metadata"] = resource.NewObjectProperty(obj)
	}
	r := registered{Type: args.TypeToken, Name: args.Name, Inputs: map[string]any{}, Secrets: map[string]bool{}}
	for k, v := range outs {
		r.Inputs[string(k)] = plain(v)
		r.Secrets[string(k)] = v.ContainsSecrets()
	}
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()
	return args.Name + "-id", outs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

// plain turns a property value into ordinary Go values, unwrapping secrets
// and known outputs.
func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		return plain(v.OutputValue().Element)
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = plain(e)
		}
		return out
	case v.IsArray():
		out := make([]any, 0, len(v.ArrayValue()))
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	}
	return v.Mappable()
}

// result is one run of the program under mocks.
type result struct {
	resources []registered
	outputs   map[string]string
}

// byType returns the resources of a type token such as
// "kubernetes:apps/v1:Deployment".
func (r result) byType(token string) []registered {
	var out []registered
	for _, x := range r.resources {
		if x.Type == token {
			out = append(out, x)
		}
	}
	return out
}

// get returns the one resource of that type whose metadata.name is name.
func (r result) get(t *testing.T, token, name string) registered {
	t.Helper()
	for _, x := range r.byType(token) {
		if path(x.Inputs, "metadata", "name") == name {
			return x
		}
	}
	t.Fatalf("no %s named %q among %d resources: %v", token, name, len(r.resources), r.names())
	return registered{}
}

func (r result) names() []string {
	var out []string
	for _, x := range r.resources {
		out = append(out, fmt.Sprintf("%s %v", x.Type, path(x.Inputs, "metadata", "name")))
	}
	return out
}

// path walks maps and slices by key or index.
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

// runProgram runs program under mocks with the given shadowsplit:* config
// (keys without the namespace) and returns what it declared and exported.
func runProgram(t *testing.T, cfg map[string]string) (result, error) {
	t.Helper()
	full := map[string]string{}
	for k, v := range cfg {
		full[configNamespace+":"+k] = v
	}
	js, err := json.Marshal(full)
	require.NoError(t, err)
	t.Setenv(pulumi.EnvConfig, string(js))

	m := &mocks{}
	outputs := map[string]string{}
	err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		out, err := program(ctx)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		wg.Add(1)
		pulumi.All(out.ModelURL, out.ReportURL, out.Namespace, out.VirtualService, out.Shape).ApplyT(func(v []any) error {
			defer wg.Done()
			for i, k := range []string{"modelUrl", "reportUrl", "namespace", "virtualService", "shape"} {
				outputs[k] = v[i].(string)
			}
			return nil
		})
		wg.Wait()
		return nil
	}, pulumi.WithMocks("shadowsplit", "test", m))
	m.mu.Lock()
	defer m.mu.Unlock()
	return result{resources: append([]registered(nil), m.resources...), outputs: outputs}, err
}

// withToken is the minimal valid config: the admin token and the
// fingerprint key are the required keys.
func withToken(kv ...string) map[string]string {
	cfg := map[string]string{"adminToken": "test-token", "fingerprintKey": "test-fingerprint-key-0123456789"}
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	return cfg
}
