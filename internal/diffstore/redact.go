package diffstore

import (
	"bytes"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// Field is one allow-listed input field: the only request values that can
// reach the store (raw storage aside).
type Field struct {
	// Name is the field's name in Record.Inputs, exports and report slices.
	Name string
	// Key is the key in V1 object instances ({"age": 42}); empty means Name.
	Key string
	// Index, when set, is the position in V1 array instances ([1.5, "north"])
	// and the column within a row of a V2 tensor (default column 0).
	Index *int
	// Tensor is the V2 input tensor to read; empty means Name, then the
	// first input.
	Tensor string
	// Buckets, when set, replaces a numeric value by the interval it falls
	// in ("<0", "[0,18)", ">=65"), so exact values never reach the store.
	// Must be increasing.
	Buckets []float64
}

// Redaction says what of a request may be stored. The zero value stores
// nothing of the input but a fingerprint under a per-process random key.
type Redaction struct {
	// Fields is the allow-list. Anything not listed is never stored.
	Fields []Field
	// Headers are request headers whose value is kept as a slice of every
	// instance (e.g. X-Tenant, X-Client-Version), under the header's
	// lower-case name. Credentials (Authorization, Cookie,
	// Proxy-Authorization) can never be listed.
	Headers []string
	// StoreRaw stores the request body (capped at MaxRawBytes). Off by
	// default: request bodies can hold personal data.
	StoreRaw bool
	// MaxRawBytes caps a stored raw body (0: 16 KiB).
	MaxRawBytes int
	// FingerprintKey is the HMAC-SHA256 key for input fingerprints (read
	// from a file by the caller). Empty: a random key is made per process,
	// so fingerprints only match within one run.
	FingerprintKey []byte
}

// maxStringField caps an allow-listed string value.
const maxStringField = 128

// Validate checks the allow-list, naming the bad field.
func (r *Redaction) Validate() error {
	seen := map[string]bool{}
	for i, f := range r.Fields {
		if f.Name == "" {
			return fmt.Errorf("inputs.fields[%d].name: must not be empty", i)
		}
		if seen[f.Name] {
			return fmt.Errorf("inputs.fields[%d].name: %q is listed twice", i, f.Name)
		}
		seen[f.Name] = true
		if f.Index != nil && *f.Index < 0 {
			return fmt.Errorf("inputs.fields[%d].index: %d: must not be negative", i, *f.Index)
		}
		for j := 1; j < len(f.Buckets); j++ {
			if !(f.Buckets[j] > f.Buckets[j-1]) {
				return fmt.Errorf("inputs.fields[%d].buckets: %v: must be strictly increasing", i, f.Buckets)
			}
		}
	}
	for i, h := range r.Headers {
		name := strings.ToLower(strings.TrimSpace(h))
		switch {
		case name == "" || strings.ContainsAny(name, " :\t\r\n"):
			return fmt.Errorf("inputs.headers[%d]: %q: must be a header name", i, h)
		case name == "authorization" || name == "cookie" || name == "proxy-authorization":
			return fmt.Errorf("inputs.headers[%d]: %q: credentials are never stored", i, h)
		case seen[name]:
			return fmt.Errorf("inputs.headers[%d]: %q: the name is already used by a field or another header", i, h)
		}
		seen[name] = true
	}
	if r.MaxRawBytes < 0 {
		return fmt.Errorf("inputs.maxRawBytes: %d: must not be negative", r.MaxRawBytes)
	}
	return nil
}

// redactor turns a request body into what may be stored. Safe for
// concurrent use (HMAC states are pooled).
type redactor struct {
	cfg  Redaction
	macs sync.Pool
	// maxInstances bounds the per-instance work: the store keeps no more
	// instances than this, so redacting the rest of a large batch would
	// only burn the shadow worker's CPU (0: no bound).
	maxInstances int
}

func newRedactor(cfg Redaction, maxInstances int) *redactor {
	if cfg.MaxRawBytes == 0 {
		cfg.MaxRawBytes = 16 << 10
	}
	r := &redactor{cfg: cfg, maxInstances: maxInstances}
	key := cfg.FingerprintKey
	if len(key) == 0 {
		// As documented: a random per-process key. An empty HMAC key
		// would let anyone recompute fingerprints and guess low-entropy
		// inputs from them.
		key = make([]byte, 32)
		_, _ = crand.Read(key)
	}
	r.macs.New = func() any { return hmac.New(sha256.New, key) }
	return r
}

// redacted is the stored part of a request.
type redacted struct {
	fingerprint string
	instances   []redactedInstance
	raw         string
}

type redactedInstance struct {
	fingerprint string
	inputs      map[string]any
}

// redact parses the body (it is only read during the call) and keeps the
// fingerprints and the allow-listed fields of every instance. A body it
// cannot parse keeps only its fingerprint (of the raw bytes).
func (r *redactor) redact(proto models.Protocol, body []byte) redacted {
	var out redacted
	if r.cfg.StoreRaw {
		out.raw = string(body[:min(len(body), r.cfg.MaxRawBytes)])
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		out.fingerprint = r.mac(body)
		return out
	}
	var canon []byte
	switch proto {
	case models.ProtocolV2:
		inputs, _ := doc["inputs"].([]any)
		canon, _ = json.Marshal(inputs)
		out.instances = r.v2Instances(inputs)
	default:
		inst, ok := doc["instances"].([]any)
		if !ok {
			inst, _ = doc["inputs"].([]any)
		}
		canon, _ = json.Marshal(inst)
		for _, in := range r.bounded(inst) {
			c, _ := json.Marshal(in)
			out.instances = append(out.instances, redactedInstance{fingerprint: r.mac(c), inputs: r.v1Fields(in)})
		}
	}
	out.fingerprint = r.mac(canon)
	return out
}

// headers returns the allow-listed header values (first value, capped),
// keyed by the header's lower-case name; nil when none is listed or set.
func (r *redactor) headers(h map[string][]string) map[string]any {
	if len(r.cfg.Headers) == 0 || len(h) == 0 {
		return nil
	}
	var out map[string]any
	for _, name := range r.cfg.Headers {
		vs := h[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))]
		if len(vs) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(r.cfg.Headers))
		}
		v := vs[0]
		if len(v) > maxStringField {
			v = v[:maxStringField]
		}
		out[strings.ToLower(strings.TrimSpace(name))] = v
	}
	return out
}

