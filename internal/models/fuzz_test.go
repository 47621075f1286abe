package models

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<Target>/, so plain
// `go test` runs them; `go test -fuzz=FuzzDecodeV2 ./internal/models`
// explores further.

var decodeKinds = []error{ErrMalformedJSON, ErrBinaryTensor, ErrTruncated, ErrMissingOutput, ErrShape, ErrDatatype}

func checkDecodeResult(t *testing.T, err error, p *Predictions) {
	t.Helper()
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error is not a *DecodeError: %v", err)
		}
		for _, k := range decodeKinds {
			if errors.Is(err, k) {
				return
			}
		}
		t.Fatalf("error wraps no known kind: %v", err)
	}
	for i, v := range p.Values {
		switch v.Kind {
		case KindNumbers:
			if len(v.Nums) == 0 {
				t.Fatalf("instance %d: KindNumbers without numbers", i)
			}
		case KindClass:
			if len(v.Nums) != 1 {
				t.Fatalf("instance %d: KindClass without a score", i)
			}
		case KindJSON:
			if !json.Valid(v.Raw) && !validWithPythonLiterals(v.Raw) {
				t.Fatalf("instance %d: raw value is not JSON: %q", i, v.Raw)
			}
		case KindInt, KindString, KindStrings:
		default:
			t.Fatalf("instance %d: kind %v", i, v.Kind)
		}
	}
}

func validWithPythonLiterals(b []byte) bool {
	_, err := ParseJSON(b)
	return err == nil
}

func FuzzDecodeV1(f *testing.F) {
	f.Add([]byte(`{"predictions": [[0.1, 0.9], 1, "a", {"k": [1]}]}`), "")
	f.Add([]byte(`{"outputs": {"a": [1], "b": [[0.5]]}}`), "b")
	var p Predictions
	f.Fuzz(func(t *testing.T, body []byte, output string) {
		err := DecodeV1Response(body, output, &p)
		checkDecodeResult(t, err, &p)
	})
}

func FuzzDecodeV2(f *testing.F) {
	f.Add([]byte(`{"outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[0.1,0.9]}]}`), "")
	f.Add([]byte(`{"outputs":[{"name":"c","shape":[1,2],"datatype":"BYTES","data":["0.9:1:a","0.1:0"]}]}`), "c")
	var p Predictions
	f.Fuzz(func(t *testing.T, body []byte, output string) {
		err := DecodeV2Response(body, output, &p)
		checkDecodeResult(t, err, &p)
		if err == nil {
			elems := int64(1)
			for _, d := range p.Shape {
				elems *= d
			}
			got := int64(0)
			for _, v := range p.Values {
				switch v.Kind {
				case KindInt, KindString:
					got++
				case KindNumbers:
					got += int64(len(v.Nums))
				case KindStrings:
					got += int64(len(v.Strs))
				case KindClass:
					got += elems / max(int64(len(p.Values)), 1)
				}
			}
			if got != elems {
				t.Fatalf("shape %v has %d elements, values hold %d", p.Shape, elems, got)
			}
		}
	})
}

// FuzzParseJSON checks the scanner against encoding/json: the same
// documents are valid, except for the Python literals it also accepts and
// nesting beyond its depth limit.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"a": [1, -2.5e3, "x\u00e9", true, null, {}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseJSON(b)
		valid := json.Valid(b)
		if err == nil && !valid && !hasPythonLiteral(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var de *DecodeError
		if err != nil && valid && !(errors.As(err, &de) && de.Detail == "nesting too deep") {
			t.Fatalf("valid JSON %q rejected with %v", b, err)
		}
	})
}

func hasPythonLiteral(b []byte) bool {
	for _, l := range []string{"NaN", "Infinity"} {
		for i := 0; i+len(l) <= len(b); i++ {
			if string(b[i:i+len(l)]) == l {
				return true
			}
		}
	}
	return false
}

func FuzzCheckRequest(f *testing.F) {
	f.Add(uint8(1), []byte(`{"instances": [[1, 2]]}`))
	f.Add(uint8(2), []byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`))
	f.Fuzz(func(t *testing.T, proto uint8, body []byte) {
		err := CheckRequest([]Protocol{ProtocolV1, ProtocolV2}[proto%2], body)
		checkDecodeResult(t, err, &Predictions{})
	})
}

// FuzzFloat checks the scanner's fast number conversion against strconv,
// bit for bit, on every literal JSON accepts.
func FuzzFloat(f *testing.F) {
	for _, s := range []string{"0", "-0", "0.1", "1e22", "1e23", "123456789012345678901", "9007199254740993", "4.9e-324", "1.7976931348623157e308", "2.5E-3", "-12.5e+2", "0.000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		var v float64
		if json.Unmarshal([]byte(lit), &v) != nil {
			return // not a JSON number (or out of range for encoding/json)
		}
		s := scanner{b: []byte(lit)}
		s.ws()
		got, _, err := s.float()
		if err != nil {
			t.Fatalf("%q: %v", lit, err)
		}
		want, _ := strconv.ParseFloat(strings.TrimSpace(lit), 64)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: got %v (%x), strconv %v (%x)", lit, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	})
}
