package models

// ParseJSON parses one JSON document into plain Go values: map[string]any,
// []any, float64, string, bool and nil. Unlike encoding/json it accepts the
// NaN, Infinity and -Infinity literals Python servers emit, and it reports
// errors wrapping ErrMalformedJSON (or ErrBinaryTensor for trailing bytes).
// It allocates like encoding/json does; the comparer uses it only for the
// exact mode and for instances that are neither labels nor numbers.
// Pure; safe for concurrent use.
func ParseJSON(b []byte) (any, error) {
	s := scanner{b: b}
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	return v, s.end()
}

func (s *scanner) value() (any, error) {
	switch c := s.peek(); c {
	case '{':
		m := map[string]any{}
		ok, err := s.open('{', '}')
		for ok && err == nil {
			var k span
			if k, err = s.key(); err != nil {
				return nil, err
			}
			var v any
			if v, err = s.value(); err != nil {
				return nil, err
			}
			m[s.text(k)] = v
			ok, err = s.more('}')
		}
		return m, err
	case '[':
		a := []any{}
		ok, err := s.open('[', ']')
		for ok && err == nil {
			var v any
			if v, err = s.value(); err != nil {
				return nil, err
			}
			a = append(a, v)
			ok, err = s.more(']')
		}
		return a, err
	case '"':
		sp, err := s.str()
		if err != nil {
			return nil, err
		}
		return s.text(sp), nil
	case 't':
		return true, s.lit("true")
	case 'f':
		return false, s.lit("false")
	case 'n':
		return nil, s.lit("null")
	case 0:
		return nil, s.syntax("unexpected end of input")
	}
	f, _, err := s.float()
	return f, err
}

// text returns a string span's decoded content as a new string.
func (s *scanner) text(sp span) string {
	if !sp.esc {
		return string(s.b[sp.lo:sp.hi])
	}
	return string(appendUnescaped(nil, s.b[sp.lo:sp.hi]))
}
