package otlpwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file reads fields and attributes out of encoded spans, events,
// links, resources and scopes without decoding them into Go structs: the
// block writer needs a handful of fields of every span and a string form of
// every attribute, and nothing else.
//
// Byte slices returned by the readers point into the message they were read
// from. Scalar fields follow protobuf rules: when a field occurs more than
// once the last occurrence wins. Unknown fields are skipped; a known field
// with the wrong wire type is an error.

// SpanFields are the fields of an encoded Span other than its attributes,
// events and links, which are counted here and read with EachAttribute,
// EachEvent and EachLink.
type SpanFields struct {
	TraceID           []byte
	SpanID            []byte
	TraceState        []byte
	ParentSpanID      []byte
	Name              []byte
	Kind              int32
	StartTimeUnixNano uint64
	EndTimeUnixNano   uint64
	Flags             uint32
	StatusCode        int32
	StatusMessage     []byte

	DroppedAttributesCount uint32
	DroppedEventsCount     uint32
	DroppedLinksCount      uint32

	Attributes int // number of attributes
	Events     int // number of events
	Links      int // number of links
}

// EventFields are the fields of an encoded Span.Event other than its
// attributes.
type EventFields struct {
	TimeUnixNano           uint64
	Name                   []byte
	DroppedAttributesCount uint32
	Attributes             int // number of attributes
}

// LinkFields are the fields of an encoded Span.Link other than its
// attributes.
type LinkFields struct {
	TraceID                []byte
	SpanID                 []byte
	TraceState             []byte
	Flags                  uint32
	DroppedAttributesCount uint32
	Attributes             int // number of attributes
}

// ResourceFields are the fields of a Resource.Header (an encoded
// ResourceSpans without its scope_spans) other than the resource's
// attributes.
type ResourceFields struct {
	SchemaURL              []byte
	DroppedAttributesCount uint32
	Attributes             int // number of resource attributes
}

// ScopeFields are the fields of a Scope.Header (an encoded ScopeSpans
// without its spans) other than the scope's attributes.
type ScopeFields struct {
	Name                   []byte
	Version                []byte
	SchemaURL              []byte
	DroppedAttributesCount uint32
	Attributes             int // number of scope attributes
}

// fieldIter walks the fields of one message. It allocates nothing.
type fieldIter struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	val []byte // content of a length-delimited field, else the encoded value
	err error
}

func (it *fieldIter) next() bool {
	if len(it.b) == 0 || it.err != nil {
		return false
	}
	num, typ, n := protowire.ConsumeTag(it.b)
	if n < 0 {
		it.err = fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		return false
	}
	if num <= 0 {
		it.err = errTruncated
		return false
	}
	it.b = it.b[n:]
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(it.b)
		if m < 0 {
			it.err = fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			return false
		}
		it.val, it.b = v, it.b[m:]
	} else {
		m := protowire.ConsumeFieldValue(num, typ, it.b)
		if m < 0 {
			it.err = fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			return false
		}
		it.val, it.b = it.b[:m], it.b[m:]
	}
	it.num, it.typ = num, typ
	return true
}

// want checks the wire type of a known field.
func (it *fieldIter) want(typ protowire.Type, name string) bool {
	if it.typ != typ {
		it.err = fmt.Errorf("%s: wrong wire type %d", name, it.typ)
		return false
	}
	return true
}

func (it *fieldIter) varint() uint64 {
	v, _ := protowire.ConsumeVarint(it.val) // checked by next
	return v
}

func (it *fieldIter) fixed64() uint64 {
	v, _ := protowire.ConsumeFixed64(it.val)
	return v
}

func (it *fieldIter) fixed32() uint32 {
	v, _ := protowire.ConsumeFixed32(it.val)
	return v
}

// ReadSpan reads the fields of an encoded Span (Span.Raw).
func ReadSpan(raw []byte) (SpanFields, error) { return ReadSpanAttributes(raw, nil) }

