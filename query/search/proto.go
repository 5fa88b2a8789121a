package search

// Protobuf encodings of the responses, by hand with protowire, field for
// field as Grafana Tempo's pkg/tempopb/tempo.proto declares them:
//
//	SearchResponse        { repeated TraceSearchMetadata traces = 1; SearchMetrics metrics = 2; }
//	TraceSearchMetadata   { string traceID = 1; string rootServiceName = 2; string rootTraceName = 3;
//	                        uint64 startTimeUnixNano = 4; uint32 durationMs = 5; SpanSet spanSet = 6;
//	                        repeated SpanSet spanSets = 7; map<string, ServiceStats> serviceStats = 8; }
//	ServiceStats          { uint32 spanCount = 1; uint32 errorCount = 2; }
//	SpanSet               { repeated Span spans = 1; uint32 matched = 2; repeated KeyValue attributes = 3; }
//	Span                  { string spanID = 1; string name = 2; uint64 startTimeUnixNano = 3;
//	                        uint64 durationNanos = 4; repeated KeyValue attributes = 5; }
//	SearchMetrics         { uint32 inspectedTraces = 1; uint64 inspectedBytes = 2; uint32 totalBlocks = 3;
//	                        uint32 completedJobs = 4; uint32 totalJobs = 5; uint64 totalBlockBytes = 6;
//	                        uint64 inspectedSpans = 7; }
//	SearchTagsResponse        { repeated string tagNames = 1; MetadataMetrics metrics = 2; }
//	SearchTagsV2Response      { repeated SearchTagsV2Scope scopes = 1; MetadataMetrics metrics = 2; }
//	SearchTagsV2Scope         { string name = 1; repeated string tags = 2; }
//	SearchTagValuesResponse   { repeated string tagValues = 1; MetadataMetrics metrics = 2; }
//	SearchTagValuesV2Response { repeated TagValue tagValues = 1; MetadataMetrics metrics = 2; }
//	TagValue                  { string type = 1; string value = 2; }
//	MetadataMetrics           { uint64 inspectedBytes = 1; uint32 totalJobs = 2; uint32 completedJobs = 3;
//	                            uint32 totalBlocks = 4; uint64 totalBlockBytes = 5; }
//
// KeyValue and AnyValue are OTLP's common.proto (key = 1, value = 2;
// string_value = 1, bool_value = 2, int_value = 3, double_value = 4,
// array_value = 5 with repeated AnyValue values = 1). Fields Tempo has and
// weft does not fill (additionalMetrics...) are not written;
// UnmarshalResponse skips any field it does not know.

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendMessage appends a length-delimited field holding what body appends.
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	// Reserve one length byte, then move the body if the length needs more.
	at := len(b)
	b = append(b, 0)
	b = body(b)
	n := len(b) - at - 1
	size := protowire.SizeVarint(uint64(n))
	if size > 1 {
		b = append(b, make([]byte, size-1)...)
		copy(b[at+size:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}

// MarshalProto encodes r as tempopb.SearchResponse.
func (r *Response) MarshalProto() []byte {
	var b []byte
	for _, t := range r.Traces {
		b = appendMessage(b, 1, t.appendProto)
	}
	if r.Metrics != nil {
		b = appendMessage(b, 2, r.Metrics.appendProto)
	}
	return b
}

func (t *Trace) appendProto(b []byte) []byte {
	b = appendString(b, 1, t.TraceID)
	b = appendString(b, 2, t.RootServiceName)
	b = appendString(b, 3, t.RootTraceName)
	b = appendVarint(b, 4, t.StartTimeUnixNano)
	b = appendVarint(b, 5, uint64(t.DurationMs))
	if t.SpanSet != nil {
		b = appendMessage(b, 6, t.SpanSet.appendProto)
	}
	for _, ss := range t.SpanSets {
		b = appendMessage(b, 7, ss.appendProto)
	}
	// A map is a repeated entry message { key = 1; value = 2; }, here in
	// the order of the service names.
	for _, name := range slices.Sorted(maps.Keys(t.ServiceStats)) {
		st := t.ServiceStats[name]
		if st == nil {
			continue
		}
		b = appendMessage(b, 8, func(b []byte) []byte {
			b = appendString(b, 1, name)
			return appendMessage(b, 2, func(b []byte) []byte {
				b = appendVarint(b, 1, uint64(st.SpanCount))
				return appendVarint(b, 2, uint64(st.ErrorCount))
			})
		})
	}
	return b
}

func (ss *SpanSet) appendProto(b []byte) []byte {
	for _, sp := range ss.Spans {
		b = appendMessage(b, 1, sp.appendProto)
	}
	b = appendVarint(b, 2, uint64(ss.Matched))
	for _, kv := range ss.Attributes {
		b = appendMessage(b, 3, kv.appendProto)
	}
	return b
}

func (sp *Span) appendProto(b []byte) []byte {
	b = appendString(b, 1, sp.SpanID)
	b = appendString(b, 2, sp.Name)
	b = appendVarint(b, 3, sp.StartTimeUnixNano)
	b = appendVarint(b, 4, sp.DurationNanos)
	for _, kv := range sp.Attributes {
		b = appendMessage(b, 5, kv.appendProto)
	}
	return b
}

func (kv *KeyValue) appendProto(b []byte) []byte {
	b = appendString(b, 1, kv.Key)
	if kv.Value != nil {
		b = appendMessage(b, 2, kv.Value.appendProto)
	}
	return b
}

// appendProto writes the one set field of the oneof, even when it holds
// the zero value (a oneof field is present whatever its value).
func (v *AnyValue) appendProto(b []byte) []byte {
	switch {
	case v.StringValue != nil:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, *v.StringValue)
	case v.BoolValue != nil:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(*v.BoolValue))
	case v.IntValue != nil:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(*v.IntValue))
	case v.DoubleValue != nil:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(*v.DoubleValue))
	case v.ArrayValue != nil:
		b = appendMessage(b, 5, func(b []byte) []byte {
			for _, e := range v.ArrayValue.Values {
				b = appendMessage(b, 1, e.appendProto)
			}
			return b
		})
	}
	return b
}

