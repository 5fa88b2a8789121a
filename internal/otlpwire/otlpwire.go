// Package otlpwire reads, checks and regroups OTLP trace protobuf
// (TracesData, which is wire-identical to ExportTraceServiceRequest) at the
// wire level, without decoding it into Go structs.
//
// The write path only needs to know, for each span, its trace ID and span ID
// and to move whole spans between batches; working on the encoded bytes keeps
// that to one pass without allocations per attribute. Parse still checks the
// whole message, every nested attribute included, so malformed input is
// refused at the door instead of failing a query later.
package otlpwire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the OTLP trace messages (opentelemetry/proto/trace/v1).
const (
	fieldTracesResourceSpans = 1

	fieldRSResource   = 1
	fieldRSScopeSpans = 2

	fieldSSScope = 1
	fieldSSSpans = 2

	fieldSpanTraceID      = 1
	fieldSpanSpanID       = 2
	fieldSpanParentSpanID = 4
)

// Batch is a parsed view of one TracesData message. Its slices point into the
// parsed bytes, which must not change while the Batch is in use.
type Batch struct {
	Resources []Resource
	spans     []Span // backing store shared by all scopes
	scopes    []Scope
}

// Resource is one ResourceSpans: its fields other than scope_spans, still
// encoded, and its scopes.
type Resource struct {
	Header []byte // encoded fields of ResourceSpans except scope_spans
	Scopes []Scope
}

// Scope is one ScopeSpans: its fields other than spans, still encoded, and
// its spans.
type Scope struct {
	Header []byte // encoded fields of ScopeSpans except spans
	Spans  []Span
}

// Span is one encoded Span message with the IDs read from it.
type Span struct {
	Raw     []byte // the Span message, without its tag and length
	TraceID []byte // as sent; valid IDs are 16 bytes
	SpanID  []byte // as sent; valid IDs are 8 bytes
	// EmptyParent is set when the span carries a parent_span_id field of
	// length zero (the OpenTelemetry Collector's pdata writes one for every
	// root span), which DropEmptyParent removes.
	EmptyParent bool
}

// SpanCount is the number of spans in the batch.
func (b *Batch) SpanCount() int { return len(b.spans) }

// Parse reads data into b, reusing b's memory. It checks the whole message,
// every nested attribute included, and returns an error naming the first
// malformed element. Use it on data from outside.
func (b *Batch) Parse(data []byte) error { return b.parse(data, true) }

// Scan is Parse without the check of what lies inside each span, resource
// and scope: for data that passed Parse before (the distributor's output).
// It still refuses data whose framing is broken.
func (b *Batch) Scan(data []byte) error { return b.parse(data, false) }

