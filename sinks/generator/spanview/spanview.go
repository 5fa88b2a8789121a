// Package spanview reads OTLP trace batches into the flat view the
// metrics-generator's processors work on: for each span its resource, IDs,
// name, kind, status, times, encoded size and attributes, without decoding
// the batch into Go structs. Attribute values stay encoded until a processor
// asks for one, and lookups by key scan the few attributes of one span, so a
// span costs no allocation once the Batch has grown to the batch size.
package spanview

import (
	"fmt"
	"strconv"

	"github.com/weftdb/weft/internal/otlpwire"
)

// Span kinds (OTLP's SpanKind enum).
const (
	KindUnspecified int32 = 0
	KindInternal    int32 = 1
	KindServer      int32 = 2
	KindClient      int32 = 3
	KindProducer    int32 = 4
	KindConsumer    int32 = 5
)

// Status codes (OTLP's Status.StatusCode enum).
const (
	StatusUnset int32 = 0
	StatusOK    int32 = 1
	StatusError int32 = 2
)

// Attr is one attribute: its key and its still-encoded AnyValue.
type Attr struct {
	Key   []byte
	Value []byte // encoded AnyValue, read with otlpwire.ReadAnyValue
}

// Resource is one ResourceSpans' resource.
type Resource struct {
	// ServiceName is the service.name attribute as a label value ("" when
	// absent).
	ServiceName string
	// HasServiceName tells whether the resource has a service.name.
	HasServiceName bool
	attrs          []Attr // index range into Batch.attrs, fixed up after parsing
	first, end     int
}

// Attrs are the resource's attributes in the order they were sent.
func (r *Resource) Attrs() []Attr { return r.attrs }

// Lookup returns the encoded value of the first attribute named key.
func (r *Resource) Lookup(key string) ([]byte, bool) { return lookup(r.attrs, key) }

// Span is one span of a Batch. Its byte slices point into the parsed data.
type Span struct {
	Resource      *Resource
	TraceID       []byte
	SpanID        []byte
	ParentSpanID  []byte
	TraceState    []byte
	Name          []byte
	Kind          int32
	StatusCode    int32
	StatusMessage []byte
	Start, End    uint64 // unix nanoseconds
	// Size is the length of the encoded Span message (proto.Size of the span).
	Size int

	res        int // index of the resource, fixed up after parsing
	attrs      []Attr
	first, end int
}

// Attrs are the span's attributes in the order they were sent.
func (s *Span) Attrs() []Attr { return s.attrs }

// Lookup returns the encoded value of the span's first attribute named key.
func (s *Span) Lookup(key string) ([]byte, bool) { return lookup(s.attrs, key) }

// DurationSeconds is the span's duration; 0 when it ends before it starts.
func (s *Span) DurationSeconds() float64 {
	if s.End <= s.Start {
		return 0
	}
	return float64(s.End-s.Start) / 1e9
}

// Multiplier is the span's weight by a sampling ratio: 1/r for the first
// double attribute key > 0, the span's then its resource's (Tempo's
// span_multiplier_key), else 1.
func (s *Span) Multiplier(key string) float64 {
	if raw, ok := s.Lookup(key); ok {
		if r := Double(raw); r > 0 {
			return 1 / r
		}
	}
	if raw, ok := s.Resource.Lookup(key); ok {
		if r := Double(raw); r > 0 {
			return 1 / r
		}
	}
	return 1
}

func lookup(attrs []Attr, key string) ([]byte, bool) {
	for i := range attrs {
		if string(attrs[i].Key) == key {
			return attrs[i].Value, true
		}
	}
	return nil, false
}

// Batch is a parsed TracesData message. Reuse one Batch for many messages:
// Parse keeps its memory.
type Batch struct {
	Resources []Resource
	Spans     []Span

	attrs []Attr
}

