package modelserver

import (
	"strconv"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

// EncodeV1 returns a KServe V1 request body for rows, each instance as
// [x0, ..., x5, "region"]. Values are rounded to float32, as a client
// sending FP32 features would. Safe for concurrent use.
func EncodeV1(rows []demomodel.Features) []byte {
	b := make([]byte, 0, 16+len(rows)*80)
	b = append(b, `{"instances":[`...)
	for i, f := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for _, x := range f.X {
			b = strconv.AppendFloat(b, float64(float32(x)), 'g', -1, 32)
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.Region.String())
		b = append(b, ']')
	}
	return append(b, "]}"...)
}

// EncodeV2 returns an Open Inference Protocol V2 request body for rows: one
// FP32 tensor "input" of shape [n, 7] (x0..x5, region index). Safe for
// concurrent use.
func EncodeV2(rows []demomodel.Features) []byte {
	b := make([]byte, 0, 64+len(rows)*80)
	b = append(b, `{"inputs":[{"name":"input","shape":[`...)
	b = strconv.AppendInt(b, int64(len(rows)), 10)
	b = append(b, `,7],"datatype":"FP32","data":[`...)
	for i, f := range rows {
		for _, x := range f.X {
			if i > 0 || b[len(b)-1] != '[' {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(float32(x)), 'g', -1, 32)
		}
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(f.Region), 10)
	}
	return append(b, "]}]}"...)
}
