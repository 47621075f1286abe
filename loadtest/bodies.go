package loadtest

import (
	"fmt"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
	"github.com/shadowsplit/shadowsplit/internal/modelserver"
)

// DemoBodies returns n request bodies for the demo model, each a batch of
// batch rows drawn from demomodel's generator seeded with seed, encoded for
// protocol "v1" (KServe V1 instances) or "v2" (one OIP V2 FP32 tensor).
// About demomodel.SliceFraction of the rows fall in the canary's slice.
func DemoBodies(protocol string, n, batch int, seed uint64) ([][]byte, error) {
	if n <= 0 || batch <= 0 {
		return nil, fmt.Errorf("demo bodies: n=%d batch=%d: both must be positive", n, batch)
	}
	var encode func([]demomodel.Features) []byte
	switch protocol {
	case "v1":
		encode = modelserver.EncodeV1
	case "v2":
		encode = modelserver.EncodeV2
	default:
		return nil, fmt.Errorf("demo bodies: protocol %q: want v1 or v2", protocol)
	}
	g := demomodel.NewGenerator(seed)
	out := make([][]byte, n)
	rows := make([]demomodel.Features, batch)
	for i := range out {
		for j := range rows {
			rows[j] = g.Next()
		}
		out[i] = encode(rows)
	}
	return out, nil
}

// DemoPath returns the predict/infer path for model on protocol "v1" or "v2".
func DemoPath(protocol, model string) string {
	if protocol == "v2" {
		return "/v2/models/" + model + "/infer"
	}
	return "/v1/models/" + model + ":predict"
}