func (m *Metrics) appendProto(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.InspectedTraces))
	b = appendVarint(b, 2, m.InspectedBytes)
	b = appendVarint(b, 3, uint64(m.TotalBlocks))
	b = appendVarint(b, 4, uint64(m.CompletedJobs))
	b = appendVarint(b, 5, uint64(m.TotalJobs))
	b = appendVarint(b, 6, m.TotalBlockBytes)
	b = appendVarint(b, 7, m.InspectedSpans)
	return b
}

func (m *MetadataMetrics) appendProto(b []byte) []byte {
	b = appendVarint(b, 1, m.InspectedBytes)
	b = appendVarint(b, 2, uint64(m.TotalJobs))
	b = appendVarint(b, 3, uint64(m.CompletedJobs))
	b = appendVarint(b, 4, uint64(m.TotalBlocks))
	b = appendVarint(b, 5, m.TotalBlockBytes)
	return b
}

func appendMetadataMetrics(b []byte, m *MetadataMetrics) []byte {
	if m == nil {
		return b
	}
	return appendMessage(b, 2, m.appendProto)
}

func appendRepeatedString(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		// Repeated strings are written even when empty.
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// MarshalProto encodes r as tempopb.SearchTagsResponse.
func (r *TagNamesResponse) MarshalProto() []byte {
	b := appendRepeatedString(nil, 1, r.TagNames)
	return appendMetadataMetrics(b, r.Metrics)
}

// MarshalProto encodes r as tempopb.SearchTagsV2Response.
func (r *TagNamesV2Response) MarshalProto() []byte {
	var b []byte
	for _, sc := range r.Scopes {
		b = appendMessage(b, 1, func(b []byte) []byte {
			b = appendString(b, 1, sc.Name)
			return appendRepeatedString(b, 2, sc.Tags)
		})
	}
	return appendMetadataMetrics(b, r.Metrics)
}

// MarshalProto encodes r as tempopb.SearchTagValuesResponse.
func (r *TagValuesResponse) MarshalProto() []byte {
	b := appendRepeatedString(nil, 1, r.TagValues)
	return appendMetadataMetrics(b, r.Metrics)
}

// MarshalProto encodes r as tempopb.SearchTagValuesV2Response.
func (r *TagValuesV2Response) MarshalProto() []byte {
	var b []byte
	for _, v := range r.TagValues {
		b = appendMessage(b, 1, func(b []byte) []byte {
			b = appendString(b, 1, v.Type)
			return appendString(b, 2, v.Value)
		})
	}
	return appendMetadataMetrics(b, r.Metrics)
}

// UnmarshalResponse decodes a tempopb.SearchResponse (as MarshalProto or
// Tempo writes it). Unknown fields are skipped; a field of the wrong wire
// type or a truncated message is an error. A response without metrics gets
// empty ones, as JSON answers always carry them.
func UnmarshalResponse(b []byte) (*Response, error) {
	r := &Response{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			t, err := unmarshalTrace(v)
			if err != nil {
				return fmt.Errorf("traces: %w", err)
			}
			r.Traces = append(r.Traces, t)
		case num == 2 && typ == protowire.BytesType:
			m, err := unmarshalMetrics(v)
			if err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
			r.Metrics = m
		case num <= 2:
			return wrongType(num, typ)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot decode SearchResponse: %w", err)
	}
	if r.Metrics == nil {
		r.Metrics = &Metrics{}
	}
	return r, nil
}

func wrongType(num protowire.Number, typ protowire.Type) error {
	return fmt.Errorf("field %d has wire type %d", num, typ)
}

// eachField calls fn with each field of a message: for bytes fields v is
// the content, for varint and fixed fields n is the value.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			n, l = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var n32 uint32
			n32, l = protowire.ConsumeFixed32(b)
			n = uint64(n32)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(l))
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// fieldKinds says which wire type each known field of a message has.
type fieldKinds map[protowire.Number]protowire.Type

