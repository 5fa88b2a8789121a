package search

import (
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/weftdb/weft/query/traceql"
)

// Response is Tempo's tempopb.SearchResponse as jsonpb writes it: empty
// fields are left out, 64-bit integers are strings. Traces is written as
// [] when empty (Tempo leaves it out; Grafana reads both).
type Response struct {
	Traces  []*Trace `json:"traces"`
	Metrics *Metrics `json:"metrics"`
}

// MarshalJSON writes Traces as [] when there is none.
func (r *Response) MarshalJSON() ([]byte, error) {
	type plain Response
	out := *r
	if out.Traces == nil {
		out.Traces = []*Trace{}
	}
	return json.Marshal((*plain)(&out))
}

// Trace is one matching trace (tempopb.TraceSearchMetadata).
type Trace struct {
	TraceID           string     `json:"traceID,omitempty"`
	RootServiceName   string     `json:"rootServiceName,omitempty"`
	RootTraceName     string     `json:"rootTraceName,omitempty"`
	StartTimeUnixNano uint64     `json:"startTimeUnixNano,omitempty,string"`
	DurationMs        uint32     `json:"durationMs,omitempty"`
	SpanSet           *SpanSet   `json:"spanSet,omitempty"` // deprecated: SpanSets[0]
	SpanSets          []*SpanSet `json:"spanSets,omitempty"`
	// ServiceStats are, per resource service.name, the trace's spans and
	// error spans.
	ServiceStats map[string]*ServiceStats `json:"serviceStats,omitempty"`
}

// ServiceStats counts the spans of one service in a trace
// (tempopb.ServiceStats).
type ServiceStats struct {
	SpanCount  uint32 `json:"spanCount,omitempty"`
	ErrorCount uint32 `json:"errorCount,omitempty"`
}

// SpanSet is one spanset of a trace; Matched counts its spans before
// truncation to spss.
type SpanSet struct {
	Spans      []*Span     `json:"spans,omitempty"`
	Matched    uint32      `json:"matched,omitempty"`
	Attributes []*KeyValue `json:"attributes,omitempty"`
}

// Span is one span of a spanset.
type Span struct {
	SpanID            string      `json:"spanID,omitempty"`
	Name              string      `json:"name,omitempty"`
	StartTimeUnixNano uint64      `json:"startTimeUnixNano,omitempty,string"`
	DurationNanos     uint64      `json:"durationNanos,omitempty,string"`
	Attributes        []*KeyValue `json:"attributes,omitempty"`
}

// KeyValue is an OTLP KeyValue in its JSON shape.
type KeyValue struct {
	Key   string    `json:"key,omitempty"`
	Value *AnyValue `json:"value,omitempty"`
}

// AnyValue is an OTLP AnyValue in its JSON shape: one field is set.
type AnyValue struct {
	StringValue *string     `json:"stringValue,omitempty"`
	BoolValue   *bool       `json:"boolValue,omitempty"`
	IntValue    *int64      `json:"intValue,omitempty,string"`
	DoubleValue *float64    `json:"doubleValue,omitempty"`
	ArrayValue  *ArrayValue `json:"arrayValue,omitempty"`
}

// ArrayValue is an OTLP ArrayValue.
type ArrayValue struct {
	Values []*AnyValue `json:"values,omitempty"`
}

// Metrics are the search's statistics (tempopb.SearchMetrics).
type Metrics struct {
	InspectedTraces uint32 `json:"inspectedTraces,omitempty"`
	InspectedBytes  uint64 `json:"inspectedBytes,omitempty,string"`
	InspectedSpans  uint64 `json:"inspectedSpans,omitempty,string"`
	TotalBlocks     uint32 `json:"totalBlocks,omitempty"`
	CompletedJobs   uint32 `json:"completedJobs,omitempty"`
	TotalJobs       uint32 `json:"totalJobs,omitempty"`
	TotalBlockBytes uint64 `json:"totalBlockBytes,omitempty,string"`
}

// RootSpanNotYetReceived is the rootServiceName of a trace whose root span
// is not known, as Tempo's frontend writes it.
const RootSpanNotYetReceived = "<root span not yet received>"

// traceIDString is lowercase hex without leading zeros, as Tempo writes it.
func traceIDString(id [16]byte) string {
	s := strings.TrimLeft(hex.EncodeToString(id[:]), "0")
	if s == "" {
		return "0"
	}
	return s
}

// AnyValueOf is v in the JSON shape of an OTLP AnyValue, nil for a
// missing value; durations, statuses and kinds are strings of their text
// (as in search results and metrics labels). Strings are copied.
func AnyValueOf(v traceql.Value) *AnyValue {
	if v.IsList() {
		arr := &ArrayValue{}
		for _, e := range v.List() {
			if av := AnyValueOf(e); av != nil {
				arr.Values = append(arr.Values, av)
			}
		}
		return &AnyValue{ArrayValue: arr}
	}
	switch v.Type {
	case traceql.TypeNil:
		return nil
	case traceql.TypeInt:
		i := v.Int
		return &AnyValue{IntValue: &i}
	case traceql.TypeFloat:
		f := v.Float
		return &AnyValue{DoubleValue: &f}
	case traceql.TypeBoolean:
		b := v.Bool
		return &AnyValue{BoolValue: &b}
	case traceql.TypeString:
		s := strings.Clone(v.Str) // not to keep the trace's data (traceResult)
		return &AnyValue{StringValue: &s}
	default: // durations, statuses, kinds: as their text
		s := v.String()
		return &AnyValue{StringValue: &s}
	}
}

// bareName drops the scope of an attribute key: Tempo names span
// attributes "service.name", not "resource.service.name".
func bareName(key string) string {
	for _, p := range []string{"resource.", "span.", "."} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			return strings.Trim(rest, `"`)
		}
	}
	if _, rest, ok := strings.Cut(key, ":"); ok { // span:status → status
		return rest
	}
	return key
}
