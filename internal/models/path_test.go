package models

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path           string
		proto          Protocol
		model, version string
		ok             bool
	}{
		{"/v1/models/iris:predict", ProtocolV1, "iris", "", true},
		{"/v1/models/my-model.v2:predict", ProtocolV1, "my-model.v2", "", true},
		{"/v1/models/a:b:predict", ProtocolV1, "a:b", "", true},
		{"/v2/models/iris/infer", ProtocolV2, "iris", "", true},
		{"/v2/models/iris/versions/3/infer", ProtocolV2, "iris", "3", true},
		// Health, metadata and readiness are passed through, never parsed as inference.
		{"/v1/models/iris", ProtocolUnknown, "", "", false},
		{"/v1/models/iris:explain", ProtocolUnknown, "", "", false},
		{"/v2/health/ready", ProtocolUnknown, "", "", false},
		{"/v2/health/live", ProtocolUnknown, "", "", false},
		{"/v2", ProtocolUnknown, "", "", false},
		{"/v2/models/iris", ProtocolUnknown, "", "", false},
		{"/v2/models/iris/ready", ProtocolUnknown, "", "", false},
		{"/v2/models/iris/versions/3", ProtocolUnknown, "", "", false},
		// Malformed shapes.
		{"/v1/models/:predict", ProtocolUnknown, "", "", false},
		{"/v1/models/a/b:predict", ProtocolUnknown, "", "", false},
		{"/v1/models/..:predict", ProtocolUnknown, "", "", false},
		{"/v2/models//infer", ProtocolUnknown, "", "", false},
		{"/v2/models/a/b/infer", ProtocolUnknown, "", "", false},
		{"/v2/models/iris/versions//infer", ProtocolUnknown, "", "", false},
		{"/v2/models/iris/versions/1/2/infer", ProtocolUnknown, "", "", false},
		{"/v2/models/iris/infer/", ProtocolUnknown, "", "", false},
		{"/V2/models/iris/infer", ProtocolUnknown, "", "", false},
		{"", ProtocolUnknown, "", "", false},
		{"/", ProtocolUnknown, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			proto, model, version, ok := ParsePath(tt.path)
			assert.Equal(t, tt.proto, proto)
			assert.Equal(t, tt.model, model)
			assert.Equal(t, tt.version, version)
			assert.Equal(t, tt.ok, ok)
		})
	}
}

func TestRewriteModel(t *testing.T) {
	tests := []struct{ path, model, want string }{
		{"/v1/models/iris:predict", "iris-canary", "/v1/models/iris-canary:predict"},
		{"/v2/models/iris/infer", "iris-canary", "/v2/models/iris-canary/infer"},
		{"/v2/models/iris/versions/3/infer", "iris-canary", "/v2/models/iris-canary/versions/3/infer"},
		{"/v2/models/iris/infer", "", "/v2/models/iris/infer"},
		{"/v2/models/iris/infer", "iris", "/v2/models/iris/infer"},
		{"/v2/models/iris/infer", "../admin", "/v2/models/iris/infer"},
		{"/v2/health/ready", "x", "/v2/health/ready"},
		{"/anything", "x", "/anything"},
	}
	for _, tt := range tests {
		t.Run(tt.path+"->"+tt.model, func(t *testing.T) {
			assert.Equal(t, tt.want, RewriteModel(tt.path, tt.model))
		})
	}
}

func TestParsePathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _, _ = ParsePath("/v2/models/iris/versions/3/infer")
	})
	assert.Zero(t, allocs)
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/v1/models/iris:predict", "/v2/models/m/versions/1/infer", "/v2/models//infer", ""} {
		f.Add(s, "canary")
	}
	f.Fuzz(func(t *testing.T, path, newModel string) {
		proto, model, _, ok := ParsePath(path)
		if !ok {
			assert.Equal(t, path, RewriteModel(path, newModel))
			return
		}
		// A rewrite keeps the endpoint an inference call of the same protocol.
		out := RewriteModel(path, newModel)
		p2, m2, _, ok2 := ParsePath(out)
		assert.True(t, ok2, out)
		assert.Equal(t, proto, p2)
		if out != path {
			assert.Equal(t, newModel, m2)
		} else {
			assert.Equal(t, model, m2)
		}
	})
}
