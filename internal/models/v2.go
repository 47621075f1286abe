package models

// OIP V2 tensor datatypes.
const (
	DatatypeBool   = "BOOL"
	DatatypeUint8  = "UINT8"
	DatatypeUint16 = "UINT16"
	DatatypeUint32 = "UINT32"
	DatatypeUint64 = "UINT64"
	DatatypeInt8   = "INT8"
	DatatypeInt16  = "INT16"
	DatatypeInt32  = "INT32"
	DatatypeInt64  = "INT64"
	DatatypeFP16   = "FP16"
	DatatypeFP32   = "FP32"
	DatatypeFP64   = "FP64"
	DatatypeBytes  = "BYTES"
)

// V2Tensor is one named input or output tensor of the Open Inference
// Protocol V2 REST API. Data is row-major, flat or nested; on decode with
// encoding/json it holds []any. Meant for model servers and load
// generators; the comparer reads responses with DecodeV2Response instead.
type V2Tensor struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

// V2RequestedOutput names an output the client wants (and, with the Triton
// classification extension, parameters {"classification": k}).
type V2RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// V2Request is an inference request body (POST /v2/models/{m}/infer).
type V2Request struct {
	ID         string              `json:"id,omitempty"`
	Parameters map[string]any      `json:"parameters,omitempty"`
	Inputs     []V2Tensor          `json:"inputs"`
	Outputs    []V2RequestedOutput `json:"outputs,omitempty"`
}

// V2Response is an inference response body.
type V2Response struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version,omitempty"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []V2Tensor     `json:"outputs"`
}

// datatype maps a datatype name to its canonical constant (so storing it
// does not allocate) and says whether its elements are integers.
func datatype(b []byte) (name string, integer, ok bool) {
	switch string(b) {
	case DatatypeBool:
		return DatatypeBool, true, true
	case DatatypeUint8:
		return DatatypeUint8, true, true
	case DatatypeUint16:
		return DatatypeUint16, true, true
	case DatatypeUint32:
		return DatatypeUint32, true, true
	case DatatypeUint64:
		return DatatypeUint64, true, true
	case DatatypeInt8:
		return DatatypeInt8, true, true
	case DatatypeInt16:
		return DatatypeInt16, true, true
	case DatatypeInt32:
		return DatatypeInt32, true, true
	case DatatypeInt64:
		return DatatypeInt64, true, true
	case DatatypeFP16:
		return DatatypeFP16, false, true
	case DatatypeFP32:
		return DatatypeFP32, false, true
	case DatatypeFP64:
		return DatatypeFP64, false, true
	case DatatypeBytes:
		return DatatypeBytes, false, true
	}
	return "", false, false
}
