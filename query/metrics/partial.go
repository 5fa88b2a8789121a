package metrics

import (
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
)

// Partial is what a job returns: its series with their raw cells, before
// any function is applied. It travels as JSON between processes (querier
// to query-frontend) and round-trips exactly through encoding/json: cells
// are finite numbers, sketches bytes, and an exemplar without a value of
// its own has none.
type Partial struct {
	Series []*PartialSeries `json:"series,omitempty"`
	// Truncated is set when the job dropped series beyond MaxSeries.
	Truncated bool       `json:"truncated,omitempty"`
	Metrics   JobMetrics `json:"metrics"`
	// Skipped names the block the job could not read (set by the runner).
	Skipped *partial.Skip `json:"skipped,omitempty"`
}

// JobMetrics is what a job inspected.
type JobMetrics struct {
	InspectedBytes  uint64 `json:"inspectedBytes,omitempty"`
	InspectedSpans  uint64 `json:"inspectedSpans,omitempty"`
	InspectedTraces uint64 `json:"inspectedTraces,omitempty"`
}

// PartialSeries is one series of a job. The cell slices have one entry
// per interval of the request, or none: Count is the spans counted;
// Value their sum (sum_over_time, avg_over_time), minimum or maximum (0
// where Count is 0); Sketches the encoded DDSketch of quantile_over_time
// (empty where Count is 0). TooMany marks compare()'s error series of an
// attribute with more values than its top N.
type PartialSeries struct {
	Labels    []*search.KeyValue `json:"labels,omitempty"`
	Count     []float64          `json:"count,omitempty"`
	Value     []float64          `json:"value,omitempty"`
	Sketches  [][]byte           `json:"sketches,omitempty"`
	Exemplars []*PartialExemplar `json:"exemplars,omitempty"`
	TooMany   bool               `json:"tooMany,omitempty"`
}

// PartialExemplar is one exemplar of a job. Value is nil for functions
// that measure nothing (rate, counts): the answer gives it its sample's
// value.
type PartialExemplar struct {
	Labels      []*search.KeyValue `json:"labels,omitempty"`
	Value       *float64           `json:"value,omitempty"`
	TimestampMs int64              `json:"timestampMs"`
}

func (q *Query) toPartial(s *series) *PartialSeries {
	ps := &PartialSeries{Labels: s.labels, TooMany: s.tooMany}
	if s.tooMany {
		return ps
	}
	ps.Count = s.count
	ps.Value = s.val
	if s.sk != nil {
		ps.Sketches = make([][]byte, len(s.sk))
		for i, sk := range s.sk {
			if sk != nil {
				var b []byte
				sk.Encode(&b, true)
				ps.Sketches[i] = b
			}
		}
	}
	for _, e := range s.ex {
		pe := &PartialExemplar{Labels: e.labels, TimestampMs: e.tsMs}
		if !math.IsNaN(e.value) {
			v := e.value
			pe.Value = &v
		}
		ps.Exemplars = append(ps.Exemplars, pe)
	}
	return ps
}

// fromPartial checks a job's series against the query and decodes it.
func (q *Query) fromPartial(ps *PartialSeries) (*series, error) {
	s := &series{labels: ps.Labels, tooMany: ps.TooMany}
	if q.fn.String() == "compare" {
		s.meta, s.attr = compareMeta(ps.Labels)
	}
	if ps.TooMany {
		return s, nil
	}
	n := q.intervals
	if len(ps.Count) != n {
		return nil, fmt.Errorf("series has %d counts, the query %d intervals", len(ps.Count), n)
	}
	s.count = ps.Count
	switch q.kind() {
	case cellSum, cellMin, cellMax:
		if len(ps.Value) != n {
			return nil, fmt.Errorf("series has %d values, the query %d intervals", len(ps.Value), n)
		}
		s.val = ps.Value
	case cellSketch:
		if len(ps.Sketches) != n {
			return nil, fmt.Errorf("series has %d sketches, the query %d intervals", len(ps.Sketches), n)
		}
		s.sk = make([]*ddsketch.DDSketch, n)
		for i, b := range ps.Sketches {
			if len(b) == 0 {
				continue
			}
			sk, err := ddsketch.DecodeDDSketch(b, store.BufferedPaginatedStoreConstructor, q.mapping)
			if err != nil {
				return nil, fmt.Errorf("cannot decode a quantile sketch: %w", err)
			}
			s.sk[i] = sk
		}
	}
	for _, pe := range ps.Exemplars {
		e := exemplar{labels: pe.Labels, tsMs: pe.TimestampMs, value: math.NaN()}
		if pe.Value != nil {
			e.value = *pe.Value
		}
		s.ex = append(s.ex, e)
	}
	return s, nil
}

// compareMeta reads the meta type and attribute of a compare() series.
func compareMeta(labels []*search.KeyValue) (meta, attr string) {
	for _, kv := range labels {
		switch kv.Key {
		case labelMetaType, labelMetaError:
			if kv.Value != nil && kv.Value.StringValue != nil {
				meta = *kv.Value.StringValue
			}
		default:
			attr = kv.Key
		}
	}
	return meta, attr
}