// Parse reads data, one encoded TracesData (or ExportTraceServiceRequest),
// into b, replacing what b held. b's slices point into data, which must not
// change while b is in use. Malformed protobuf gives an error naming the
// element, never a panic; attribute values are checked when they are read.
func (b *Batch) Parse(data []byte) error {
	b.Resources = b.Resources[:0]
	b.Spans = b.Spans[:0]
	b.attrs = b.attrs[:0]
	var perr error
	ri := 0
	err := otlpwire.EachResourceSpans(data, func(rs []byte) bool {
		res := Resource{first: len(b.attrs)}
		err := otlpwire.EachAttributeRaw(rs, otlpwire.MessageResourceHeader, func(key, value []byte) bool {
			b.attrs = append(b.attrs, Attr{Key: key, Value: value})
			return true
		})
		if err != nil {
			perr = fmt.Errorf("resource_spans[%d]: %w", ri, err)
			return false
		}
		res.end = len(b.attrs)
		for _, a := range b.attrs[res.first:res.end] {
			if string(a.Key) == "service.name" {
				if v, err := otlpwire.ReadAnyValue(a.Value); err == nil {
					res.ServiceName = string(AppendValue(nil, v))
					res.HasServiceName = true
				}
				break
			}
		}
		b.Resources = append(b.Resources, res)
		pi := 0
		err = otlpwire.EachSpan(rs, func(raw []byte) bool {
			sp := Span{res: ri, first: len(b.attrs), Size: len(raw)}
			emptyParent := false
			f, err := otlpwire.ReadSpanAttributes(raw, func(key, value []byte) bool {
				b.attrs = append(b.attrs, Attr{Key: key, Value: value})
				return true
			})
			if err != nil {
				perr = fmt.Errorf("resource_spans[%d].spans[%d]: %w", ri, pi, err)
				return false
			}
			if f.ParentSpanID != nil && len(f.ParentSpanID) == 0 {
				emptyParent = true
			}
			if emptyParent {
				// A zero-length parent_span_id (pdata writes one for every
				// root span) is no field once decoded: proto.Size, which
				// Tempo counts, leaves its two bytes out.
				sp.Size -= 2
			}
			sp.end = len(b.attrs)
			sp.TraceID, sp.SpanID, sp.ParentSpanID = f.TraceID, f.SpanID, f.ParentSpanID
			sp.TraceState, sp.Name, sp.Kind = f.TraceState, f.Name, f.Kind
			sp.StatusCode, sp.StatusMessage = f.StatusCode, f.StatusMessage
			sp.Start, sp.End = f.StartTimeUnixNano, f.EndTimeUnixNano
			b.Spans = append(b.Spans, sp)
			pi++
			return true
		})
		if err != nil && perr == nil {
			perr = fmt.Errorf("resource_spans[%d]: %w", ri, err)
		}
		ri++
		return perr == nil
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		b.Resources, b.Spans = b.Resources[:0], b.Spans[:0]
		return fmt.Errorf("cannot parse OTLP traces: %w", err)
	}
	// b.attrs may have moved while growing: slice it only now.
	for i := range b.Resources {
		r := &b.Resources[i]
		r.attrs = b.attrs[r.first:r.end:r.end]
	}
	for i := range b.Spans {
		s := &b.Spans[i]
		s.attrs = b.attrs[s.first:s.end:s.end]
		s.Resource = &b.Resources[s.res]
	}
	return nil
}

// Value reads an encoded attribute value (from Lookup or Attrs).
func Value(raw []byte) (otlpwire.AnyValueView, error) { return otlpwire.ReadAnyValue(raw) }

// AppendLabel appends the label form of an encoded attribute value (see
// AppendValue); a value that cannot be read appends nothing.
func AppendLabel(dst, raw []byte) []byte {
	v, err := otlpwire.ReadAnyValue(raw)
	if err != nil {
		return dst
	}
	return AppendValue(dst, v)
}

// AppendValue appends v formatted as Tempo formats attribute values for
// labels: strings as they are, bools as true/false, ints in decimal, doubles
// in the shortest decimal form without exponent, arrays as "[" and the
// elements run together and "]", kvlists as "{" and key:value pairs run
// together and "}", bytes and empty values as "".
func AppendValue(dst []byte, v otlpwire.AnyValueView) []byte {
	switch v.Type() {
	case otlpwire.ValueTypeStr:
		return append(dst, v.Str()...)
	case otlpwire.ValueTypeBool:
		return strconv.AppendBool(dst, v.Bool())
	case otlpwire.ValueTypeInt:
		return strconv.AppendInt(dst, v.Int(), 10)
	case otlpwire.ValueTypeDouble:
		return strconv.AppendFloat(dst, v.Double(), 'f', -1, 64)
	case otlpwire.ValueTypeArray:
		dst = append(dst, '[')
		_ = v.EachValue(func(e otlpwire.AnyValueView) bool {
			dst = AppendValue(dst, e)
			return true
		})
		return append(dst, ']')
	case otlpwire.ValueTypeKvlist:
		dst = append(dst, '{')
		_ = v.EachKeyValue(func(k []byte, e otlpwire.AnyValueView) bool {
			dst = append(dst, k...)
			dst = append(dst, ':')
			dst = AppendValue(dst, e)
			return true
		})
		return append(dst, '}')
	}
	return dst
}

// Double reads an encoded value as a double: its double value, or 0 when it
// is of another type (Tempo's span multiplier reads doubles only).
func Double(raw []byte) float64 {
	v, err := otlpwire.ReadAnyValue(raw)
	if err != nil {
		return 0
	}
	return v.Double()
}

// SpanKindName is the label value of a span kind, as Tempo writes it.
func SpanKindName(kind int32) string {
	switch kind {
	case KindUnspecified:
		return "SPAN_KIND_UNSPECIFIED"
	case KindInternal:
		return "SPAN_KIND_INTERNAL"
	case KindServer:
		return "SPAN_KIND_SERVER"
	case KindClient:
		return "SPAN_KIND_CLIENT"
	case KindProducer:
		return "SPAN_KIND_PRODUCER"
	case KindConsumer:
		return "SPAN_KIND_CONSUMER"
	}
	return strconv.Itoa(int(kind))
}

// StatusCodeName is the label value of a status code, as Tempo writes it.
func StatusCodeName(code int32) string {
	switch code {
	case StatusUnset:
		return "STATUS_CODE_UNSET"
	case StatusOK:
		return "STATUS_CODE_OK"
	case StatusError:
		return "STATUS_CODE_ERROR"
	}
	return strconv.Itoa(int(code))
}

// Retain keeps the spans for which keep returns true, in order, and returns
// how many it dropped: for filters that apply before every processor (the
// ingestion time-range slack).
func (b *Batch) Retain(keep func(s *Span) bool) (dropped int) {
	n := 0
	for i := range b.Spans {
		if keep(&b.Spans[i]) {
			b.Spans[n] = b.Spans[i]
			n++
		}
	}
	dropped = len(b.Spans) - n
	b.Spans = b.Spans[:n]
	return dropped
}
