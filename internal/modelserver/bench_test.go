package modelserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

// BenchmarkHandler is the model server's own cost per small request, the
// floor under every path `make bench` measures.
func BenchmarkHandler(b *testing.B) {
	m, err := demomodel.Load(demomodel.VariantStable)
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(Config{Model: m})
	if err != nil {
		b.Fatal(err)
	}
	in := rows(1)
	for _, tc := range []struct {
		name, path string
		body       []byte
	}{
		{"v1", "/v1/models/demo:predict", EncodeV1(in)},
		{"v2", "/v2/models/demo/infer", EncodeV2(in)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, tc.path, bytes.NewReader(tc.body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code, rec.Body.String())
				}
			}
		})
	}
}