// ReadSpanAttributes is ReadSpan that also calls fn, when not nil, with the
// key and the encoded value (read with ReadAnyValue) of each attribute, in
// order, until fn returns false: one pass over the span for readers of a
// few fields.
func ReadSpanAttributes(raw []byte, fn func(key, value []byte) bool) (SpanFields, error) {
	var f SpanFields
	it := fieldIter{b: raw}
	for it.next() {
		switch it.num {
		case 1:
			if it.want(protowire.BytesType, "trace_id") {
				f.TraceID = it.val
			}
		case 2:
			if it.want(protowire.BytesType, "span_id") {
				f.SpanID = it.val
			}
		case 3:
			if it.want(protowire.BytesType, "trace_state") {
				f.TraceState = it.val
			}
		case 4:
			if it.want(protowire.BytesType, "parent_span_id") {
				f.ParentSpanID = it.val
			}
		case 5:
			if it.want(protowire.BytesType, "name") {
				f.Name = it.val
			}
		case 6:
			if it.want(protowire.VarintType, "kind") {
				f.Kind = int32(it.varint())
			}
		case 7:
			if it.want(protowire.Fixed64Type, "start_time_unix_nano") {
				f.StartTimeUnixNano = it.fixed64()
			}
		case 8:
			if it.want(protowire.Fixed64Type, "end_time_unix_nano") {
				f.EndTimeUnixNano = it.fixed64()
			}
		case 9:
			if it.want(protowire.BytesType, "attributes") {
				f.Attributes++
				if fn != nil {
					key, val, err := splitKeyValue(it.val)
					if err != nil {
						it.err = err
					} else if !fn(key, val) {
						fn = nil
					}
				}
			}
		case 10:
			if it.want(protowire.VarintType, "dropped_attributes_count") {
				f.DroppedAttributesCount = uint32(it.varint())
			}
		case 11:
			if it.want(protowire.BytesType, "events") {
				f.Events++
			}
		case 12:
			if it.want(protowire.VarintType, "dropped_events_count") {
				f.DroppedEventsCount = uint32(it.varint())
			}
		case 13:
			if it.want(protowire.BytesType, "links") {
				f.Links++
			}
		case 14:
			if it.want(protowire.VarintType, "dropped_links_count") {
				f.DroppedLinksCount = uint32(it.varint())
			}
		case 15:
			if it.want(protowire.BytesType, "status") {
				// Occurrences of a message field merge.
				st := fieldIter{b: it.val}
				for st.next() {
					switch st.num {
					case 2:
						if st.want(protowire.BytesType, "status.message") {
							f.StatusMessage = st.val
						}
					case 3:
						if st.want(protowire.VarintType, "status.code") {
							f.StatusCode = int32(st.varint())
						}
					}
				}
				it.err = st.err
			}
		case 16:
			if it.want(protowire.Fixed32Type, "flags") {
				f.Flags = it.fixed32()
			}
		}
	}
	if it.err != nil {
		return SpanFields{}, fmt.Errorf("span: %w", it.err)
	}
	return f, nil
}

// ReadEvent reads the fields of an encoded Span.Event (see EachEvent).
func ReadEvent(raw []byte) (EventFields, error) {
	var f EventFields
	it := fieldIter{b: raw}
	for it.next() {
		switch it.num {
		case 1:
			if it.want(protowire.Fixed64Type, "time_unix_nano") {
				f.TimeUnixNano = it.fixed64()
			}
		case 2:
			if it.want(protowire.BytesType, "name") {
				f.Name = it.val
			}
		case 3:
			if it.want(protowire.BytesType, "attributes") {
				f.Attributes++
			}
		case 4:
			if it.want(protowire.VarintType, "dropped_attributes_count") {
				f.DroppedAttributesCount = uint32(it.varint())
			}
		}
	}
	if it.err != nil {
		return EventFields{}, fmt.Errorf("event: %w", it.err)
	}
	return f, nil
}

// ReadLink reads the fields of an encoded Span.Link (see EachLink).
func ReadLink(raw []byte) (LinkFields, error) {
	var f LinkFields
	it := fieldIter{b: raw}
	for it.next() {
		switch it.num {
		case 1:
			if it.want(protowire.BytesType, "trace_id") {
				f.TraceID = it.val
			}
		case 2:
			if it.want(protowire.BytesType, "span_id") {
				f.SpanID = it.val
			}
		case 3:
			if it.want(protowire.BytesType, "trace_state") {
				f.TraceState = it.val
			}
		case 4:
			if it.want(protowire.BytesType, "attributes") {
				f.Attributes++
			}
		case 5:
			if it.want(protowire.VarintType, "dropped_attributes_count") {
				f.DroppedAttributesCount = uint32(it.varint())
			}
		case 6:
			if it.want(protowire.Fixed32Type, "flags") {
				f.Flags = it.fixed32()
			}
		}
	}
	if it.err != nil {
		return LinkFields{}, fmt.Errorf("link: %w", it.err)
	}
	return f, nil
}

