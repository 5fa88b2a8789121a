package metrics

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// series is one series of an accumulator or a combiner: its labels and
// one cell per interval, in flat slices allocated once per series (count
// always; val for sums, minima and maxima; sk, whose entries stay nil
// where no span was seen, for quantiles).
type series struct {
	labels []*search.KeyValue
	count  []float64
	val    []float64
	sk     []*ddsketch.DDSketch
	ex     []exemplar
	// compare: the attribute (label key) and meta type of the series;
	// tooMany marks the error series of an attribute with too many values.
	attr, meta string
	tooMany    bool
}

// exemplar is one span shown with a series. value is NaN when the
// function measures nothing (rate, counts): the answer then gives it the
// value of the series' sample at its time, as Tempo's frontend does.
type exemplar struct {
	labels []*search.KeyValue
	value  float64
	tsMs   int64
}

func (q *Query) newSeries(labels []*search.KeyValue) *series {
	s := &series{labels: labels, count: make([]float64, q.intervals)}
	switch q.kind() {
	case cellSum, cellMin, cellMax:
		s.val = make([]float64, q.intervals)
	case cellSketch:
		s.sk = make([]*ddsketch.DDSketch, q.intervals)
	}
	return s
}

func (q *Query) newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketchFromStoreProvider(q.mapping, store.BufferedPaginatedStoreConstructor)
}

// observe adds value f (ignored by counts) to interval i.
func (q *Query) observe(s *series, i int, f float64) {
	n := s.count[i]
	s.count[i] = n + 1
	switch q.kind() {
	case cellSum:
		s.val[i] += f
	case cellMin:
		if n == 0 || f < s.val[i] {
			s.val[i] = f
		}
	case cellMax:
		if n == 0 || f > s.val[i] {
			s.val[i] = f
		}
	case cellSketch:
		sk := s.sk[i]
		if sk == nil {
			sk = q.newSketch()
			s.sk[i] = sk
		}
		_ = sk.Add(f) // fails only for values the mapping cannot index (|f| > ~1e307)
	}
}

// merge adds the cells of o (same query) into s: exact for counts, sums,
// minima and maxima; sketches merge.
func (q *Query) merge(s, o *series) error {
	for i := range o.count {
		if i >= len(s.count) || o.count[i] == 0 {
			continue
		}
		n := s.count[i]
		s.count[i] = n + o.count[i]
		switch q.kind() {
		case cellSum:
			s.val[i] += o.val[i]
		case cellMin:
			if n == 0 || o.val[i] < s.val[i] {
				s.val[i] = o.val[i]
			}
		case cellMax:
			if n == 0 || o.val[i] > s.val[i] {
				s.val[i] = o.val[i]
			}
		case cellSketch:
			if o.sk[i] == nil {
				continue
			}
			if s.sk[i] == nil {
				s.sk[i] = q.newSketch()
			}
			if err := s.sk[i].MergeWith(o.sk[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendValueKey appends an unambiguous encoding of v (a group key part).
func appendValueKey(b []byte, v traceql.Value) []byte {
	if v.IsList() {
		s := v.String()
		b = append(b, 'l')
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	b = append(b, byte('a'+v.Type))
	switch v.Type {
	case traceql.TypeString:
		b = binary.AppendUvarint(b, uint64(len(v.Str)))
		b = append(b, v.Str...)
	case traceql.TypeInt:
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Int))
	case traceql.TypeFloat:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float))
	case traceql.TypeBoolean:
		if v.Bool {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case traceql.TypeDuration:
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Duration))
	case traceql.TypeStatus:
		b = append(b, byte(v.Status))
	case traceql.TypeKind:
		b = append(b, byte(v.Kind))
	}
	return b
}

// labelsKey is an unambiguous encoding of labels (series identity in a
// combiner).
func labelsKey(labels []*search.KeyValue) string {
	var b []byte
	for _, kv := range labels {
		b = binary.AppendUvarint(b, uint64(len(kv.Key)))
		b = append(b, kv.Key...)
		b = appendAnyValueKey(b, kv.Value)
	}
	return string(b)
}

func appendAnyValueKey(b []byte, v *search.AnyValue) []byte {
	switch {
	case v == nil:
		return append(b, 'n')
	case v.StringValue != nil:
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(len(*v.StringValue)))
		return append(b, *v.StringValue...)
	case v.IntValue != nil:
		b = append(b, 'i')
		return binary.LittleEndian.AppendUint64(b, uint64(*v.IntValue))
	case v.DoubleValue != nil:
		b = append(b, 'd')
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(*v.DoubleValue))
	case v.BoolValue != nil:
		if *v.BoolValue {
			return append(b, 'T')
		}
		return append(b, 'F')
	case v.ArrayValue != nil:
		b = append(b, 'a')
		b = binary.AppendUvarint(b, uint64(len(v.ArrayValue.Values)))
		for _, e := range v.ArrayValue.Values {
			b = appendAnyValueKey(b, e)
		}
		return b
	}
	return append(b, 'e')
}

// anyValueText is v as text, for sorting series.
func anyValueText(v *search.AnyValue) string {
	switch {
	case v == nil:
		return ""
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return strconv.FormatInt(*v.IntValue, 10)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.ArrayValue != nil:
		parts := make([]string, len(v.ArrayValue.Values))
		for i, e := range v.ArrayValue.Values {
			parts[i] = anyValueText(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}

// compareLabels orders label lists key by key, then value by value
// (numbers numerically), shorter lists first.
func compareLabels(a, b []*search.KeyValue) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Key, b[i].Key); c != 0 {
			return c
		}
		if c := compareValues(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func compareValues(a, b *search.AnyValue) int {
	if fa, ok := numberOf(a); ok {
		if fb, ok := numberOf(b); ok {
			switch {
			case fa < fb:
				return -1
			case fa > fb:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(anyValueText(a), anyValueText(b))
}

func numberOf(v *search.AnyValue) (float64, bool) {
	switch {
	case v == nil:
		return 0, false
	case v.IntValue != nil:
		return float64(*v.IntValue), true
	case v.DoubleValue != nil:
		return *v.DoubleValue, true
	}
	return 0, false
}

func strLabel(key, val string) *search.KeyValue {
	return &search.KeyValue{Key: key, Value: &search.AnyValue{StringValue: &val}}
}

func floatLabel(key string, f float64) *search.KeyValue {
	return &search.KeyValue{Key: key, Value: &search.AnyValue{DoubleValue: &f}}
}

func cloneLabels(ls []*search.KeyValue) []*search.KeyValue { return slices.Clone(ls) }
