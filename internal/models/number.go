package models

import "strconv"

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
