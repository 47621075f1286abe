package models

import (
	"fmt"
	"strconv"
)

// v2Tensor is what the first pass keeps of one output object: spans only.
type v2Tensor struct {
	name     span
	datatype span
	shape    [2]int // raw JSON span of the shape array
	data     [2]int // raw JSON span of the data
	binary   bool   // parameters.binary_data_size present
	hasName  bool
	hasType  bool
}

// DecodeV2Response decodes an OIP V2 inference response into p (reusing its
// storage), selecting the output tensor named output (empty: the first
// output). The first dimension of the shape is the batch: shape [b, d...]
// gives b instances of d... elements; shape [b] gives b scalars; shape []
// one scalar. Per instance: one element of an integer or BOOL tensor is
// KindInt; floats (or several integers) are KindNumbers; BYTES elements of
// the Triton classification extension ("score:index[:label]") are KindClass
// with the first (top-1) entry; one other BYTES element is KindString,
// several are KindStrings.
//
// Errors: ErrMissingOutput (no outputs, output not found, no data),
// ErrBinaryTensor (the output announces binary_data_size, or bytes follow
// the JSON), ErrShape (bad shape, element count differs from the shape,
// empty instances), ErrDatatype (unknown datatype, data of another type).
func DecodeV2Response(body []byte, output string, p *Predictions) error {
	p.Reset()
	s := scanner{b: body}
	ok, err := s.open('{', '}')
	if err != nil {
		return err
	}
	var t v2Tensor
	found, sawOutputs := false, false
	for ok {
		k, err := s.key()
		if err != nil {
			return err
		}
		if !sawOutputs && k.is(body, "outputs") {
			sawOutputs = true
			err = scanV2Outputs(&s, output, &t, &found)
		} else {
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
		if output == "" {
			return &DecodeError{Kind: ErrMissingOutput, Detail: `V2 response has no "outputs"`}
		}
		return &DecodeError{Kind: ErrMissingOutput, Detail: "V2 response has no output " + quote(output)}
	}
	return p.decodeV2Tensor(body, &t)
}

// scanV2Outputs walks the outputs array and keeps the selected tensor.
func scanV2Outputs(s *scanner, output string, t *v2Tensor, found *bool) error {
	ok, err := s.open('[', ']')
	for ok && err == nil {
		var cur v2Tensor
		if err = scanV2Tensor(s, &cur); err != nil {
			return err
		}
		if !*found && (output == "" || (cur.hasName && keyEquals(s.b, cur.name, output))) {
			*found, *t = true, cur
		}
		ok, err = s.more(']')
	}
	return err
}

func scanV2Tensor(s *scanner, t *v2Tensor) error {
	ok, err := s.open('{', '}')
	for ok && err == nil {
		var k span
		if k, err = s.key(); err != nil {
			return err
		}
		s.ws()
		lo := s.i
		switch {
		case k.is(s.b, "name") && s.peek() == '"':
			t.name, err = s.str()
			t.hasName = true
		case k.is(s.b, "datatype") && s.peek() == '"':
			t.datatype, err = s.str()
			t.hasType = true
		case k.is(s.b, "shape"):
			err = s.skip()
			t.shape = [2]int{lo, s.i}
		case k.is(s.b, "data"):
			err = s.skip()
			t.data = [2]int{lo, s.i}
		case k.is(s.b, "parameters") && s.peek() == '{':
			t.binary, err = scanBinaryParam(s)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		ok, err = s.more('}')
	}
	return err
}

// scanBinaryParam reports whether a parameters object has binary_data_size.
func scanBinaryParam(s *scanner) (bool, error) {
	binary := false
	ok, err := s.open('{', '}')
	for ok && err == nil {
		var k span
		if k, err = s.key(); err != nil {
			return false, err
		}
		binary = binary || k.is(s.b, "binary_data_size")
		if err = s.skip(); err != nil {
			return false, err
		}
		ok, err = s.more('}')
	}
	return binary, err
}

// decodeV2Tensor turns the selected tensor's spans into Values.
func (p *Predictions) decodeV2Tensor(body []byte, t *v2Tensor) error {
	if t.binary {
		return &DecodeError{Kind: ErrBinaryTensor, Offset: t.data[0], Detail: "output carries binary_data_size"}
	}
	if t.data[1] == 0 {
		return &DecodeError{Kind: ErrMissingOutput, Detail: "output has no data"}
	}
	if !t.hasType {
		return &DecodeError{Kind: ErrDatatype, Detail: "output has no datatype"}
	}
	dt, integer, ok := datatype(body[t.datatype.lo:t.datatype.hi])
	if !ok || t.datatype.esc {
		return &DecodeError{Kind: ErrDatatype, Offset: t.datatype.lo, Detail: "unknown datatype " + quote(string(body[t.datatype.lo:t.datatype.hi]))}
	}
	p.Datatype = dt
	if t.hasName {
		if t.name.esc {
			p.Output = appendUnescaped(nil, body[t.name.lo:t.name.hi]) // rare
		} else {
			p.Output = body[t.name.lo:t.name.hi:t.name.hi]
		}
	}
	if t.shape[1] == 0 {
		return &DecodeError{Kind: ErrShape, Detail: "output has no shape"}
	}
	elems := int64(1)
	ss := scanner{b: body[:t.shape[1]], i: t.shape[0]}
	ok, err := ss.open('[', ']')
	if err != nil {
		return &DecodeError{Kind: ErrShape, Offset: t.shape[0], Detail: "shape is not an array"}
	}
	for ok {
		f, isInt, err := ss.float()
		if err != nil || !isInt || f < 0 || f > 1<<40 {
			return &DecodeError{Kind: ErrShape, Offset: ss.i, Detail: "shape dimensions must be non-negative integers"}
		}
		d := int64(f)
		p.Shape = append(p.Shape, d)
		// Check before multiplying: an overflowing product could wrap to
		// a small number that matches a short data array.
		if d > 0 && elems > (1<<40)/d {
			return &DecodeError{Kind: ErrShape, Offset: ss.i, Detail: "shape too large"}
		}
		elems *= d
		if ok, err = ss.more(']'); err != nil {
			return &DecodeError{Kind: ErrShape, Offset: ss.i, Detail: "bad shape array"}
		}
	}
	ds := scanner{b: body[:t.data[1]], i: t.data[0]}
	var c dataCount
	if err := ds.flatten(p, &c); err != nil {
		return err
	}
	isBytes := dt == DatatypeBytes
	switch {
	case isBytes && (c.nums > 0 || c.bools > 0):
		return &DecodeError{Kind: ErrDatatype, Offset: t.data[0], Detail: "BYTES tensor holds non-string data"}
	case !isBytes && c.strs > 0:
		return &DecodeError{Kind: ErrDatatype, Offset: t.data[0], Detail: dt + " tensor holds strings"}
	case dt == DatatypeBool && c.nums > 0, dt != DatatypeBool && c.bools > 0:
		return &DecodeError{Kind: ErrDatatype, Offset: t.data[0], Detail: dt + " tensor holds the wrong element type"}
	case integer && c.fractions > 0:
		return &DecodeError{Kind: ErrDatatype, Offset: t.data[0], Detail: dt + " tensor holds non-integers"}
	}
	total := c.nums + c.bools + c.strs
	if int64(total) != elems {
		return &DecodeError{Kind: ErrShape, Offset: t.data[0],
			Detail: fmt.Sprintf("shape %v needs %d elements, data has %d", p.Shape, elems, total)}
	}
	batch, per := 1, int(elems)
	if len(p.Shape) > 0 {
		batch = int(p.Shape[0])
		if batch > 0 {
			per = int(elems) / batch
		}
	}
	if per == 0 && batch > 0 {
		return &DecodeError{Kind: ErrShape, Offset: t.shape[0], Detail: "instances have no elements"}
	}
	if isBytes {
		p.bytesValues(body, batch, per)
		return nil
	}
	for i := range batch {
		nums := p.nums[i*per : (i+1)*per : (i+1)*per]
		if per == 1 && integer {
			p.add(Value{Kind: KindInt, Int: int64(nums[0])}, fixup{})
			continue
		}
		p.add(Value{Kind: KindNumbers, IntData: integer, Nums: nums}, fixup{})
	}
	return nil
}

// dataCount tallies the element types met while flattening V2 data.
type dataCount struct {
	nums, bools, strs, fractions int
}

// flatten appends the leaves of a (nested) data array to p.nums (numbers,
// booleans as 0/1) or p.elems (strings).
func (s *scanner) flatten(p *Predictions, c *dataCount) error {
	switch v := s.peek(); v {
	case '[':
		ok, err := s.open('[', ']')
		for ok && err == nil {
			if err = s.flatten(p, c); err != nil {
				return err
			}
			ok, err = s.more(']')
		}
		return err
	case '"':
		sp, err := s.str()
		p.elems = append(p.elems, elem{span: sp})
		c.strs++
		return err
	case 't', 'f':
		c.bools++
		if v == 't' {
			p.nums = append(p.nums, 1)
			return s.lit("true")
		}
		p.nums = append(p.nums, 0)
		return s.lit("false")
	case 'n', '{':
		return &DecodeError{Kind: ErrDatatype, Offset: s.i, Detail: "tensor data holds null or an object"}
	}
	f, isInt, err := s.float()
	if !isInt {
		c.fractions++
	}
	c.nums++
	p.nums = append(p.nums, f)
	return err
}

// elem is a string element of BYTES data: a span of the body, or of p.esc
// once unescaped.
type elem struct {
	span
	inEsc bool
}

// bytesValues builds the Values of a BYTES tensor from p.elems.
func (p *Predictions) bytesValues(body []byte, batch, per int) {
	// Unescape first: p.esc must stop growing before slices into it are kept.
	for i := range p.elems {
		if e := &p.elems[i]; e.esc {
			lo := len(p.esc)
			p.esc = appendUnescaped(p.esc, body[e.lo:e.hi])
			e.lo, e.hi, e.inEsc = lo, len(p.esc), true
		}
	}
	for _, e := range p.elems {
		src := body
		if e.inEsc {
			src = p.esc
		}
		p.strs = append(p.strs, src[e.lo:e.hi:e.hi])
	}
	for i := range batch {
		inst := p.strs[i*per : (i+1)*per : (i+1)*per]
		if score, idx, label, ok := ParseClassification(inst[0]); ok && allClassification(inst[1:]) {
			p.nums = append(p.nums, score)
			n := int32(len(p.nums))
			p.add(Value{Kind: KindClass, Int: idx, Str: label}, fixup{numLo: n - 1, numHi: n})
			continue
		}
		if per == 1 {
			p.add(Value{Kind: KindString, Str: inst[0]}, fixup{})
			continue
		}
		p.add(Value{Kind: KindStrings, Strs: inst}, fixup{})
	}
	p.finish()
}

func allClassification(ss [][]byte) bool {
	for _, s := range ss {
		if _, _, _, ok := ParseClassification(s); !ok {
			return false
		}
	}
	return true
}

// ParseClassification parses one Triton classification-extension string,
// "score:index" or "score:index:label" (the label may itself contain ':').
func ParseClassification(b []byte) (score float64, index int64, label []byte, ok bool) {
	i := indexByte(b, ':')
	if i <= 0 {
		return 0, 0, nil, false
	}
	f, err := strconv.ParseFloat(string(b[:i]), 64)
	if err != nil {
		return 0, 0, nil, false
	}
	rest := b[i+1:]
	j := indexByte(rest, ':')
	idxPart := rest
	if j >= 0 {
		idxPart, label = rest[:j], rest[j+1:]
	}
	n, err := strconv.ParseInt(string(idxPart), 10, 64)
	if err != nil {
		return 0, 0, nil, false
	}
	return f, n, label, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