// ReadResourceHeader reads the fields of a Resource.Header.
func ReadResourceHeader(h []byte) (ResourceFields, error) {
	var f ResourceFields
	it := fieldIter{b: h}
	for it.next() {
		switch it.num {
		case 1:
			if !it.want(protowire.BytesType, "resource") {
				break
			}
			r := fieldIter{b: it.val}
			for r.next() {
				switch r.num {
				case 1:
					if r.want(protowire.BytesType, "resource.attributes") {
						f.Attributes++
					}
				case 2:
					if r.want(protowire.VarintType, "resource.dropped_attributes_count") {
						f.DroppedAttributesCount = uint32(r.varint())
					}
				}
			}
			it.err = r.err
		case 3:
			if it.want(protowire.BytesType, "schema_url") {
				f.SchemaURL = it.val
			}
		}
	}
	if it.err != nil {
		return ResourceFields{}, fmt.Errorf("resource spans: %w", it.err)
	}
	return f, nil
}

// ReadScopeHeader reads the fields of a Scope.Header.
func ReadScopeHeader(h []byte) (ScopeFields, error) {
	var f ScopeFields
	it := fieldIter{b: h}
	for it.next() {
		switch it.num {
		case 1:
			if !it.want(protowire.BytesType, "scope") {
				break
			}
			s := fieldIter{b: it.val}
			for s.next() {
				switch s.num {
				case 1:
					if s.want(protowire.BytesType, "scope.name") {
						f.Name = s.val
					}
				case 2:
					if s.want(protowire.BytesType, "scope.version") {
						f.Version = s.val
					}
				case 3:
					if s.want(protowire.BytesType, "scope.attributes") {
						f.Attributes++
					}
				case 4:
					if s.want(protowire.VarintType, "scope.dropped_attributes_count") {
						f.DroppedAttributesCount = uint32(s.varint())
					}
				}
			}
			it.err = s.err
		case 3:
			if it.want(protowire.BytesType, "schema_url") {
				f.SchemaURL = it.val
			}
		}
	}
	if it.err != nil {
		return ScopeFields{}, fmt.Errorf("scope spans: %w", it.err)
	}
	return f, nil
}

// EachEvent calls fn with each encoded event of an encoded span, in order,
// until fn returns false.
func EachEvent(span []byte, fn func(event []byte) bool) error {
	return eachRepeated(span, 11, "events", fn)
}

// EachLink calls fn with each encoded link of an encoded span, in order,
// until fn returns false.
func EachLink(span []byte, fn func(link []byte) bool) error {
	return eachRepeated(span, 13, "links", fn)
}

func eachRepeated(msg []byte, num protowire.Number, name string, fn func([]byte) bool) error {
	it := fieldIter{b: msg}
	for it.next() {
		if it.num != num {
			continue
		}
		if !it.want(protowire.BytesType, name) {
			break
		}
		if !fn(it.val) {
			return nil
		}
	}
	if it.err != nil {
		return fmt.Errorf("%s: %w", name, it.err)
	}
	return nil
}

// MessageKind names the message whose attributes EachAttribute reads.
type MessageKind uint8

const (
	MessageSpan           MessageKind = iota + 1 // an encoded Span (Span.Raw)
	MessageEvent                                 // an encoded Span.Event
	MessageLink                                  // an encoded Span.Link
	MessageResource                              // an encoded Resource
	MessageScope                                 // an encoded InstrumentationScope
	MessageResourceHeader                        // a Resource.Header: its resource's attributes
	MessageScopeHeader                           // a Scope.Header: its scope's attributes
)

// attributesField is the number of the attributes field of each kind; for
// the header kinds, the number of the field holding the nested message.
var attributesField = [...]protowire.Number{
	MessageSpan:           9,
	MessageEvent:          3,
	MessageLink:           4,
	MessageResource:       1,
	MessageScope:          3,
	MessageResourceHeader: 1,
	MessageScopeHeader:    1,
}

