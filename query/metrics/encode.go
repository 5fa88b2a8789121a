package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/query/search"
)

// The answers in Tempo's shapes. JSON is written as jsonpb writes
// tempopb.QueryRangeResponse and QueryInstantResponse: fields with their
// default value are left out (an empty series list, a 0 sample value, the
// COMPLETE status), int64 as strings, NaN and infinities as "NaN",
// "Infinity" and "-Infinity". Protobuf follows pkg/tempopb/tempo.proto:
//
//	QueryRangeResponse   { repeated TimeSeries series = 1; SearchMetrics metrics = 2; PartialStatus status = 3; string message = 4; }
//	TimeSeries           { repeated KeyValue labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 4; }
//	Sample               { double value = 1; int64 timestamp_ms = 2; }
//	Exemplar             { repeated KeyValue labels = 1; double value = 2; int64 timestamp_ms = 3; }
//	QueryInstantResponse { repeated InstantSeries series = 1; SearchMetrics metrics = 2; PartialStatus status = 3; string message = 4; }
//	InstantSeries        { repeated KeyValue labels = 1; string promLabels = 2; double value = 3; }
//	enum PartialStatus   { COMPLETE = 0; PARTIAL = 1; }
//
// (TimeSeries' prom_labels = 3, a text form of the labels, is not
// written, as Tempo's frontend does not fill it either.)

// Status values of a response.
const (
	StatusComplete = "COMPLETE"
	StatusPartial  = "PARTIAL"
)

// Response is a range query's answer (tempopb.QueryRangeResponse).
type Response struct {
	Series  []*Series
	Metrics *search.Metrics
	// Status is StatusComplete or StatusPartial; Message says why partial.
	Status  string
	Message string
}

// Series is one time series of the answer.
type Series struct {
	Labels    []*search.KeyValue
	Samples   []Sample
	Exemplars []Exemplar
}

// Sample is a series' value at the end of an interval.
type Sample struct {
	TimestampMs int64
	Value       float64
}

// Exemplar is one span shown with a series: its labels name the trace and
// span (trace:id, span:id), Value is what was measured (for counts and
// rates, the sample's value), TimestampMs the span's start.
type Exemplar struct {
	Labels      []*search.KeyValue
	Value       float64
	TimestampMs int64
}

// InstantResponse is an instant query's answer
// (tempopb.QueryInstantResponse): one value per series.
type InstantResponse struct {
	Series  []*InstantSeries
	Metrics *search.Metrics
	Status  string
	Message string
}

// InstantSeries is one series of an instant answer.
type InstantSeries struct {
	Labels []*search.KeyValue
	Value  float64
}

// Instant translates a range answer to an instant one as Tempo's frontend
// does: each series' value is its first sample's (an instant query has
// one interval); a series without samples is left out.
func (r *Response) Instant() *InstantResponse {
	out := &InstantResponse{Metrics: r.Metrics, Status: r.Status, Message: r.Message}
	for _, s := range r.Series {
		if len(s.Samples) == 0 {
			continue
		}
		out.Series = append(out.Series, &InstantSeries{Labels: s.Labels, Value: s.Samples[0].Value})
	}
	return out
}

// appendJSONFloat writes f as jsonpb writes a double.
func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	j, _ := json.Marshal(f) // finite: cannot fail
	return append(b, j...)
}

// jsonObject writes the members of a JSON object, leaving out empty ones.
type jsonObject struct {
	b     *bytes.Buffer
	first bool
	err   error
}

func newJSONObject(b *bytes.Buffer) *jsonObject {
	b.WriteByte('{')
	return &jsonObject{b: b, first: true}
}

func (o *jsonObject) key(k string) {
	if !o.first {
		o.b.WriteByte(',')
	}
	o.first = false
	o.b.WriteByte('"')
	o.b.WriteString(k)
	o.b.WriteString(`":`)
}

func (o *jsonObject) value(k string, v any) {
	if o.err != nil {
		return
	}
	j, err := json.Marshal(v)
	if err != nil {
		o.err = err
		return
	}
	o.key(k)
	o.b.Write(j)
}

func (o *jsonObject) float(k string, f float64) {
	if f == 0 && !math.Signbit(f) {
		return
	}
	o.key(k)
	o.b.Write(appendJSONFloat(nil, f))
}

func (o *jsonObject) int64s(k string, i int64) {
	if i == 0 {
		return
	}
	o.key(k)
	o.b.WriteString(`"` + strconv.FormatInt(i, 10) + `"`)
}

func (o *jsonObject) str(k, s string) {
	if s == "" {
		return
	}
	o.value(k, s)
}