func (k fieldKinds) check(num protowire.Number, typ protowire.Type) (known bool, err error) {
	want, ok := k[num]
	if !ok {
		return false, nil
	}
	if want != typ {
		return false, wrongType(num, typ)
	}
	return true, nil
}

var (
	traceFields      = fieldKinds{1: protowire.BytesType, 2: protowire.BytesType, 3: protowire.BytesType, 4: protowire.VarintType, 5: protowire.VarintType, 6: protowire.BytesType, 7: protowire.BytesType, 8: protowire.BytesType}
	statsEntryFields = fieldKinds{1: protowire.BytesType, 2: protowire.BytesType}
	statsFields      = fieldKinds{1: protowire.VarintType, 2: protowire.VarintType}
	spanSetFields    = fieldKinds{1: protowire.BytesType, 2: protowire.VarintType, 3: protowire.BytesType}
	spanFields       = fieldKinds{1: protowire.BytesType, 2: protowire.BytesType, 3: protowire.VarintType, 4: protowire.VarintType, 5: protowire.BytesType}
	kvFields         = fieldKinds{1: protowire.BytesType, 2: protowire.BytesType}
	anyFields        = fieldKinds{1: protowire.BytesType, 2: protowire.VarintType, 3: protowire.VarintType, 4: protowire.Fixed64Type, 5: protowire.BytesType}
	metricsFields    = fieldKinds{1: protowire.VarintType, 2: protowire.VarintType, 3: protowire.VarintType, 4: protowire.VarintType, 5: protowire.VarintType, 6: protowire.VarintType, 7: protowire.VarintType}
)

func unmarshalTrace(b []byte) (*Trace, error) {
	t := &Trace{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if ok, err := traceFields.check(num, typ); !ok {
			return err
		}
		switch num {
		case 1:
			t.TraceID = string(v)
		case 2:
			t.RootServiceName = string(v)
		case 3:
			t.RootTraceName = string(v)
		case 4:
			t.StartTimeUnixNano = n
		case 5:
			t.DurationMs = uint32(n)
		case 6, 7:
			ss, err := unmarshalSpanSet(v)
			if err != nil {
				return fmt.Errorf("spanSet: %w", err)
			}
			if num == 6 {
				t.SpanSet = ss
			} else {
				t.SpanSets = append(t.SpanSets, ss)
			}
		case 8:
			name, st, err := unmarshalStatsEntry(v)
			if err != nil {
				return fmt.Errorf("serviceStats: %w", err)
			}
			if t.ServiceStats == nil {
				t.ServiceStats = map[string]*ServiceStats{}
			}
			t.ServiceStats[name] = st
		}
		return nil
	})
	return t, err
}

// unmarshalStatsEntry decodes one entry of the serviceStats map.
func unmarshalStatsEntry(b []byte) (string, *ServiceStats, error) {
	var name string
	st := &ServiceStats{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if ok, err := statsEntryFields.check(num, typ); !ok {
			return err
		}
		if num == 1 {
			name = string(v)
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
			if ok, err := statsFields.check(num, typ); !ok {
				return err
			}
			if num == 1 {
				st.SpanCount = uint32(n)
			} else {
				st.ErrorCount = uint32(n)
			}
			return nil
		})
	})
	return name, st, err
}