// EachAttribute calls fn with the key and value of each attribute of msg, a
// message of kind k, in order, until fn returns false. key and value point
// into msg.
func EachAttribute(msg []byte, k MessageKind, fn func(key []byte, value AnyValueView) bool) error {
	if k == 0 || int(k) >= len(attributesField) {
		return fmt.Errorf("unknown message kind %d", k)
	}
	_, err := eachAttribute(msg, k, fn)
	return err
}

func eachAttribute(msg []byte, k MessageKind, fn func([]byte, AnyValueView) bool) (stopped bool, err error) {
	var verr error
	stopped, err = eachAttributeRaw(msg, k, func(key, raw []byte) bool {
		v, err := ReadAnyValue(raw)
		if err != nil {
			verr = fmt.Errorf("attribute %q: %w", key, err)
			return false
		}
		return fn(key, v)
	})
	if verr != nil {
		return false, verr
	}
	return stopped, err
}

// readKeyValue reads an encoded KeyValue.
func readKeyValue(kv []byte) (key []byte, val AnyValueView, err error) {
	key, raw, err := splitKeyValue(kv)
	if err != nil {
		return nil, AnyValueView{}, err
	}
	if val, err = ReadAnyValue(raw); err != nil {
		return nil, AnyValueView{}, fmt.Errorf("attribute %q: %w", key, err)
	}
	return key, val, nil
}

// ValueType is the type of an AnyValue. Its values are the field numbers of
// the AnyValue oneof, so they are stable across OTLP versions (they differ
// from pcommon.ValueType).
type ValueType int32

const (
	ValueTypeEmpty  ValueType = 0
	ValueTypeStr    ValueType = 1
	ValueTypeBool   ValueType = 2
	ValueTypeInt    ValueType = 3
	ValueTypeDouble ValueType = 4
	ValueTypeArray  ValueType = 5
	ValueTypeKvlist ValueType = 6
	ValueTypeBytes  ValueType = 7
)

func (t ValueType) String() string {
	switch t {
	case ValueTypeEmpty:
		return "empty"
	case ValueTypeStr:
		return "string"
	case ValueTypeBool:
		return "bool"
	case ValueTypeInt:
		return "int"
	case ValueTypeDouble:
		return "double"
	case ValueTypeArray:
		return "array"
	case ValueTypeKvlist:
		return "kvlist"
	case ValueTypeBytes:
		return "bytes"
	}
	return "ValueType(" + strconv.Itoa(int(t)) + ")"
}

// AnyValueView is a read-only view of an encoded AnyValue. The zero value is
// the empty value.
type AnyValueView struct {
	typ  ValueType
	data []byte // string, bytes, array or kvlist content
	num  uint64 // bool, int or double bits
}

// ReadAnyValue reads an encoded AnyValue. When several of its oneof fields
// are present, the last one wins.
func ReadAnyValue(raw []byte) (AnyValueView, error) {
	var v AnyValueView
	it := fieldIter{b: raw}
	for it.next() {
		switch it.num {
		case 1, 5, 6, 7:
			if it.want(protowire.BytesType, "any_value") {
				v = AnyValueView{typ: ValueType(it.num), data: it.val}
			}
		case 2, 3:
			if it.want(protowire.VarintType, "any_value") {
				v = AnyValueView{typ: ValueType(it.num), num: it.varint()}
			}
		case 4:
			if it.want(protowire.Fixed64Type, "any_value") {
				v = AnyValueView{typ: ValueTypeDouble, num: it.fixed64()}
			}
		}
	}
	if it.err != nil {
		return AnyValueView{}, it.err
	}
	return v, nil
}

// Type is the type of the value.
func (v AnyValueView) Type() ValueType { return v.typ }

// Str is a string value, nil for other types.
func (v AnyValueView) Str() []byte {
	if v.typ != ValueTypeStr {
		return nil
	}
	return v.data
}

// Bool is a bool value, false for other types.
func (v AnyValueView) Bool() bool { return v.typ == ValueTypeBool && v.num != 0 }

