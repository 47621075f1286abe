package compare

import (
	"math"
	"strconv"
	"strings"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// v2Volatile are the V2 response fields that name the deployment rather
// than the prediction; an exact comparison of two deployments skips them.
var v2Volatile = []string{"id", "model_name", "model_version"}

// compareExact is ModeExact: canonical JSON equality after IgnorePaths.
// It allocates (it builds both documents as trees); exact mode is for
// answers that are neither labels nor numbers, not for the hot path.
func compareExact(ex models.Exchange, o *resolved, r *Result, diffs []InstanceDiff) {
	sv, sErr := parseBody(ex.Stable)
	n := 0
	if sErr == nil {
		n = 1
		if b := batchOf(ex.Protocol, sv); b != nil {
			n = len(b)
		}
	}
	if r.canaryFailed(ex.Canary, n) {
		return
	}
	if sErr != nil {
		r.decodeFailed(SideStable, sErr, 0)
		return
	}
	cv, cErr := parseBody(ex.Canary)
	if cErr != nil {
		r.decodeFailed(SideCanary, cErr, n)
		return
	}
	paths := splitPaths(o.IgnorePaths, ex.Protocol)
	for _, p := range paths {
		removePath(sv, p)
		removePath(cv, p)
	}
	sBatch, cBatch := batchOf(ex.Protocol, sv), batchOf(ex.Protocol, cv)
	if sBatch == nil || cBatch == nil {
		// Not a V1 batch on both sides: the whole body is one instance.
		diffs = append(diffs, InstanceDiff{Mode: ModeExact, Agree: jsonEqual(sv, cv, o.nanEqual), JS: math.NaN(), TopKOverlap: math.NaN()})
		r.finish(diffs)
		return
	}
	if len(sBatch) != len(cBatch) {
		r.fail(OutcomeSchemaMismatch, SideBoth, ReasonBatchSize, "stable answered "+strconv.Itoa(len(sBatch))+" instances, canary "+strconv.Itoa(len(cBatch)))
		r.Instances = n
		return
	}
	for i := range sBatch {
		diffs = append(diffs, InstanceDiff{Mode: ModeExact, Agree: jsonEqual(sBatch[i], cBatch[i], o.nanEqual), JS: math.NaN(), TopKOverlap: math.NaN()})
	}
	r.finish(diffs)
}

func parseBody(resp models.Response) (any, error) {
	if resp.Truncated {
		return nil, &models.DecodeError{Kind: models.ErrTruncated, Offset: len(resp.Body)}
	}
	if models.IsBinaryContentType(resp.ContentType) {
		return nil, &models.DecodeError{Kind: models.ErrBinaryTensor, Detail: "content type " + resp.ContentType}
	}
	return models.ParseJSON(resp.Body)
}

// batchOf returns the per-instance array of a V1 body ("predictions", or
// an "outputs" array), or nil when there is none.
func batchOf(proto models.Protocol, v any) []any {
	if proto != models.ProtocolV1 {
		return nil
	}
	m, _ := v.(map[string]any)
	for _, k := range []string{"predictions", "outputs"} {
		if a, ok := m[k].([]any); ok {
			return a
		}
	}
	return nil
}

func splitPaths(paths []string, proto models.Protocol) [][]string {
	out := make([][]string, 0, len(paths)+len(v2Volatile))
	for _, p := range paths {
		out = append(out, strings.Split(p, "."))
	}
	if proto == models.ProtocolV2 {
		for _, p := range v2Volatile {
			out = append(out, []string{p})
		}
	}
	return out
}

// removePath deletes the value at path from v, in place. "*" matches every
// key or index; an array element is replaced by nil rather than removed,
// so the indices of its neighbours stay aligned between the two sides.
func removePath(v any, path []string) {
	if len(path) == 0 {
		return
	}
	seg, rest := path[0], path[1:]
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if seg != "*" && k != seg {
				continue
			}
			if len(rest) == 0 {
				delete(x, k)
			} else {
				removePath(child, rest)
			}
		}
	case []any:
		for i := range x {
			if seg != "*" && strconv.Itoa(i) != seg {
				continue
			}
			if len(rest) == 0 {
				x[i] = nil
			} else {
				removePath(x[i], rest)
			}
		}
	}
}

// jsonEqual is deep equality of ParseJSON trees: numbers by value (so 1,
// 1.0 and 1e0 are equal), NaN equal to NaN only when nanEqual.
func jsonEqual(a, b any, nanEqual bool) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv, nanEqual) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i], nanEqual) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || nanEqual && x != x && y != y)
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}
