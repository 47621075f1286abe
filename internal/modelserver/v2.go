package modelserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

// Output tensor names.
const (
	OutputProbabilities = "probabilities" // FP32 [n, NumClasses]
	OutputLabel         = "label"         // INT64 [n]
)

type v2Tensor struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

type v2Request struct {
	ID      string     `json:"id,omitempty"`
	Inputs  []v2Tensor `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs,omitempty"`
}

type v2OutTensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     any     `json:"data"`
}

type v2Response struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id,omitempty"`
	Outputs      []v2OutTensor `json:"outputs"`
}

func (h *Handler) inferV2(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Inference-Header-Content-Length") != "" {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V2 request: the binary tensor extension (Inference-Header-Content-Length) is not supported; send JSON tensors"))
		return
	}
	body, ok := h.begin(w, r)
	if !ok {
		return
	}
	var req v2Request
	if err := json.Unmarshal(body, &req); err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V2 request: invalid JSON: %w", err))
		return
	}
	rows, err := decodeV2Inputs(req.Inputs)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V2 request: %w", err))
		return
	}
	want := map[string]bool{OutputProbabilities: true, OutputLabel: true}
	if len(req.Outputs) > 0 {
		want = map[string]bool{}
		for _, o := range req.Outputs {
			if o.Name != OutputProbabilities && o.Name != OutputLabel {
				h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V2 request: output %q unknown (have %q, %q)", o.Name, OutputProbabilities, OutputLabel))
				return
			}
			want[o.Name] = true
		}
	}
	n := int64(len(rows))
	probs := make([]float32, 0, len(rows)*demomodel.NumClasses)
	labels := make([]int64, 0, len(rows))
	for _, f := range rows {
		p := h.cfg.Model.Predict(f)
		for _, v := range p {
			probs = append(probs, float32(v))
		}
		labels = append(labels, int64(demomodel.Argmax(p)))
	}
	resp := v2Response{ModelName: h.cfg.ModelName, ModelVersion: ModelVersion, ID: req.ID}
	if want[OutputProbabilities] {
		resp.Outputs = append(resp.Outputs, v2OutTensor{Name: OutputProbabilities, Shape: []int64{n, demomodel.NumClasses}, Datatype: "FP32", Data: probs})
	}
	if want[OutputLabel] {
		resp.Outputs = append(resp.Outputs, v2OutTensor{Name: OutputLabel, Shape: []int64{n}, Datatype: "INT64", Data: labels})
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeV2Inputs accepts either one numeric tensor of shape [n, 7] (x0..x5,
// region index) or named tensors x0..x5 (numeric, n values each) and
// "region" (BYTES names or numeric indexes). Data may be flat or nested.
func decodeV2Inputs(inputs []v2Tensor) ([]demomodel.Features, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf(`"inputs" is required`)
	}
	if len(inputs) == 1 {
		t := inputs[0]
		if len(t.Shape) != 2 || t.Shape[1] != NumInputColumns {
			return nil, fmt.Errorf("input %q: shape %v, want [n, %d] (x0..x5, region index) or named tensors x0..x5 and region", t.Name, t.Shape, NumInputColumns)
		}
		vals, err := numericTensor(t)
		if err != nil {
			return nil, err
		}
		rows := make([]demomodel.Features, t.Shape[0])
		for i := range rows {
			row := vals[i*NumInputColumns : (i+1)*NumInputColumns]
			copy(rows[i].X[:], row[:demomodel.NumNumeric])
			if rows[i].Region, err = demomodel.RegionFromIndex(row[demomodel.NumNumeric]); err != nil {
				return nil, fmt.Errorf("input %q row %d: %w", t.Name, i, err)
			}
		}
		return rows, nil
	}
	byName := make(map[string]v2Tensor, len(inputs))
	for _, t := range inputs {
		byName[t.Name] = t
	}
	var rows []demomodel.Features
	size := func(name string, got int) error {
		if rows == nil {
			rows = make([]demomodel.Features, got)
		}
		if got != len(rows) {
			return fmt.Errorf("input %q: %d values, other inputs have %d", name, got, len(rows))
		}
		return nil
	}
	for i := range demomodel.NumNumeric {
		name := "x" + strconv.Itoa(i)
		t, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("input %q missing (want x0..x5 and region, or one [n, %d] tensor)", name, NumInputColumns)
		}
		vals, err := numericTensor(t)
		if err != nil {
			return nil, err
		}
		if err := size(name, len(vals)); err != nil {
			return nil, err
		}
		for r, v := range vals {
			rows[r].X[i] = v
		}
	}
	t, ok := byName["region"]
	if !ok {
		return nil, fmt.Errorf(`input "region" missing`)
	}
	if t.Datatype == "BYTES" {
		var names []string
		if err := decodeFlat(t, &names); err != nil {
			return nil, err
		}
		if err := size("region", len(names)); err != nil {
			return nil, err
		}
		for r, s := range names {
			reg, err := demomodel.ParseRegion(s)
			if err != nil {
				return nil, fmt.Errorf("input \"region\" row %d: %w", r, err)
			}
			rows[r].Region = reg
		}
		return rows, nil
	}
	vals, err := numericTensor(t)
	if err != nil {
		return nil, err
	}
	if err := size("region", len(vals)); err != nil {
		return nil, err
	}
	for r, v := range vals {
		if rows[r].Region, err = demomodel.RegionFromIndex(v); err != nil {
			return nil, fmt.Errorf("input \"region\" row %d: %w", r, err)
		}
	}
	return rows, nil
}

