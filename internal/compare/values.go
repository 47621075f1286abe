package compare

import (
	"bytes"
	"math"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

// compareValue compares one instance under the resolved mode, filling d. It
// returns ReasonNone, or why the two values cannot be compared (a schema
// mismatch).
func compareValue(s, c *models.Value, o *resolved, d *InstanceDiff) Reason {
	switch o.Mode {
	case ModeClassification:
		return compareLabels(s, c, o, d)
	case ModeRegression:
		return compareRegression(s, c, o, d)
	case ModeProbabilities:
		return compareProbabilities(s, c, o, d)
	}
	return compareAuto(s, c, o, d)
}

func isLabel(k models.ValueKind) bool {
	return k == models.KindInt || k == models.KindString || k == models.KindClass
}

func isNumeric(k models.ValueKind) bool {
	return k == models.KindInt || k == models.KindNumbers
}

func compareAuto(s, c *models.Value, o *resolved, d *InstanceDiff) Reason {
	switch {
	case s.Kind == models.KindJSON && c.Kind == models.KindJSON:
		return compareJSON(s.Raw, c.Raw, o, d)
	case s.Kind == models.KindStrings && c.Kind == models.KindStrings:
		return compareStrings(s.Strs, c.Strs, d)
	case isLabel(s.Kind) && isLabel(c.Kind):
		return compareLabels(s, c, o, d)
	case isNumeric(s.Kind) && isNumeric(c.Kind):
		var sb, cb [1]float64
		a, b := nums(s, &sb), nums(c, &cb)
		if len(a) != len(b) {
			if s.Kind == models.KindInt || c.Kind == models.KindInt {
				return ReasonKind // a label against a vector
			}
			return ReasonLength
		}
		if len(a) > 1 && !s.IntData && !c.IntData && looksLikeProbabilities(a) && looksLikeProbabilities(b) {
			*d = Probabilities(a, b, o.topK, o.nanEqual)
			o.nameLabels(d)
			return ReasonNone
		}
		*d = Regression(a, b, o.absTol, o.relTol, o.nanEqual)
		return ReasonNone
	}
	return ReasonKind
}

// nums views a numeric value as a float slice (an integer via buf, which
// stays on the caller's stack).
func nums(v *models.Value, buf *[1]float64) []float64 {
	if v.Kind == models.KindInt {
		buf[0] = float64(v.Int)
		return buf[:]
	}
	return v.Nums
}

func compareRegression(s, c *models.Value, o *resolved, d *InstanceDiff) Reason {
	if !isNumeric(s.Kind) || !isNumeric(c.Kind) {
		return ReasonKind
	}
	var sb, cb [1]float64
	a, b := nums(s, &sb), nums(c, &cb)
	if len(a) != len(b) {
		return ReasonLength
	}
	*d = Regression(a, b, o.absTol, o.relTol, o.nanEqual)
	return ReasonNone
}

func compareProbabilities(s, c *models.Value, o *resolved, d *InstanceDiff) Reason {
	if s.Kind != models.KindNumbers || c.Kind != models.KindNumbers {
		return ReasonKind
	}
	a, b := s.Nums, c.Nums
	if len(a) != len(b) {
		return ReasonLength
	}
	if len(a) == 1 { // a binary classifier's P(class 1)
		var sb, cb [2]float64
		sb[0], sb[1] = 1-a[0], a[0]
		cb[0], cb[1] = 1-b[0], b[0]
		a, b = sb[:], cb[:]
		*d = Probabilities(a, b, o.topK, o.nanEqual)
	} else {
		*d = Probabilities(a, b, o.topK, o.nanEqual)
	}
	if o.MaxJS > 0 && !(d.JS <= o.MaxJS) && !math.IsNaN(d.JS) {
		d.Agree = false
	}
	o.nameLabels(d)
	return ReasonNone
}

// compareLabels compares the labels of two values (classification).
func compareLabels(s, c *models.Value, o *resolved, d *InstanceDiff) Reason {
	*d = InstanceDiff{Mode: ModeClassification, HasLabels: true, JS: math.NaN(), TopKOverlap: math.NaN()}
	if s.Kind == models.KindNumbers && c.Kind == models.KindNumbers {
		if len(s.Nums) != len(c.Nums) {
			return ReasonLength
		}
		if hasNaN(s.Nums) || hasNaN(c.Nums) {
			// Same rule as for probabilities: NaNs in the same places
			// agree only under nan_equal.
			p := Probabilities(s.Nums, c.Nums, 1, o.nanEqual)
			d.Stable, d.Canary, d.Agree = p.Stable, p.Canary, p.Agree
			o.nameLabels(d)
			return ReasonNone
		}
	}
	var ok bool
	if d.Stable, ok = o.label(s); !ok {
		return ReasonKind
	}
	if d.Canary, ok = o.label(c); !ok {
		return ReasonKind
	}
	switch {
	case d.Stable.Index >= 0 && d.Canary.Index >= 0:
		d.Agree = d.Stable.Index == d.Canary.Index
	case d.Stable.Name != "" && d.Canary.Name != "":
		d.Agree = d.Stable.Name == d.Canary.Name
	case d.Stable.Index >= 0 || d.Canary.Index >= 0:
		// An index against a name with no LabelNames to relate them.
		return ReasonKind
	default:
		d.Agree = d.Stable.Name == d.Canary.Name
	}
	return ReasonNone
}

func hasNaN(v []float64) bool {
	for _, x := range v {
		if x != x {
			return true
		}
	}
	return false
}

// label extracts a class label from a value.
func (o *resolved) label(v *models.Value) (Label, bool) {
	switch v.Kind {
	case models.KindInt:
		return Label{Index: v.Int, Name: o.name(v.Int)}, true
	case models.KindString:
		return o.labelByName(v.Str), true
	case models.KindClass:
		l := Label{Index: v.Int, Name: o.name(v.Int)}
		if len(v.Str) > 0 && l.Name == "" {
			l.Name = string(v.Str)
		}
		return l, true
	case models.KindNumbers:
		if len(v.Nums) == 1 { // a binary classifier's P(class 1)
			i := int64(0)
			if v.Nums[0] >= 0.5 {
				i = 1
			}
			return Label{Index: i, Name: o.name(i)}, true
		}
		i := int64(Argmax(v.Nums))
		return Label{Index: i, Name: o.name(i)}, i >= 0
	}
	return Label{}, false
}

// labelByName resolves a string label to its index when LabelNames has it.
// Found names reuse the configured string, so only unknown names allocate.
func (o *resolved) labelByName(b []byte) Label {
	for i, n := range o.LabelNames {
		if n == string(b) {
			return Label{Index: int64(i), Name: n}
		}
	}
	return Label{Index: -1, Name: string(b)}
}

func (o *resolved) name(i int64) string {
	if i >= 0 && i < int64(len(o.LabelNames)) {
		return o.LabelNames[i]
	}
	return ""
}

func (o *resolved) nameLabels(d *InstanceDiff) {
	d.Stable.Name, d.Canary.Name = o.name(d.Stable.Index), o.name(d.Canary.Index)
}

func compareStrings(s, c [][]byte, d *InstanceDiff) Reason {
	if len(s) != len(c) {
		return ReasonLength
	}
	*d = InstanceDiff{Mode: ModeExact, Agree: true, JS: math.NaN(), TopKOverlap: math.NaN()}
	for i := range s {
		if !bytes.Equal(s[i], c[i]) {
			d.Agree = false
		}
	}
	return ReasonNone
}

// compareJSON compares two raw JSON values canonically (auto mode's
// fallback; IgnorePaths apply only to ModeExact).
func compareJSON(s, c []byte, o *resolved, d *InstanceDiff) Reason {
	*d = InstanceDiff{Mode: ModeExact, JS: math.NaN(), TopKOverlap: math.NaN()}
	if bytes.Equal(s, c) && !bytes.Contains(s, []byte("NaN")) {
		d.Agree = true
		return ReasonNone
	}
	sv, err1 := models.ParseJSON(s)
	cv, err2 := models.ParseJSON(c)
	if err1 != nil || err2 != nil { // cannot happen: the decoder validated both
		return ReasonKind
	}
	d.Agree = jsonEqual(sv, cv, o.nanEqual)
	return ReasonNone
}
