package modelserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/shadowsplit/shadowsplit/internal/demomodel"
)

// NumInputColumns is the width of a row in the all-numeric layouts: x0..x5
// then the region (its name in V1 arrays, or its index 0..3).
const NumInputColumns = demomodel.NumNumeric + 1

type v1Request struct {
	Instances []json.RawMessage `json:"instances"`
}

type v1Response struct {
	Predictions any `json:"predictions"`
}

func (h *Handler) predictV1(w http.ResponseWriter, r *http.Request) {
	body, ok := h.begin(w, r)
	if !ok {
		return
	}
	var req v1Request
	if err := json.Unmarshal(body, &req); err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V1 request: invalid JSON: %w", err))
		return
	}
	if req.Instances == nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf(`V1 request: "instances" is required`))
		return
	}
	rows := make([]demomodel.Features, len(req.Instances))
	for i, raw := range req.Instances {
		f, err := decodeV1Instance(raw)
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, fmt.Errorf("V1 request: instances[%d]: %w", i, err))
			return
		}
		rows[i] = f
	}
	if h.cfg.V1Output == V1Label {
		labels := make([]int, len(rows))
		for i, f := range rows {
			labels[i] = h.cfg.Model.Label(f)
		}
		writeJSON(w, http.StatusOK, v1Response{Predictions: labels})
		return
	}
	probs := make([][]float64, len(rows))
	for i, f := range rows {
		p := h.cfg.Model.Predict(f)
		probs[i] = p[:]
	}
	writeJSON(w, http.StatusOK, v1Response{Predictions: probs})
}

// decodeV1Instance accepts [x0..x5, region] (region a name or an index) or
// {"x0": .., ..., "x5": .., "region": "north"}.
func decodeV1Instance(raw json.RawMessage) (demomodel.Features, error) {
	var f demomodel.Features
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return f, fmt.Errorf("invalid object: %w", err)
		}
		for i := range demomodel.NumNumeric {
			key := "x" + strconv.Itoa(i)
			v, ok := obj[key]
			if !ok {
				return f, fmt.Errorf("missing feature %q", key)
			}
			if err := json.Unmarshal(v, &f.X[i]); err != nil {
				return f, fmt.Errorf("feature %q: want a number: %w", key, err)
			}
		}
		reg, ok := obj["region"]
		if !ok {
			return f, fmt.Errorf(`missing feature "region"`)
		}
		var err error
		f.Region, err = decodeRegion(reg)
		return f, err
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return f, fmt.Errorf("want an array [x0..x5, region] or an object: %w", err)
	}
	if len(arr) != NumInputColumns {
		return f, fmt.Errorf("got %d values, want %d (x0..x5, region)", len(arr), NumInputColumns)
	}
	for i := range demomodel.NumNumeric {
		if err := json.Unmarshal(arr[i], &f.X[i]); err != nil {
			return f, fmt.Errorf("x%d: want a number: %w", i, err)
		}
	}
	var err error
	f.Region, err = decodeRegion(arr[demomodel.NumNumeric])
	return f, err
}

func decodeRegion(raw json.RawMessage) (demomodel.Region, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		return demomodel.ParseRegion(name)
	}
	var idx float64
	if err := json.Unmarshal(raw, &idx); err != nil {
		return 0, fmt.Errorf("region: want a name or an index 0..3, got %s", raw)
	}
	return demomodel.RegionFromIndex(idx)
}
