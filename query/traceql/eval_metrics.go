package traceql

// This file holds what the metrics engine (query/metrics) needs from the
// evaluator besides Eval: the value of a field on one span (by() labels,
// the measured attribute), whether compare()'s selection holds for one
// span, and the attributes of a span (compare() counts them all).

// ValueOn is the attribute's value on span s of trace t, as a spanset
// filter would see it: missing (IsNil) when the span does not have it or
// when the field cannot be evaluated (parent. attributes). Strings point
// into the trace's data: Clone a value kept beyond the trace's life.
func (a *Attribute) ValueOn(t *Trace, s *Span) Value {
	if a == nil || s == nil {
		return Value{}
	}
	c := evalCtx{t: t}
	v, err := c.attribute(a, s)
	if err != nil {
		return Value{}
	}
	return v
}

// MatchesSpan reports whether span s of trace t satisfies the filter's
// expression (`{}` matches every span).
func (f *SpansetFilter) MatchesSpan(t *Trace, s *Span) (bool, error) {
	if f == nil || f.Expr == nil {
		return true, nil
	}
	c := evalCtx{t: t}
	v, err := c.field(f.Expr, s)
	if err != nil {
		return false, err
	}
	return v.truthy(), nil
}

// Clone returns v with its strings copied, so that it outlives the trace
// it was read from.
func (v Value) Clone() Value { return v.clone() }

// SameGroup reports whether a and b are the same group key: equal values
// of the same type (NaN equals NaN), two missing values, or lists of the
// same elements.
func SameGroup(a, b Value) bool { return sameValue(a, b) }

// EachAttribute calls fn with every attribute of span s of trace t as
// compare() counts them: the span's attributes (scope span), its
// resource's (scope resource), and the intrinsics name, status, kind
// and statusMessage (when not empty). Values point into the trace's data. The Attribute
// passed is reused between calls.
func (s *Span) EachAttribute(t *Trace, fn func(a *Attribute, v Value)) {
	var a Attribute
	for i := range s.attrs {
		a = Attribute{Scope: ScopeSpan, Name: bstr(s.attrs[i].key)}
		fn(&a, wireValue(s.attrs[i].val))
	}
	if s.resource != nil {
		for i := range s.resource.attrs {
			a = Attribute{Scope: ScopeResource, Name: bstr(s.resource.attrs[i].key)}
			fn(&a, wireValue(s.resource.attrs[i].val))
		}
	}
	c := evalCtx{t: t}
	for _, in := range [...]Intrinsic{IntrinsicName, IntrinsicStatus, IntrinsicKind, IntrinsicStatusMessage} {
		v, err := c.intrinsic(in, s)
		if err != nil || v.IsNil() || (in == IntrinsicStatusMessage && v.Str == "") {
			continue
		}
		a = Attribute{Scope: in.Scope(), Name: in.String(), Intrinsic: in}
		fn(&a, v)
	}
}