// Int is an int value, 0 for other types.
func (v AnyValueView) Int() int64 {
	if v.typ != ValueTypeInt {
		return 0
	}
	return int64(v.num)
}

// Double is a double value, 0 for other types.
func (v AnyValueView) Double() float64 {
	if v.typ != ValueTypeDouble {
		return 0
	}
	return math.Float64frombits(v.num)
}

// Bytes is a bytes value, nil for other types.
func (v AnyValueView) Bytes() []byte {
	if v.typ != ValueTypeBytes {
		return nil
	}
	return v.data
}

// EachValue calls fn with each element of an array value until fn returns
// false. It does nothing for other types.
func (v AnyValueView) EachValue(fn func(AnyValueView) bool) error {
	if v.typ != ValueTypeArray {
		return nil
	}
	it := fieldIter{b: v.data}
	for it.next() {
		if it.num != 1 || !it.want(protowire.BytesType, "array_value.values") {
			continue
		}
		e, err := ReadAnyValue(it.val)
		if err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	return it.err
}

// EachKeyValue calls fn with each entry of a kvlist value until fn returns
// false. It does nothing for other types.
func (v AnyValueView) EachKeyValue(fn func(key []byte, value AnyValueView) bool) error {
	if v.typ != ValueTypeKvlist {
		return nil
	}
	it := fieldIter{b: v.data}
	for it.next() {
		if it.num != 1 || !it.want(protowire.BytesType, "kvlist_value.values") {
			continue
		}
		key, val, err := readKeyValue(it.val)
		if err != nil {
			return err
		}
		if !fn(key, val) {
			return nil
		}
	}
	return it.err
}

// AsRaw returns the value as the Go types pcommon.Value.AsRaw uses: nil,
// string, bool, int64, float64, []byte, []any or map[string]any.
func (v AnyValueView) AsRaw() (any, error) {
	switch v.typ {
	case ValueTypeStr:
		return string(v.data), nil
	case ValueTypeBool:
		return v.Bool(), nil
	case ValueTypeInt:
		return v.Int(), nil
	case ValueTypeDouble:
		return v.Double(), nil
	case ValueTypeBytes:
		return bytes.Clone(v.data), nil
	case ValueTypeArray:
		out := []any{}
		var ierr error
		err := v.EachValue(func(e AnyValueView) bool {
			var r any
			r, ierr = e.AsRaw()
			out = append(out, r)
			return ierr == nil
		})
		return out, firstErr(err, ierr)
	case ValueTypeKvlist:
		out := map[string]any{}
		var ierr error
		err := v.EachKeyValue(func(k []byte, e AnyValueView) bool {
			var r any
			r, ierr = e.AsRaw()
			out[string(k)] = r
			return ierr == nil
		})
		return out, firstErr(err, ierr)
	}
	return nil, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// AppendString appends the value as text, exactly as pcommon.Value.AsString
// renders it: strings as they are, bools as true/false, ints in decimal,
// doubles in the shortest form that reads back the same (ES6 style, NaN,
// Infinity, -Infinity), bytes in standard base64, arrays and kvlists as
// JSON (keys sorted, no HTML escaping), empty values as "".
func (v AnyValueView) AppendString(dst []byte) ([]byte, error) {
	switch v.typ {
	case ValueTypeStr:
		return append(dst, v.data...), nil
	case ValueTypeBool:
		return strconv.AppendBool(dst, v.Bool()), nil
	case ValueTypeInt:
		return strconv.AppendInt(dst, v.Int(), 10), nil
	case ValueTypeDouble:
		return appendFloat(dst, v.Double()), nil
	case ValueTypeBytes:
		return base64.StdEncoding.AppendEncode(dst, v.data), nil
	case ValueTypeArray, ValueTypeKvlist:
		raw, err := v.AsRaw()
		if err != nil {
			return dst, err
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(raw) // as pcommon: a NaN inside gives ""
		return append(dst, bytes.TrimRight(buf.Bytes(), "\n")...), nil
	}
	return dst, nil
}

// AppendDouble appends f as AppendString renders a double (pcommon's
// ES6 number to string).
func AppendDouble(dst []byte, f float64) []byte { return appendFloat(dst, f) }

// appendFloat formats f as pcommon does (ES6 number to string).
func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}