// bounded cuts a V1 batch to the instances the store keeps.
func (r *redactor) bounded(inst []any) []any {
	if r.maxInstances > 0 && len(inst) > r.maxInstances {
		return inst[:r.maxInstances]
	}
	return inst
}

func (r *redactor) mac(b []byte) string {
	m := r.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	s := hex.EncodeToString(m.Sum(sum[:0]))
	r.macs.Put(m)
	return s
}

func (r *redactor) v1Fields(inst any) map[string]any {
	if len(r.cfg.Fields) == 0 {
		return nil
	}
	out := make(map[string]any, len(r.cfg.Fields))
	for _, f := range r.cfg.Fields {
		var v any
		switch in := inst.(type) {
		case map[string]any:
			key := f.Key
			if key == "" {
				key = f.Name
			}
			v = in[key]
		case []any:
			if f.Index != nil && *f.Index < len(in) {
				v = in[*f.Index]
			}
		}
		if s, ok := storeValue(v, f.Buckets); ok {
			out[f.Name] = s
		}
	}
	return out
}

// v2Instances splits each input tensor into rows (the first shape
// dimension is the batch) and reads the allow-listed columns of each row.
func (r *redactor) v2Instances(inputs []any) []redactedInstance {
	type tensor struct {
		name string
		rows [][]any
	}
	var ts []tensor
	batch := 0
	for _, in := range inputs {
		m, _ := in.(map[string]any)
		name, _ := m["name"].(string)
		shape, _ := m["shape"].([]any)
		var data []any
		flatten(m["data"], &data)
		n := 1
		if len(shape) > 0 {
			// The body comes from the client: a shape of the wrong type
			// must not panic the shadow worker.
			if num, ok := shape[0].(json.Number); ok {
				if d, err := num.Int64(); err == nil && d > 0 {
					n = int(d)
				}
			}
		}
		if n > len(data) || len(data)%n != 0 {
			n = 1
		}
		per := len(data) / max(n, 1)
		t := tensor{name: name}
		for i := range n {
			t.rows = append(t.rows, data[i*per:(i+1)*per])
		}
		batch = max(batch, n)
		ts = append(ts, t)
	}
	if r.maxInstances > 0 {
		batch = min(batch, r.maxInstances)
	}
	out := make([]redactedInstance, batch)
	for i := range out {
		row := make(map[string]any, len(ts))
		for _, t := range ts {
			if i < len(t.rows) {
				row[t.name] = t.rows[i]
			}
		}
		c, _ := json.Marshal(row)
		out[i].fingerprint = r.mac(c)
		if len(r.cfg.Fields) == 0 {
			continue
		}
		out[i].inputs = make(map[string]any, len(r.cfg.Fields))
		for _, f := range r.cfg.Fields {
			var cols []any
			for _, want := range []string{f.Tensor, f.Name} {
				for _, t := range ts {
					if want != "" && t.name == want && i < len(t.rows) {
						cols = t.rows[i]
					}
				}
				if cols != nil {
					break
				}
			}
			if cols == nil && f.Tensor == "" && len(ts) > 0 && i < len(ts[0].rows) {
				cols = ts[0].rows[i]
			}
			col := 0
			if f.Index != nil {
				col = *f.Index
			}
			if col < len(cols) {
				if s, ok := storeValue(cols[col], f.Buckets); ok {
					out[i].inputs[f.Name] = s
				}
			}
		}
	}
	return out
}

func flatten(v any, out *[]any) {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			flatten(e, out)
		}
		return
	}
	if v != nil {
		*out = append(*out, v)
	}
}

// storeValue is the stored form of one allow-listed value: a bucket label
// when buckets are set, a number, a short string or a bool. Objects and
// arrays are not stored (they could hide anything).
func storeValue(v any, buckets []float64) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.IsNaN(f) {
			return nil, false
		}
		if len(buckets) > 0 {
			return bucket(f, buckets), true
		}
		return f, true
	case string:
		if len(buckets) > 0 {
			f, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, false
			}
			return bucket(f, buckets), true
		}
		if len(x) > maxStringField {
			x = x[:maxStringField]
		}
		return x, true
	case bool:
		return x, true
	}
	return nil, false
}

func bucket(f float64, b []float64) string {
	fmtF := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	if f < b[0] {
		return "<" + fmtF(b[0])
	}
	for i := 1; i < len(b); i++ {
		if f < b[i] {
			return "[" + fmtF(b[i-1]) + "," + fmtF(b[i]) + ")"
		}
	}
	return ">=" + fmtF(b[len(b)-1])
}
