package models

import (
	"encoding/json"
	"math"
)

// V1Request is a KServe V1 predict request body. A request carries either
// row-format "instances" or TensorFlow-serving columnar "inputs". Meant for
// model servers and load generators; the router never decodes requests on
// the client's path.
type V1Request struct {
	Instances []json.RawMessage `json:"instances,omitempty"`
	Inputs    json.RawMessage   `json:"inputs,omitempty"`
}

// V1Response is a KServe V1 predict response body: one prediction per
// instance (a label, a number, a vector, or an object).
type V1Response struct {
	Predictions []any `json:"predictions"`
}

// DecodeV1Response decodes a KServe V1 response body into p (reusing its
// storage). It accepts
//
//	{"predictions": [...]}                       row format, one entry per instance
//	{"outputs": [...]}                           the same under TF-serving's key
//	{"outputs": {"scores": [...], "k": [...]}}   columnar: one key selected by output
//
// Each instance becomes: KindInt for an integer literal or boolean,
// KindString for a string, KindNumbers for a number with a fraction or
// exponent or an array of numbers (nested arrays flattened), and KindJSON
// for anything else. For object instances, a non-empty output selects the
// key to decode (missing key: ErrMissingOutput); with an empty output an
// object stays KindJSON. A non-array "predictions" is one instance.
func DecodeV1Response(body []byte, output string, p *Predictions) error {
	p.Reset()
	s := scanner{b: body}
	ok, err := s.open('{', '}')
	if err != nil {
		return err
	}
	found := false
	for ok {
		k, err := s.key()
		if err != nil {
			return err
		}
		switch {
		case !found && k.is(body, "predictions"):
			found = true
			err = decodeV1Batch(&s, output, false, p)
		case !found && k.is(body, "outputs"):
			found = true
			err = decodeV1Batch(&s, output, true, p)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		if ok, err = s.more('}'); err != nil {
			return err
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	if !found {
		return &DecodeError{Kind: ErrMissingOutput, Detail: `V1 response has no "predictions" (or "outputs")`}
	}
	p.finish()
	return nil
}

// decodeV1Batch decodes the value of "predictions"/"outputs".
func decodeV1Batch(s *scanner, output string, columnar bool, p *Predictions) error {
	switch s.peek() {
	case '[':
		ok, err := s.open('[', ']')
		for ok && err == nil {
			if err = decodeV1Value(s, output, p); err != nil {
				return err
			}
			ok, err = s.more(']')
		}
		return err
	case '{':
		if columnar {
			return decodeV1Columnar(s, output, p)
		}
	}
	return decodeV1Value(s, output, p)
}

// decodeV1Columnar picks one named column of {"outputs": {name: [...]}}.
// With an empty output the object must have exactly one key.
func decodeV1Columnar(s *scanner, output string, p *Predictions) error {
	start := s.i
	ok, err := s.open('{', '}')
	found := false
	for ok && err == nil {
		var k span
		if k, err = s.key(); err != nil {
			return err
		}
		switch {
		case found && output == "":
			return &DecodeError{Kind: ErrMissingOutput, Offset: start,
				Detail: "columnar outputs have several keys; configure which output to compare"}
		case !found && (output == "" || keyEquals(s.b, k, output)):
			found = true
			err = decodeV1Batch(s, "", false, p)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		ok, err = s.more('}')
	}
	if err == nil && !found {
		err = &DecodeError{Kind: ErrMissingOutput, Offset: start, Detail: "output " + quote(output) + " not in columnar outputs"}
	}
	return err
}

// decodeV1Value decodes one instance's prediction and appends it to p.
func decodeV1Value(s *scanner, output string, p *Predictions) error {
	switch c := s.peek(); c {
	case '"':
		sp, err := s.str()
		if err != nil {
			return err
		}
		p.addString(s.b, sp)
		return nil
	case 't', 'f':
		v := Value{Kind: KindInt}
		if c == 't' {
			v.Int = 1
			if err := s.lit("true"); err != nil {
				return err
			}
		} else if err := s.lit("false"); err != nil {
			return err
		}
		p.add(v, fixup{})
		return nil
	case '[':
		start, depth, numLo := s.i, s.depth, len(p.nums)
		allInt := true
		if s.numArray(p, &allInt) && len(p.nums) > numLo {
			p.add(Value{Kind: KindNumbers, IntData: allInt},
				fixup{numLo: int32(numLo), numHi: int32(len(p.nums))})
			return nil
		}
		// Not a (non-empty) numeric array: rewind and keep it raw; the
		// skip also reports any syntax error the fast path gave up on.
		s.i, s.depth, p.nums = start, depth, p.nums[:numLo]
		return p.addRaw(s)
	case '{':
		if output == "" {
			return p.addRaw(s)
		}
		return decodeV1Object(s, output, p)
	case 'n':
		return p.addRaw(s)
	default:
		f, isInt, err := s.float()
		if err != nil {
			return err
		}
		if isInt && math.Abs(f) < 1<<63 {
			p.add(Value{Kind: KindInt, Int: int64(f)}, fixup{})
			return nil
		}
		p.nums = append(p.nums, f)
		n := int32(len(p.nums))
		p.add(Value{Kind: KindNumbers}, fixup{numLo: n - 1, numHi: n})
		return nil
	}
}

// decodeV1Object decodes the output key of an object prediction.
func decodeV1Object(s *scanner, output string, p *Predictions) error {
	start := s.i
	ok, err := s.open('{', '}')
	found := false
	for ok && err == nil {
		var k span
		if k, err = s.key(); err != nil {
			return err
		}
		if !found && keyEquals(s.b, k, output) {
			found = true
			err = decodeV1Value(s, "", p)
		} else {
			err = s.skip()
		}
		if err != nil {
			return err
		}
		ok, err = s.more('}')
	}
	if err == nil && !found {
		err = &DecodeError{Kind: ErrMissingOutput, Offset: start, Detail: "prediction object has no key " + quote(output)}
	}
	return err
}

// numArray appends the numbers of a (possibly nested) array to p.nums and
// reports whether it held only numbers. On false the caller rewinds.
func (s *scanner) numArray(p *Predictions, allInt *bool) bool {
	ok, err := s.open('[', ']')
	for ok && err == nil {
		switch c := s.peek(); {
		case c == '[':
			if !s.numArray(p, allInt) {
				return false
			}
		case c == '-' || c == 'N' || c == 'I' || (c >= '0' && c <= '9'):
			f, isInt, err := s.float()
			if err != nil {
				return false
			}
			*allInt = *allInt && isInt
			p.nums = append(p.nums, f)
		default:
			return false
		}
		ok, err = s.more(']')
	}
	return err == nil
}

// addString appends a KindString value, unescaping into scratch if needed.
func (p *Predictions) addString(b []byte, sp span) {
	if !sp.esc {
		p.add(Value{Kind: KindString, Str: b[sp.lo:sp.hi:sp.hi]}, fixup{})
		return
	}
	lo := int32(len(p.esc))
	p.esc = appendUnescaped(p.esc, b[sp.lo:sp.hi])
	// Every escape decodes to at least one byte, so the span is non-empty
	// and finish will set Str.
	p.add(Value{Kind: KindString}, fixup{escLo: lo, escHi: int32(len(p.esc))})
}

// addRaw appends the next value, whatever it is, as KindJSON.
func (p *Predictions) addRaw(s *scanner) error {
	s.ws()
	lo := s.i
	if err := s.skip(); err != nil {
		return err
	}
	p.add(Value{Kind: KindJSON, Raw: s.b[lo:s.i:s.i]}, fixup{})
	return nil
}

// keyEquals compares an object key with a name, unescaping if it must.
func keyEquals(b []byte, k span, name string) bool {
	if !k.esc {
		return string(b[k.lo:k.hi]) == name
	}
	var buf [64]byte
	return string(appendUnescaped(buf[:0], b[k.lo:k.hi])) == name
}

func quote(s string) string { return `"` + s + `"` }