func unmarshalSpanSet(b []byte) (*SpanSet, error) {
	ss := &SpanSet{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if ok, err := spanSetFields.check(num, typ); !ok {
			return err
		}
		switch num {
		case 1:
			sp, err := unmarshalSpan(v)
			if err != nil {
				return fmt.Errorf("spans: %w", err)
			}
			ss.Spans = append(ss.Spans, sp)
		case 2:
			ss.Matched = uint32(n)
		case 3:
			kv, err := unmarshalKeyValue(v)
			if err != nil {
				return fmt.Errorf("attributes: %w", err)
			}
			ss.Attributes = append(ss.Attributes, kv)
		}
		return nil
	})
	return ss, err
}

func unmarshalSpan(b []byte) (*Span, error) {
	sp := &Span{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if ok, err := spanFields.check(num, typ); !ok {
			return err
		}
		switch num {
		case 1:
			sp.SpanID = string(v)
		case 2:
			sp.Name = string(v)
		case 3:
			sp.StartTimeUnixNano = n
		case 4:
			sp.DurationNanos = n
		case 5:
			kv, err := unmarshalKeyValue(v)
			if err != nil {
				return fmt.Errorf("attributes: %w", err)
			}
			sp.Attributes = append(sp.Attributes, kv)
		}
		return nil
	})
	return sp, err
}

func unmarshalKeyValue(b []byte) (*KeyValue, error) {
	kv := &KeyValue{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if ok, err := kvFields.check(num, typ); !ok {
			return err
		}
		if num == 1 {
			kv.Key = string(v)
			return nil
		}
		av, err := unmarshalAnyValue(v)
		if err != nil {
			return fmt.Errorf("value: %w", err)
		}
		kv.Value = av
		return nil
	})
	return kv, err
}

// unmarshalAnyValue keeps the last oneof field set, as protobuf does;
// kvlist and bytes values (which search results never hold) are skipped.
func unmarshalAnyValue(b []byte) (*AnyValue, error) {
	av := &AnyValue{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if ok, err := anyFields.check(num, typ); !ok {
			return err
		}
		switch num {
		case 1:
			s := string(v)
			*av = AnyValue{StringValue: &s}
		case 2:
			x := n != 0
			*av = AnyValue{BoolValue: &x}
		case 3:
			x := int64(n)
			*av = AnyValue{IntValue: &x}
		case 4:
			x := math.Float64frombits(n)
			*av = AnyValue{DoubleValue: &x}
		case 5:
			arr := &ArrayValue{}
			err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 {
					return nil
				}
				if typ != protowire.BytesType {
					return wrongType(num, typ)
				}
				e, err := unmarshalAnyValue(v)
				if err != nil {
					return err
				}
				arr.Values = append(arr.Values, e)
				return nil
			})
			if err != nil {
				return fmt.Errorf("arrayValue: %w", err)
			}
			*av = AnyValue{ArrayValue: arr}
		}
		return nil
	})
	return av, err
}

func unmarshalMetrics(b []byte) (*Metrics, error) {
	m := &Metrics{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
		if ok, err := metricsFields.check(num, typ); !ok {
			return err
		}
		switch num {
		case 1:
			m.InspectedTraces = uint32(n)
		case 2:
			m.InspectedBytes = n
		case 3:
			m.TotalBlocks = uint32(n)
		case 4:
			m.CompletedJobs = uint32(n)
		case 5:
			m.TotalJobs = uint32(n)
		case 6:
			m.TotalBlockBytes = n
		case 7:
			m.InspectedSpans = n
		}
		return nil
	})
	return m, err
}

// AppendProtoMessage appends field num of a message, a length-delimited
// field holding what body appends (for the responses of other query
// packages, such as query/metrics, that embed KeyValue and Metrics).
func AppendProtoMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	return appendMessage(b, num, body)
}

// AppendProto appends kv's fields as an OTLP common.v1.KeyValue message.
func (kv *KeyValue) AppendProto(b []byte) []byte { return kv.appendProto(b) }

// AppendProto appends m's fields as a tempopb.SearchMetrics message.
func (m *Metrics) AppendProto(b []byte) []byte { return m.appendProto(b) }
