package models

import (
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a minimal, allocation-free JSON tokenizer over a byte slice.
//
// encoding/json decodes a 10-class probability response into []any with
// dozens of allocations; the comparer runs on every shadowed pair, so the
// response decoders walk the bytes with this scanner instead and keep only
// the numbers and spans they need. It validates what it walks (strings,
// numbers, nesting), so a body it accepts is well-formed JSON, with one
// deliberate extension: the number literals NaN, Infinity and -Infinity,
// which Python's json module (and so most KServe model servers) emits.
type scanner struct {
	b     []byte
	i     int
	depth int
	fast  fastFloat // the last number num scanned
}

// maxDepth bounds nesting so a hostile body cannot exhaust the stack.
const maxDepth = 128

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax("expected '" + string(rune(c)) + "'")
	}
	s.i++
	return nil
}

func (s *scanner) syntax(what string) error {
	return &DecodeError{Kind: ErrMalformedJSON, Offset: s.i, Detail: what}
}

// end checks that only whitespace follows the top-level value. Trailing
// bytes are what a binary-tensor body looks like to a JSON reader (a JSON
// header followed by raw tensor bytes), so they get their own kind.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return &DecodeError{Kind: ErrBinaryTensor, Offset: s.i,
			Detail: "data after the JSON value (binary tensor extension?)"}
	}
	return nil
}

// more is called after an element of an array or object: it consumes a
// ',' and reports true, or consumes the closing byte and reports false.
func (s *scanner) more(close byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.i++
		return true, nil
	case close:
		s.i++
		s.depth--
		return false, nil
	}
	return false, s.syntax("expected ',' or '" + string(rune(close)) + "'")
}

// open consumes '[' or '{' and reports whether the container is non-empty
// (an empty one is consumed entirely).
func (s *scanner) open(c, close byte) (bool, error) {
	if err := s.expect(c); err != nil {
		return false, err
	}
	s.depth++
	if s.depth > maxDepth {
		return false, s.syntax("nesting too deep")
	}
	if s.peek() == close {
		s.i++
		s.depth--
		return false, nil
	}
	return true, nil
}

// key reads an object key and the ':' after it.
func (s *scanner) key() (k span, err error) {
	if s.peek() != '"' {
		return span{}, s.syntax("expected object key")
	}
	if k, err = s.str(); err != nil {
		return span{}, err
	}
	return k, s.expect(':')
}

// span locates a string's content (without quotes) in the input.
type span struct {
	lo, hi int
	esc    bool // contains backslash escapes; must be unescaped before use
}

// is reports whether the span holds exactly the (escape-free) name.
func (sp span) is(b []byte, name string) bool {
	return !sp.esc && string(b[sp.lo:sp.hi]) == name
}

// str scans a string; s.i must be at the opening quote.
func (s *scanner) str() (span, error) {
	s.i++
	sp := span{lo: s.i}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			sp.hi = s.i
			s.i++
			return sp, nil
		case c == '\\':
			sp.esc = true
			s.i++
			if s.i >= len(s.b) {
				return sp, s.syntax("unterminated string")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return sp, s.syntax("short \\u escape")
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if unhex(h) < 0 {
						return sp, s.syntax("bad \\u escape")
					}
				}
				s.i += 5
			default:
				return sp, s.syntax("bad escape")
			}
		case c < 0x20:
			return sp, s.syntax("control character in string")
		default:
			s.i++
		}
	}
	return sp, s.syntax("unterminated string")
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// appendUnescaped appends the decoded content of an escaped string span
// (already validated by str) to dst.
func appendUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch src[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(src[i+1:])
			i += 4
			if utf16.IsSurrogate(r) && i+6 < len(src) && src[i+1] == '\\' && src[i+2] == 'u' {
				if r2 := utf16.DecodeRune(r, hex4(src[i+3:])); r2 != utf8.RuneError {
					r = r2
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, src[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	return unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3])
}

// lit consumes a literal (true, false, null).
func (s *scanner) lit(l string) error {
	if !hasPrefix(s.b[s.i:], l) {
		return s.syntax("bad literal")
	}
	s.i += len(l)
	return nil
}

// skip validates and skips one value of any kind.
func (s *scanner) skip() error {
	switch c := s.peek(); c {
	case '{':
		ok, err := s.open('{', '}')
		for ok && err == nil {
			if _, err = s.key(); err != nil {
				return err
			}
			if err = s.skip(); err != nil {
				return err
			}
			ok, err = s.more('}')
		}
		return err
	case '[':
		ok, err := s.open('[', ']')
		for ok && err == nil {
			if err = s.skip(); err != nil {
				return err
			}
			ok, err = s.more(']')
		}
		return err
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	case 0:
		return s.syntax("unexpected end of input")
	default:
		_, _, _, err := s.num()
		return err
	}
}
