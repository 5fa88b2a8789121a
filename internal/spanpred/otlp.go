package spanpred

import (
	"unsafe"

	"github.com/weftdb/weft/internal/otlpwire"
)

// Matcher tests the spans of OTLP data against a predicate, reading from
// the encoded bytes only the fields the predicate names: no span is
// decoded. It reuses its memory from one call to the next and is not safe
// for concurrent use.
type Matcher struct {
	p Predicate
	r *RowReader
}

// NewMatcher returns a matcher for p.
func NewMatcher(p Predicate) *Matcher { return &Matcher{p: p, r: NewRowReader(p.Fields())} }

// Match reports whether some span of data, an OTLP TracesData message (a
// sequence of ResourceSpans, as the live-store keeps a trace), may
// satisfy the predicate.
func (m *Matcher) Match(data []byte) (bool, error) {
	hit := false
	err := m.r.Rows(data, func(row []Value) bool {
		hit = m.p.Match(row)
		return !hit
	})
	return hit, err
}

// RowReader reads the values of some fields from each span of OTLP data,
// without decoding the spans. It reuses its memory from one call to the
// next and is not safe for concurrent use.
type RowReader struct {
	// EverySpan makes Rows give a row for every span even when the fields
	// are all resource attributes (by default it then gives one row per
	// resource).
	EverySpan bool

	fields []Field
	row    []Value
	set    []bool // row[i] was given by an earlier attribute of the same key
	// spanAttrs, resAttrs and intrinsics index fields by where their
	// values come from.
	spanAttrs, resAttrs, intrinsics []int
	onSpanAttr, onResAttr           func(key, value []byte) bool
}

// NewRowReader returns a reader of fields.
func NewRowReader(fields []Field) *RowReader {
	m := &RowReader{fields: fields}
	m.row = make([]Value, len(m.fields))
	m.set = make([]bool, len(m.fields))
	for i, f := range m.fields {
		switch {
		case f.Intrinsic != IntrinsicNone:
			m.intrinsics = append(m.intrinsics, i)
		case f.Resource:
			m.resAttrs = append(m.resAttrs, i)
		default:
			m.spanAttrs = append(m.spanAttrs, i)
		}
	}
	m.onSpanAttr = func(k, v []byte) bool { return m.attr(m.spanAttrs, k, v) }
	m.onResAttr = func(k, v []byte) bool { return m.attr(m.resAttrs, k, v) }
	return m
}

// attr gives the value v of key k to the fields among idx that read it,
// unless an earlier attribute of the same key did (the first one counts,
// as in the engine). It returns false once every field has its value.
func (m *RowReader) attr(idx []int, k, raw []byte) bool {
	left := false
	for _, i := range idx {
		if m.set[i] {
			continue
		}
		if m.fields[i].Name == bstr(k) {
			v, err := otlpwire.ReadAnyValue(raw)
			if err != nil {
				m.row[i] = UnknownValue() // unreadable: it may be anything
			} else {
				m.row[i] = wireValue(v)
			}
			m.set[i] = true
			continue
		}
		left = true
	}
	return left
}

func (m *RowReader) reset(idx []int) {
	for _, i := range idx {
		m.row[i], m.set[i] = Value{}, false
	}
}

// Rows calls fn with the row of each span of data, an OTLP TracesData
// message (a sequence of ResourceSpans, as the live-store keeps a trace),
// until fn returns false. The row is valid only during the call, and its
// strings point into data.
func (m *RowReader) Rows(data []byte, fn func(row []Value) bool) error {
	perSpan := m.EverySpan || len(m.intrinsics) > 0 || len(m.spanAttrs) > 0
	var err error
	stop := false
	var onAttr func(key, value []byte) bool
	if len(m.spanAttrs) > 0 {
		onAttr = m.onSpanAttr
	}
	onSpan := func(raw []byte) bool {
		m.reset(m.spanAttrs)
		var f otlpwire.SpanFields
		if f, err = otlpwire.ReadSpanAttributes(raw, onAttr); err != nil {
			return false
		}
		m.setIntrinsics(&f)
		stop = !fn(m.row)
		return !stop
	}
	werr := otlpwire.EachResourceSpans(data, func(rs []byte) bool {
		m.reset(m.resAttrs)
		if len(m.resAttrs) > 0 {
			if err = otlpwire.EachAttributeRaw(rs, otlpwire.MessageResourceHeader, m.onResAttr); err != nil {
				return false
			}
		}
		if !perSpan {
			// Every span of the resource has the same row: test it once
			// if the resource has a span.
			any := false
			if err = otlpwire.EachSpan(rs, func([]byte) bool { any = true; return false }); err != nil {
				return false
			}
			if any {
				stop = !fn(m.row)
			}
			return !stop
		}
		if e := otlpwire.EachSpan(rs, onSpan); e != nil && err == nil {
			err = e
		}
		return err == nil && !stop
	})
	if err != nil {
		return err
	}
	return werr
}

func (m *RowReader) setIntrinsics(f *otlpwire.SpanFields) {
	for _, i := range m.intrinsics {
		switch m.fields[i].Intrinsic {
		case IntrinsicDuration:
			d := int64(0)
			if f.EndTimeUnixNano > f.StartTimeUnixNano {
				d = int64(f.EndTimeUnixNano - f.StartTimeUnixNano)
			}
			m.row[i] = DurationValue(d)
		case IntrinsicName:
			m.row[i] = StringValue(bstr(f.Name))
		case IntrinsicStatus:
			m.row[i] = StatusValue(f.StatusCode)
		case IntrinsicStatusMessage:
			m.row[i] = StringValue(bstr(f.StatusMessage))
		case IntrinsicKind:
			m.row[i] = SpanKindValue(f.Kind)
		default:
			m.row[i] = UnknownValue()
		}
	}
}

// wireValue is the value of an OTLP attribute: scalars exactly, the rest
// Unknown.
func wireValue(v otlpwire.AnyValueView) Value {
	switch v.Type() {
	case otlpwire.ValueTypeStr:
		return StringValue(bstr(v.Str()))
	case otlpwire.ValueTypeInt:
		return IntValue(v.Int())
	case otlpwire.ValueTypeDouble:
		return FloatValue(v.Double())
	case otlpwire.ValueTypeBool:
		return BoolValue(v.Bool())
	case otlpwire.ValueTypeEmpty:
		return Value{}
	}
	return UnknownValue()
}

// bstr views b as a string without copying; it lives as long as b.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