func (b *Batch) parse(data []byte, deep bool) error {
	b.Resources = b.Resources[:0]
	b.scopes = b.scopes[:0]
	b.spans = b.spans[:0]
	if est := len(data) / 256; cap(b.spans) < est {
		// Spans are rarely under 256 encoded bytes: one allocation instead
		// of a dozen doublings for a large request.
		b.spans = make([]Span, 0, est)
	}
	// Scopes and spans are appended to shared backing slices; the per-element
	// sub-slices are fixed up once everything is read, since appends may move
	// the backing arrays.
	type scopeRef struct{ spanStart, spanEnd int }
	type resRef struct{ scopeStart, scopeEnd int }
	var resRefs []resRef
	var scopeRefs []scopeRef

	ri := 0
	err := forEachField(data, func(num protowire.Number, typ protowire.Type, val []byte) error {
		if num != fieldTracesResourceSpans {
			return nil // unknown fields of TracesData are ignored
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("resource_spans[%d]: wrong wire type %d", ri, typ)
		}
		res := Resource{}
		ref := resRef{scopeStart: len(b.scopes)}
		si := 0
		var header []byte
		err := forEachFieldRaw(val, func(num protowire.Number, typ protowire.Type, val, raw []byte) error {
			if num != fieldRSScopeSpans {
				if deep {
					if err := checkField(kindResourceSpans, num, typ, val, 0); err != nil {
						return err
					}
				}
				header = appendRaw(header, raw)
				return nil
			}
			if typ != protowire.BytesType {
				return fmt.Errorf("scope_spans[%d]: wrong wire type %d", si, typ)
			}
			sref := scopeRef{spanStart: len(b.spans)}
			var sheader []byte
			pi := 0
			err := forEachFieldRaw(val, func(num protowire.Number, typ protowire.Type, val, raw []byte) error {
				if num != fieldSSSpans {
					if deep {
						if err := checkField(kindScopeSpans, num, typ, val, 0); err != nil {
							return err
						}
					}
					sheader = appendRaw(sheader, raw)
					return nil
				}
				if typ != protowire.BytesType {
					return fmt.Errorf("spans[%d]: wrong wire type %d", pi, typ)
				}
				sp := Span{Raw: val}
				err := forEachField(val, func(num protowire.Number, typ protowire.Type, fv []byte) error {
					switch num {
					case fieldSpanTraceID:
						sp.TraceID = fv
					case fieldSpanSpanID:
						sp.SpanID = fv
					case fieldSpanParentSpanID:
						if typ == protowire.BytesType && len(fv) == 0 {
							sp.EmptyParent = true
						}
					}
					if deep {
						return checkField(kindSpan, num, typ, fv, 0)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("spans[%d]: %w", pi, err)
				}
				b.spans = append(b.spans, sp)
				pi++
				return nil
			})
			if err != nil {
				return fmt.Errorf("scope_spans[%d].%w", si, err)
			}
			sref.spanEnd = len(b.spans)
			scopeRefs = append(scopeRefs, sref)
			b.scopes = append(b.scopes, Scope{Header: sheader})
			si++
			return nil
		})
		if err != nil {
			return fmt.Errorf("resource_spans[%d].%w", ri, err)
		}
		res.Header = header
		ref.scopeEnd = len(b.scopes)
		resRefs = append(resRefs, ref)
		b.Resources = append(b.Resources, res)
		ri++
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot parse OTLP traces: %w", err)
	}
	for i := range b.scopes {
		b.scopes[i].Spans = b.spans[scopeRefs[i].spanStart:scopeRefs[i].spanEnd]
	}
	for i := range b.Resources {
		b.Resources[i].Scopes = b.scopes[resRefs[i].scopeStart:resRefs[i].scopeEnd]
	}
	return nil
}

// appendRaw appends one already-encoded field (tag, length, value). The
// first field is kept as a capacity-limited sub-slice of the input, so a
// second one makes append copy instead of overwriting the input.
func appendRaw(dst, raw []byte) []byte {
	if dst == nil {
		return raw[:len(raw):len(raw)]
	}
	return append(dst, raw...)
}

var errTruncated = errors.New("truncated or malformed protobuf")

// forEachField calls fn for each field of a message with its value bytes
// (for length-delimited fields the content, for others the encoded value).
func forEachField(b []byte, fn func(num protowire.Number, typ protowire.Type, val []byte) error) error {
	return forEachFieldRaw(b, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
		return fn(num, typ, val)
	})
}

// forEachFieldRaw is forEachField that also passes the raw bytes of the
// whole field (tag included).
func forEachFieldRaw(b []byte, fn func(num protowire.Number, typ protowire.Type, val, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		if num <= 0 {
			return errTruncated
		}
		start := b
		b = b[n:]
		var val []byte
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
			val, b = v, b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
			val, b = b[:m], b[m:]
		}
		raw := start[:len(start)-len(b)]
		if err := fn(num, typ, val, raw); err != nil {
			return err
		}
	}
	return nil
}

// DropEmptyParent returns span without its parent_span_id fields of length
// zero, which proto3 reads as unset but which a decoder that keeps presence
// (gogo, as tempo-vulture uses) reads as an empty ID: a root span is then
// answered as it would have been sent without the field. It returns span
// itself when there is none, else a new encoding.
func DropEmptyParent(span []byte) []byte {
	var out []byte
	kept := 0 // span[:kept] is in out, or needs no copy while out is nil
	for rest := span; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			break
		}
		at := len(span) - len(rest)
		rest = rest[n+m:]
		if num != fieldSpanParentSpanID || typ != protowire.BytesType {
			continue
		}
		if v, _ := protowire.ConsumeBytes(span[at+n:]); len(v) != 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(span))
		}
		out = append(out, span[kept:at]...)
		kept = at + n + m
	}
	if out == nil {
		return span
	}
	return append(out, span[kept:]...)
}

// SpanName returns the name of an encoded span, for error messages. It
// returns "" when the span has no name or cannot be read.
func SpanName(span []byte) string {
	var name string
	_ = forEachField(span, func(num protowire.Number, typ protowire.Type, val []byte) error {
		if num == 5 && typ == protowire.BytesType {
			name = string(val)
		}
		return nil
	})
	return name
}
