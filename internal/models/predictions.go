package models

import (
	"errors"
	"fmt"
	"strings"
)

// Decode error kinds. Every error returned by the decoders wraps exactly one
// of them (errors.Is), so the comparer can tell a body it cannot read
// (unparseable) from one that does not have the agreed shape (schema
// mismatch) without matching strings.
var (
	// ErrMalformedJSON: the body is not JSON, or not the protocol's JSON
	// object.
	ErrMalformedJSON = errors.New("malformed JSON")
	// ErrBinaryTensor: the body uses the binary tensor extension
	// (Inference-Header-Content-Length): raw tensor bytes after a JSON
	// header, an output announcing binary_data_size, or a binary content
	// type. Such bodies are served untouched but not compared.
	ErrBinaryTensor = errors.New("binary tensor data")
	// ErrTruncated: the proxy captured only a prefix of the body.
	ErrTruncated = errors.New("body truncated at the capture limit")
	// ErrMissingOutput: no predictions/outputs, or not the configured
	// output name/key.
	ErrMissingOutput = errors.New("missing output")
	// ErrShape: a V2 shape that is invalid or does not match the data.
	ErrShape = errors.New("shape mismatch")
	// ErrDatatype: an unknown V2 datatype, or data of another type.
	ErrDatatype = errors.New("datatype mismatch")
)

// DecodeError is what the decoders return: one of the Err* kinds, where in
// the body it happened, and a human-readable detail.
type DecodeError struct {
	Kind   error
	Offset int
	Detail string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v at byte %d: %s", e.Kind, e.Offset, e.Detail)
}

func (e *DecodeError) Unwrap() error { return e.Kind }

// Unparseable reports whether err means the body could not be read at all
// (as opposed to a readable body with the wrong schema).
func Unparseable(err error) bool {
	return errors.Is(err, ErrMalformedJSON) || errors.Is(err, ErrBinaryTensor) || errors.Is(err, ErrTruncated)
}

// ValueKind says what one decoded instance's prediction is.
type ValueKind uint8

const (
	// KindInvalid is the zero Value.
	KindInvalid ValueKind = iota
	// KindInt is an integer label: an integer JSON literal or a boolean
	// (V1), or a single element of an integer/BOOL tensor (V2). In Int.
	KindInt
	// KindString is a string label (V1 string, single BYTES element). In Str.
	KindString
	// KindNumbers is one float (len 1) or a vector of floats, flattened
	// from nested arrays in row-major order. In Nums.
	KindNumbers
	// KindClass is a Triton classification-extension result
	// "score:index[:label]": the top-1 class index in Int, its score in
	// Nums[0], its label (possibly empty) in Str.
	KindClass
	// KindStrings is several BYTES elements per instance (V2). In Strs.
	KindStrings
	// KindJSON is any other value (objects, mixed arrays, null), kept as
	// its raw JSON text in Raw for exact comparison.
	KindJSON
)

var kindNames = [...]string{"invalid", "int", "string", "numbers", "class", "strings", "json"}

func (k ValueKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Value is the prediction for one instance of a batch. Byte slices alias the
// decoded body or the owning Predictions' scratch; they are valid until the
// body is reused or the Predictions is decoded into again.
type Value struct {
	Kind ValueKind
	// IntData marks KindNumbers decoded from integer literals or an
	// integer tensor.
	IntData bool
	Int     int64
	Nums    []float64
	Str     []byte
	Strs    [][]byte
	Raw     []byte
}

// Predictions is a decoded response: one Value per instance, in order.
//
// It owns reusable scratch buffers so that decoding into the same
// Predictions again does not allocate once the buffers have grown; keep one
// per goroutine (or in a sync.Pool). Not safe for concurrent use.
type Predictions struct {
	Values []Value
	// Output, Datatype and Shape describe the decoded V2 output tensor
	// (empty for V1). Output is its name; it aliases the body (or scratch,
	// for a name with escapes) and Shape aliases scratch.
	Output   []byte
	Datatype string
	Shape    []int64

	nums  []float64 // backing store of every Value.Nums
	esc   []byte    // unescaped strings
	strs  [][]byte  // backing store of every Value.Strs
	fix   []fixup   // per-Value offsets, resolved when decoding ends
	elems []elem    // V2 BYTES data elements
}

// fixup records offsets into scratch buffers that may still grow (and move)
// while decoding; finish turns them into slices.
type fixup struct {
	numLo, numHi int32
	escLo, escHi int32 // Str lives in esc (it had escapes)
}

// Reset empties p, keeping its buffers.
func (p *Predictions) Reset() {
	clear(p.Values) // drop references to the previous body
	p.Values = p.Values[:0]
	p.Output = nil
	p.Datatype = ""
	p.Shape = p.Shape[:0]
	p.nums = p.nums[:0]
	p.esc = p.esc[:0]
	clear(p.strs)
	p.strs = p.strs[:0]
	p.fix = p.fix[:0]
	p.elems = p.elems[:0]
}

// Retained approximates the bytes of scratch p keeps between decodes, so a
// pool can drop a Predictions that grew on one unusually large answer.
func (p *Predictions) Retained() int {
	return cap(p.Values)*int(unsafeSizeofValue) + cap(p.nums)*8 + cap(p.esc) +
		cap(p.strs)*24 + cap(p.fix)*16 + cap(p.elems)*32 + cap(p.Shape)*8
}

// unsafeSizeofValue is the size of Value on 64-bit platforms (checked by a
// test), spelled out to keep this package free of unsafe.
const unsafeSizeofValue = 112

func (p *Predictions) add(v Value, f fixup) {
	p.Values = append(p.Values, v)
	p.fix = append(p.fix, f)
}

func (p *Predictions) finish() {
	for i := range p.Values {
		f := p.fix[i]
		v := &p.Values[i]
		if f.numHi > f.numLo {
			v.Nums = p.nums[f.numLo:f.numHi:f.numHi]
		}
		if f.escHi > f.escLo {
			v.Str = p.esc[f.escLo:f.escHi:f.escHi]
		}
	}
}

// DecodeResponse decodes a successful (2xx) inference response of the given
// protocol into p, reusing p's storage. output selects the V2 output tensor
// by name (empty: the first output) or, for V1, the key inside object
// predictions or columnar outputs (empty: predictions are taken as they
// are). The response's content type decides only one thing: a binary type
// (application/octet-stream, or any "binary" media type such as Triton's
// application/vnd.sagemaker-triton.binary+json) is ErrBinaryTensor without
// looking at the body; anything else is read as JSON. Pure; no I/O.
func DecodeResponse(proto Protocol, r Response, output string, p *Predictions) error {
	p.Reset()
	if r.Truncated {
		return &DecodeError{Kind: ErrTruncated, Offset: len(r.Body), Detail: "raise the capture limit to compare large answers"}
	}
	if IsBinaryContentType(r.ContentType) {
		return &DecodeError{Kind: ErrBinaryTensor, Detail: "content type " + r.ContentType}
	}
	switch proto {
	case ProtocolV1:
		return DecodeV1Response(r.Body, output, p)
	case ProtocolV2:
		return DecodeV2Response(r.Body, output, p)
	}
	return &DecodeError{Kind: ErrMalformedJSON, Detail: fmt.Sprintf("protocol %q has no response codec", proto)}
}

// IsBinaryContentType reports whether a Content-Type announces a
// non-JSON body (the OIP binary tensor extension or raw octets).
func IsBinaryContentType(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "application/octet-stream") || strings.Contains(ct, "binary")
}
