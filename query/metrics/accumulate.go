package metrics

import (
	"encoding/hex"
	"fmt"
	"math"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// Accumulator counts the spans one job sees into series. It is not safe
// for concurrent use: a job that scans concurrently uses one accumulator
// per goroutine and merges their results with a Combiner.
type Accumulator struct {
	q        *Query
	from, to uint64

	// single is the series of an ungrouped query (no by(), no
	// histogram bucket); series the others, by group key.
	single *series
	series map[string]*series
	count  int // series held

	truncated bool
	metrics   JobMetrics

	// Exemplars: how many were taken, and per interval.
	exemplars int
	exPerIvl  []uint8
	exIvlCap  int
	keyBuf    []byte
	seen      []bool
	// lastKey is the group key of the last span counted, lastSer its
	// series: spans of one service come together.
	lastKey   []byte
	lastSer   *series
	attrNames map[attrKey]string // compare: label keys by attribute
	valBuf    []traceql.Value
	// rowBuf and pending are the span path's (spans.go): the values of a
	// row as the evaluator takes them, and the exemplars waiting for
	// their IDs.
	rowBuf  []traceql.Value
	pending []pendingExemplar
}

type attrKey struct {
	scope traceql.Scope
	name  string
	in    traceql.Intrinsic
}

// NewAccumulator returns an accumulator for the spans that start in
// (from, to] and in the request's range: a job's part of time. A from at
// or before the request's start stands for the request's own lower bound
// (the one instant interval includes its start).
func (q *Query) NewAccumulator(from, to uint64) *Accumulator {
	a := &Accumulator{q: q, from: from, to: to, series: map[string]*series{}}
	if q.req.Exemplars > 0 && q.intervals > 0 {
		a.exPerIvl = make([]uint8, q.intervals)
		a.exIvlCap = exemplarsPerInterval(q.req.Exemplars, q.intervals)
	}
	return a
}

// exemplarsPerInterval spreads n exemplars over the intervals: at most
// ceil(n/intervals), and at least 1, per interval (capped at 255).
func exemplarsPerInterval(n, intervals int) int {
	c := (n + intervals - 1) / intervals
	return max(1, min(c, 255))
}

func (a *Accumulator) inWindow(ts uint64) bool {
	if ts > a.to {
		return false
	}
	if ts <= a.from && a.from > a.q.req.Start {
		return false
	}
	return true
}

// Full reports whether a new series was dropped for the series limit
// (Request.MaxSeries): the answer is partial whatever else the job reads,
// so it may stop. Merely holding MaxSeries series is not full: a job
// stopping then could not tell a partial answer from a complete one.
func (a *Accumulator) Full() bool { return a.truncated }

// ObserveTrace evaluates the query's search part on t and counts each span
// of the resulting spansets once (a span in several spansets counts once)
// when it starts in the accumulator's window.
func (a *Accumulator) ObserveTrace(t *traceql.Trace) error {
	a.metrics.InspectedTraces++
	a.metrics.InspectedSpans += uint64(len(t.Spans))
	sets, err := a.q.root.Eval(t)
	if err != nil {
		return fmt.Errorf("cannot evaluate the query: %w", err)
	}
	if len(sets) == 0 {
		return nil
	}
	if cap(a.seen) < len(t.Spans) {
		a.seen = make([]bool, len(t.Spans))
	}
	a.seen = a.seen[:len(t.Spans)]
	clear(a.seen)
	wantExemplar := a.exPerIvl != nil && a.exemplars < a.q.req.Exemplars
	for _, ss := range sets {
		for _, s := range ss.Spans {
			idx := s.Index()
			if idx < 0 || idx >= len(a.seen) || a.seen[idx] {
				continue
			}
			a.seen[idx] = true
			st := s.Fields.StartTimeUnixNano
			if !a.inWindow(st) {
				continue
			}
			i := a.q.req.IntervalOf(st)
			if i < 0 {
				continue
			}
			var ser *series
			var f float64
			if a.q.fn == traceql.MetricsCompare {
				a.observeCompare(t, s, i)
				continue
			}
			if ser, f = a.observeSpan(t, s, i); ser == nil {
				continue
			}
			if wantExemplar && int(a.exPerIvl[i]) < a.exIvlCap {
				a.addExemplar(ser, t, s, i, f)
				wantExemplar = false // one per trace, as Tempo
			}
		}
	}
	return nil
}

// observeSpan counts span s in interval i and returns its series and the
// value observed; nil when the span is not counted (no value, or a new
// series beyond the limit).
func (a *Accumulator) observeSpan(t *traceql.Trace, s *traceql.Span, i int) (*series, float64) {
	var av traceql.Value
	if a.q.stage.Attr != nil {
		av = a.q.stage.Attr.ValueOn(t, s)
	}
	a.valBuf = a.valBuf[:0]
	for _, by := range a.q.stage.By {
		a.valBuf = append(a.valBuf, by.ValueOn(t, s))
	}
	return a.observeValues(i, av)
}

// observeValues counts a span in interval i, given the value of its
// measured attribute (av) and of its by() fields (a.valBuf), and returns
// its series and the value observed; nil when the span is not counted.
func (a *Accumulator) observeValues(i int, av traceql.Value) (*series, float64) {
	q := a.q
	st := q.stage
	f := math.NaN()
	var bucket float64
	if st.Attr != nil {
		v := av
		var ok bool
		if q.fn == traceql.MetricsHistogramOverTime {
			bucket, ok = histogramBucket(v)
		} else {
			f, ok = metricValue(v)
		}
		if !ok {
			return nil, 0
		}
	}
	hist := q.fn == traceql.MetricsHistogramOverTime
	var ser *series
	if len(st.By) == 0 && !hist {
		ser = a.single
		if ser == nil {
			if !a.admit() {
				return nil, 0
			}
			var labels []*search.KeyValue
			if q.fn != traceql.MetricsQuantileOverTime {
				labels = []*search.KeyValue{strLabel(labelName, q.fn.String())}
			}
			ser = q.newSeries(labels)
			a.single = ser
		}
	} else {
		a.keyBuf = a.keyBuf[:0]
		for _, v := range a.valBuf {
			a.keyBuf = appendValueKey(a.keyBuf, v)
		}
		if hist {
			a.keyBuf = appendValueKey(a.keyBuf, traceql.Value{Type: traceql.TypeFloat, Float: bucket})
		}
		if a.lastSer != nil && string(a.keyBuf) == string(a.lastKey) {
			ser = a.lastSer
		} else {
			ser = a.series[string(a.keyBuf)]
			if ser == nil {
				if !a.admit() {
					return nil, 0
				}
				ser = q.newSeries(a.groupLabels(bucket))
				a.series[string(a.keyBuf)] = ser
			}
			a.lastSer, a.lastKey = ser, append(a.lastKey[:0], a.keyBuf...)
		}
	}
	q.observe(ser, i, f)
	return ser, f
}

// admit counts a new series, or refuses it beyond MaxSeries.
func (a *Accumulator) admit() bool {
	if a.q.req.MaxSeries > 0 && a.count >= a.q.req.MaxSeries {
		a.truncated = true
		return false
	}
	a.count++
	return true
}

// groupLabels are the labels of a by() group (values in a.valBuf), as
// Tempo names them: nil values are dropped; when all are nil the first
// label is kept with the string "nil", except for the histogram (whose
// __bucket label follows) and quantiles (whose p label follows).
func (a *Accumulator) groupLabels(bucket float64) []*search.KeyValue {
	q := a.q
	labels := make([]*search.KeyValue, 0, len(a.valBuf)+1)
	for j, v := range a.valBuf {
		if v.IsNil() {
			continue
		}
		labels = append(labels, &search.KeyValue{Key: q.stage.By[j].String(), Value: labelValue(v)})
	}
	switch {
	case q.fn == traceql.MetricsHistogramOverTime:
		labels = append(labels, floatLabel(labelBucket, bucket))
	case len(labels) == 0 && q.fn != traceql.MetricsQuantileOverTime && len(q.stage.By) > 0:
		labels = append(labels, strLabel(q.stage.By[0].String(), "nil"))
	}
	return labels
}

func (a *Accumulator) addExemplar(ser *series, t *traceql.Trace, s *traceql.Span, i int, f float64) {
	if !a.q.measured() {
		f = math.NaN()
	}
	ser.ex = append(ser.ex, exemplar{
		labels: []*search.KeyValue{
			strLabel("trace:id", hex.EncodeToString(t.TraceID)),
			strLabel("span:id", hex.EncodeToString(s.Fields.SpanID)),
		},
		value: f,
		tsMs:  int64(s.Fields.StartTimeUnixNano / 1e6),
	})
	a.exPerIvl[i]++
	a.exemplars++
}

// observeCompare counts span s for compare(): each of its attributes
// (but durations) in the series of its value and in the attribute's total,
// under baseline or selection.
func (a *Accumulator) observeCompare(t *traceql.Trace, s *traceql.Span, i int) {
	st := a.q.stage
	selected := true
	if st.CompareStart > 0 && st.CompareEnd > 0 {
		ts := int64(s.Fields.StartTimeUnixNano)
		selected = ts >= st.CompareStart && ts < st.CompareEnd
	}
	if selected {
		ok, err := st.Selection.MatchesSpan(t, s)
		selected = err == nil && ok
	}
	meta, total := metaBaseline, metaBaselineTotal
	if selected {
		meta, total = metaSelection, metaSelectionTotal
	}
	if a.attrNames == nil {
		a.attrNames = map[attrKey]string{}
	}
	s.EachAttribute(t, func(at *traceql.Attribute, v traceql.Value) {
		if v.Type == traceql.TypeDuration {
			return
		}
		ak := attrKey{at.Scope, at.Name, at.Intrinsic}
		name, ok := a.attrNames[ak]
		if !ok {
			name = at.String()
			a.attrNames[ak] = name
		}
		// The value's series.
		a.keyBuf = append(a.keyBuf[:0], meta...)
		a.keyBuf = append(a.keyBuf, 0)
		a.keyBuf = append(a.keyBuf, name...)
		a.keyBuf = append(a.keyBuf, 0)
		a.keyBuf = appendValueKey(a.keyBuf, v)
		a.compareCount(a.keyBuf, i, func() *series {
			ser := a.q.newSeries([]*search.KeyValue{strLabel(labelMetaType, meta),
				{Key: name, Value: labelValue(v)}})
			ser.attr, ser.meta = name, meta
			return ser
		})
		// The attribute's total.
		a.keyBuf = append(a.keyBuf[:0], total...)
		a.keyBuf = append(a.keyBuf, 0)
		a.keyBuf = append(a.keyBuf, name...)
		a.compareCount(a.keyBuf, i, func() *series {
			ser := a.q.newSeries([]*search.KeyValue{strLabel(labelMetaType, total), {Key: name}})
			ser.attr, ser.meta = name, total
			return ser
		})
	})
}

func (a *Accumulator) compareCount(key []byte, i int, mk func() *series) {
	ser := a.series[string(key)]
	if ser == nil {
		if !a.admit() {
			return
		}
		ser = mk()
		a.series[string(key)] = ser
	}
	ser.count[i]++
}

// compareJobValues is the most values per attribute a compare() job
// returns (at least the query's top N): the combiner's top N is exact
// for attributes with no more values than that; Tempo's jobs keep only
// the top N, which loses the counts of values that are in the top N of
// the answer but not of every job.
const compareJobValues = 100

// Result is what the job returns: its series, whether the series limit
// dropped some, and what it inspected. For compare() only the top
// compareJobValues values of each attribute are kept, plus an error series
// for each attribute that had more.
func (a *Accumulator) Result() *Partial {
	p := &Partial{Truncated: a.truncated, Metrics: a.metrics}
	list := make([]*series, 0, len(a.series)+1)
	if a.single != nil {
		list = append(list, a.single)
	}
	for _, s := range a.series {
		list = append(list, s)
	}
	if a.q.fn == traceql.MetricsCompare {
		list = a.q.compareTop(list, max(a.q.topN, compareJobValues))
	}
	p.Series = make([]*PartialSeries, 0, len(list))
	for _, s := range list {
		p.Series = append(p.Series, a.q.toPartial(s))
	}
	return p
}

// labelValue is v as a label value: search.AnyValueOf, but a float that
// JSON cannot carry (NaN, infinities) as its text.
func labelValue(v traceql.Value) *search.AnyValue {
	if v.Type == traceql.TypeFloat && !v.IsList() && (math.IsNaN(v.Float) || math.IsInf(v.Float, 0)) {
		s := v.String()
		return &search.AnyValue{StringValue: &s}
	}
	return search.AnyValueOf(v)
}