// numericTensor decodes a numeric tensor's data and checks it against its
// shape.
func numericTensor(t v2Tensor) ([]float64, error) {
	switch t.Datatype {
	case "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
	default:
		return nil, fmt.Errorf("input %q: datatype %q, want a numeric type such as FP32", t.Name, t.Datatype)
	}
	var vals []float64
	if err := decodeFlat(t, &vals); err != nil {
		return nil, err
	}
	return vals, nil
}

// decodeFlat decodes possibly nested row-major data into a flat slice of T
// and checks the element count against the shape.
func decodeFlat[T any](t v2Tensor, out *[]T) error {
	var nested any
	if err := json.Unmarshal(t.Data, &nested); err != nil {
		return fmt.Errorf("input %q: data: %w", t.Name, err)
	}
	var flat []T
	var walk func(v any) error
	walk = func(v any) error {
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		}
		x, ok := v.(T)
		if !ok {
			return fmt.Errorf("input %q: element %v has the wrong type for datatype %s", t.Name, v, t.Datatype)
		}
		flat = append(flat, x)
		return nil
	}
	if err := walk(nested); err != nil {
		return err
	}
	want := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("input %q: shape %v has a negative dimension", t.Name, t.Shape)
		}
		want *= d
	}
	if len(t.Shape) == 0 || int64(len(flat)) != want {
		return fmt.Errorf("input %q: %d values do not fill shape %v", t.Name, len(flat), t.Shape)
	}
	*out = flat
	return nil
}

func (h *Handler) v2Metadata() map[string]any {
	return map[string]any{
		"name":     h.cfg.ModelName,
		"versions": []string{ModelVersion},
		"platform": "shadowsplit-demo-logreg",
		"inputs": []map[string]any{
			{"name": "input", "datatype": "FP32", "shape": []int64{-1, NumInputColumns}},
		},
		"outputs": []map[string]any{
			{"name": OutputProbabilities, "datatype": "FP32", "shape": []int64{-1, demomodel.NumClasses}},
			{"name": OutputLabel, "datatype": "INT64", "shape": []int64{-1}},
		},
		"parameters": map[string]any{"variant": h.cfg.Model.Variant, "class_names": demomodel.ClassNames},
	}
}