func (o *jsonObject) array(k string, n int, each func(i int)) {
	if n == 0 || o.err != nil {
		return
	}
	o.key(k)
	o.b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			o.b.WriteByte(',')
		}
		each(i)
	}
	o.b.WriteByte(']')
}

func (o *jsonObject) labels(k string, ls []*search.KeyValue) {
	if len(ls) > 0 {
		o.value(k, ls)
	}
}

func (o *jsonObject) end() error {
	o.b.WriteByte('}')
	return o.err
}

func (o *jsonObject) tail(m *search.Metrics, st, msg string) {
	if m != nil {
		o.value("metrics", m)
	}
	if st != "" && st != StatusComplete {
		o.str("status", st)
	}
	o.str("message", msg)
}

// MarshalJSON writes r as jsonpb writes tempopb.QueryRangeResponse.
func (r *Response) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	o := newJSONObject(&b)
	o.array("series", len(r.Series), func(i int) {
		s := r.Series[i]
		so := newJSONObject(&b)
		so.labels("labels", s.Labels)
		so.array("samples", len(s.Samples), func(j int) {
			smp := s.Samples[j]
			sm := newJSONObject(&b)
			sm.int64s("timestampMs", smp.TimestampMs)
			sm.float("value", smp.Value)
			_ = sm.end()
		})
		so.array("exemplars", len(s.Exemplars), func(j int) {
			e := s.Exemplars[j]
			eo := newJSONObject(&b)
			eo.labels("labels", e.Labels)
			eo.float("value", e.Value)
			eo.int64s("timestampMs", e.TimestampMs)
			if err := eo.end(); err != nil && so.err == nil {
				so.err = err
			}
		})
		if err := so.end(); err != nil && o.err == nil {
			o.err = err
		}
	})
	o.tail(r.Metrics, r.Status, r.Message)
	if err := o.end(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MarshalJSON writes r as jsonpb writes tempopb.QueryInstantResponse.
func (r *InstantResponse) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	o := newJSONObject(&b)
	o.array("series", len(r.Series), func(i int) {
		s := r.Series[i]
		so := newJSONObject(&b)
		so.labels("labels", s.Labels)
		so.float("value", s.Value)
		if err := so.end(); err != nil && o.err == nil {
			o.err = err
		}
	})
	o.tail(r.Metrics, r.Status, r.Message)
	if err := o.end(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func appendDouble(b []byte, num protowire.Number, f float64) []byte {
	if f == 0 && !math.Signbit(f) {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(f))
}

func appendInt64(b []byte, num protowire.Number, i int64) []byte {
	if i == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(i))
}

func appendLabels(b []byte, num protowire.Number, ls []*search.KeyValue) []byte {
	for _, kv := range ls {
		b = search.AppendProtoMessage(b, num, kv.AppendProto)
	}
	return b
}

func appendTail(b []byte, m *search.Metrics, st, msg string) []byte {
	if m != nil {
		b = search.AppendProtoMessage(b, 2, m.AppendProto)
	}
	if st == StatusPartial {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if msg != "" {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, msg)
	}
	return b
}

// MarshalProto encodes r as tempopb.QueryRangeResponse.
func (r *Response) MarshalProto() []byte {
	var b []byte
	for _, s := range r.Series {
		b = search.AppendProtoMessage(b, 1, func(b []byte) []byte {
			b = appendLabels(b, 1, s.Labels)
			for _, smp := range s.Samples {
				b = search.AppendProtoMessage(b, 2, func(b []byte) []byte {
					b = appendDouble(b, 1, smp.Value)
					return appendInt64(b, 2, smp.TimestampMs)
				})
			}
			for _, e := range s.Exemplars {
				b = search.AppendProtoMessage(b, 4, func(b []byte) []byte {
					b = appendLabels(b, 1, e.Labels)
					b = appendDouble(b, 2, e.Value)
					return appendInt64(b, 3, e.TimestampMs)
				})
			}
			return b
		})
	}
	return appendTail(b, r.Metrics, r.Status, r.Message)
}

// MarshalProto encodes r as tempopb.QueryInstantResponse.
func (r *InstantResponse) MarshalProto() []byte {
	var b []byte
	for _, s := range r.Series {
		b = search.AppendProtoMessage(b, 1, func(b []byte) []byte {
			b = appendLabels(b, 1, s.Labels)
			return appendDouble(b, 3, s.Value) // promLabels (2) is not written
		})
	}
	return appendTail(b, r.Metrics, r.Status, r.Message)
}
