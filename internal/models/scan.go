package models

import (
	"strconv"
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

// num scans a number literal and reports whether it is an integer literal
// (no fraction, no exponent), which the decoders treat as a class label.
// On the way it accumulates the decimal mantissa and exponent in s.fast so
// that float can usually convert without calling strconv.
func (s *scanner) num() (lo, hi int, isInt bool, err error) {
	lo = s.i
	b := s.b
	i := s.i
	s.fast = fastFloat{}
	if i < len(b) && b[i] == '-' {
		s.fast.neg = true
		i++
	}
	if lit := "Infinity"; hasPrefix(b[i:], lit) {
		s.i = i + len(lit)
		s.fast.slow = true
		return lo, s.i, false, nil
	}
	if lit := "NaN"; i == lo && hasPrefix(b[i:], lit) {
		s.i = i + len(lit)
		s.fast.slow = true
		return lo, s.i, false, nil
	}
	// mantissa digits: up to 19 fit a uint64; beyond, strconv decides.
	var mant uint64
	nd, exp10 := 0, 0
	digit := func(frac bool) bool {
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		if nd < 19 {
			mant = mant*10 + uint64(b[i]-'0')
			if mant != 0 {
				nd++
			}
			if frac {
				exp10--
			}
		} else {
			s.fast.slow = true
		}
		i++
		return true
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digit(false):
		s.i = i
		return lo, i, false, s.syntax("bad number")
	default:
		for digit(false) {
		}
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		i++
		isInt = false
		if !digit(true) {
			s.i = i
			return lo, i, false, s.syntax("bad number fraction")
		}
		for digit(true) {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		isInt = false
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		e, n := 0, 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if e < 10000 {
				e = e*10 + int(b[i]-'0')
			}
			n++
		}
		if n == 0 {
			s.i = i
			return lo, i, false, s.syntax("bad number exponent")
		}
		if neg {
			e = -e
		}
		exp10 += e
	}
	s.fast.mant, s.fast.exp10 = mant, exp10
	s.i = i
	return lo, i, isInt, nil
}

// fastFloat is a decimal number as num saw it: mant * 10^exp10.
type fastFloat struct {
	mant  uint64
	exp10 int
	neg   bool
	slow  bool // more than 19 digits, NaN or Infinity: use strconv
}

// float64pow10 holds the powers of ten that are exact doubles.
var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// value converts exactly when it can: a mantissa below 2^53 and a power of
// ten up to 22 are both exact doubles, so one IEEE multiply or divide gives
// the correctly rounded result (Clinger's fast path, as strconv uses).
func (f fastFloat) value() (float64, bool) {
	if f.slow || f.mant >= 1<<53 || f.exp10 < -22 || f.exp10 > 22 {
		return 0, false
	}
	v := float64(f.mant)
	if f.exp10 < 0 {
		v /= float64pow10[-f.exp10]
	} else {
		v *= float64pow10[f.exp10]
	}
	if f.neg {
		v = -v
	}
	return v, true
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// float reads a number and converts it. Out-of-range literals become ±Inf
// rather than errors: they are valid JSON and compare like infinities.
func (s *scanner) float() (f float64, isInt bool, err error) {
	lo, hi, isInt, err := s.num()
	if err != nil {
		return 0, false, err
	}
	if v, ok := s.fast.value(); ok {
		return v, isInt, nil
	}
	return parseFloat(s.b[lo:hi]), isInt, nil
}

func parseFloat(b []byte) float64 {
	// The conversion does not allocate: the string does not escape and
	// strconv copies it before building an error.
	f, _ := strconv.ParseFloat(string(b), 64)
	return f
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
