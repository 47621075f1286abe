package models

// CheckRequest reports whether a request body can take part in a
// comparison, without allocating: nil, or an error wrapping
// ErrBinaryTensor (V2 inputs with binary_data_size, or bytes after the
// JSON), ErrMalformedJSON or ErrMissingOutput (a V1 body without
// "instances"/"inputs", a V2 body without "inputs"). Headers (Content-Type,
// Inference-Header-Content-Length) are the caller's to check. The proxy
// forwards such requests to stable unchanged either way; this only decides
// whether shadowing them is worth it. Pure; safe for concurrent use.
func CheckRequest(proto Protocol, body []byte) error {
	want := "inputs"
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
		case proto == ProtocolV1 && (k.is(body, "instances") || k.is(body, "inputs")):
			found = true
			err = s.skip()
		case proto == ProtocolV2 && k.is(body, want):
			found = true
			err = scanV2Inputs(&s)
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
		return &DecodeError{Kind: ErrMissingOutput, Detail: "request has no instances/inputs"}
	}
	return nil
}

// scanV2Inputs validates the inputs array and rejects binary inputs.
func scanV2Inputs(s *scanner) error {
	if s.peek() != '[' {
		return s.syntax(`"inputs" must be an array`)
	}
	ok, err := s.open('[', ']')
	for ok && err == nil {
		var t v2Tensor
		if err = scanV2Tensor(s, &t); err != nil {
			return err
		}
		if t.binary {
			return &DecodeError{Kind: ErrBinaryTensor, Offset: s.i, Detail: "input carries binary_data_size"}
		}
		ok, err = s.more(']')
	}
	return err
}
