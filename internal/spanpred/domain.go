package spanpred

import "strings"

// maxDomainValues is the most distinct values a DomainBuilder lists; past
// it the domain keeps bounds (numbers of one kind) or knows nothing.
const maxDomainValues = 64

// DomainBuilder builds the Domain of one field from its values over many
// spans. The zero value is an empty builder (a field missing everywhere).
type DomainBuilder struct {
	values   map[Value]struct{}
	overflow bool // more than maxDomainValues distinct values
	unknown  bool // a value storage cannot give exactly, or mixed kinds past the cap
	kind     Kind // the one numeric kind seen, or Missing
	mixed    bool // values of several kinds, or non-numeric ones
	min, max Value
}

// Add counts one span's value. Missing values add nothing.
func (b *DomainBuilder) Add(v Value) {
	switch {
	case v.Kind == Missing || b.unknown:
		return
	case v.Kind == Unknown || v.Kind == Float && v.Float != v.Float: // NaN has no bounds
		b.unknown = true
		return
	}
	b.bound(v)
	if b.overflow {
		if b.mixed {
			b.unknown = true
		}
		return
	}
	if b.values == nil {
		b.values = map[Value]struct{}{}
	}
	if _, ok := b.values[v]; ok {
		return
	}
	if len(b.values) == maxDomainValues {
		b.overflow, b.values = true, nil
		if b.mixed {
			b.unknown = true
		}
		return
	}
	if v.Kind == String {
		v.Str = strings.Clone(v.Str) // it may point into data that goes
	}
	b.values[v] = struct{}{}
}

// bound keeps the bounds of numeric values of one kind.
func (b *DomainBuilder) bound(v Value) {
	if b.mixed {
		return
	}
	if v.Kind != Int && v.Kind != Float && v.Kind != Duration || b.kind != Missing && b.kind != v.Kind {
		b.mixed = true
		return
	}
	if b.kind == Missing {
		b.kind, b.min, b.max = v.Kind, v, v
		return
	}
	if less(v, b.min) {
		b.min = v
	}
	if less(b.max, v) {
		b.max = v
	}
}

func less(a, b Value) bool {
	if a.Kind == Float {
		return a.Float < b.Float
	}
	return a.Int < b.Int
}

// Domain is what the values added say of the field.
func (b *DomainBuilder) Domain() Domain {
	switch {
	case b.unknown:
		return Domain{}
	case b.overflow:
		if b.kind == Missing || b.mixed {
			return Domain{}
		}
		return Domain{Known: true, Bounded: true, Min: b.min, Max: b.max}
	}
	d := Domain{Known: true, Values: make([]Value, 0, len(b.values))}
	for v := range b.values {
		d.Values = append(d.Values, v)
	}
	return d
}
