package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// Combiner merges the partial results of a query's jobs and builds the
// answer. It is not safe for concurrent use.
type Combiner struct {
	q      *Query
	series map[string]*series
	order  []*series // in order of arrival, for a stable compare top N
	// maxed are compare()'s attributes with more values than its top N.
	maxed     map[string]bool
	truncated bool
	metrics   search.Metrics
	exemplars int
	exPerIvl  []int
	exIvlCap  int
}

// NewCombiner returns an empty combiner for the query's jobs.
func (q *Query) NewCombiner() *Combiner {
	c := &Combiner{q: q, series: map[string]*series{}, maxed: map[string]bool{}}
	if q.req.Exemplars > 0 && q.intervals > 0 {
		c.exPerIvl = make([]int, q.intervals)
		c.exIvlCap = exemplarsPerInterval(q.req.Exemplars, q.intervals)
	}
	return c
}

// Add merges a job's result: counts, sums, minima and maxima exactly,
// sketches by merge. A series beyond Request.MaxSeries is dropped and
// the answer marked truncated. A result that does not fit the query (cell
// counts other than its intervals) is an error and is not merged.
func (c *Combiner) Add(p *Partial) error {
	if p == nil {
		return nil
	}
	decoded := make([]*series, 0, len(p.Series))
	for _, ps := range p.Series {
		s, err := c.q.fromPartial(ps)
		if err != nil {
			return fmt.Errorf("cannot merge a job's result: %w", err)
		}
		decoded = append(decoded, s)
	}
	if p.Truncated {
		c.truncated = true
	}
	c.metrics.InspectedBytes += p.Metrics.InspectedBytes
	c.metrics.InspectedSpans += p.Metrics.InspectedSpans
	c.metrics.InspectedTraces += uint32(min(p.Metrics.InspectedTraces, math.MaxUint32))
	c.metrics.CompletedJobs++
	for _, s := range decoded {
		if s.tooMany {
			c.maxed[s.attr] = true
			continue
		}
		key := labelsKey(s.labels)
		cur := c.series[key]
		if cur == nil {
			if max := c.q.req.MaxSeries; max > 0 && len(c.series) >= max {
				c.truncated = true
				continue
			}
			cur = c.q.newSeries(s.labels)
			cur.attr, cur.meta = s.attr, s.meta
			c.series[key] = cur
			c.order = append(c.order, cur)
		}
		if err := c.q.merge(cur, s); err != nil {
			return fmt.Errorf("cannot merge a job's result: %w", err)
		}
		c.addExemplars(cur, s.ex)
	}
	return nil
}

// addExemplars keeps up to Request.Exemplars exemplars in the answer,
// spread over the intervals.
func (c *Combiner) addExemplars(cur *series, ex []exemplar) {
	for _, e := range ex {
		if c.exPerIvl == nil || c.exemplars >= c.q.req.Exemplars {
			return
		}
		i := c.q.exemplarInterval(e.tsMs)
		if c.exPerIvl[i] >= c.exIvlCap {
			continue
		}
		c.exPerIvl[i]++
		c.exemplars++
		cur.ex = append(cur.ex, e)
	}
}

// exemplarInterval is the interval of an exemplar's millisecond
// timestamp (as Tempo's IntervalMs: a span just after an interval's end
// may round down onto it); 0 below the first.
func (q *Query) exemplarInterval(tsMs int64) int {
	return max(q.req.IntervalOf(uint64(tsMs)*1e6), 0)
}

// Truncated reports whether series were dropped for the series limit, by
// a job or by the combiner.
func (c *Combiner) Truncated() bool { return c.truncated }

// SeriesCount is the number of series the combiner holds (at most
// Request.MaxSeries when set).
func (c *Combiner) SeriesCount() int { return len(c.series) }

// compareTop keeps compare()'s top n values per attribute and meta type
// (by their total count, as Tempo) and adds an error series for each
// attribute that had more; totals pass.
func (q *Query) compareTop(list []*series, n int) []*series {
	type group struct{ meta, attr string }
	groups := map[group][]*series{}
	var out []*series
	for _, s := range list {
		if s.tooMany {
			continue
		}
		switch s.meta {
		case metaBaseline, metaSelection:
			g := group{s.meta, s.attr}
			groups[g] = append(groups[g], s)
		default:
			out = append(out, s)
		}
	}
	maxed := map[string]bool{}
	for _, s := range list {
		if s.tooMany {
			maxed[s.attr] = true
		}
	}
	for g, ss := range groups {
		if len(ss) > n {
			maxed[g.attr] = true
			slices.SortStableFunc(ss, func(a, b *series) int {
				return cmp.Or(-cmp.Compare(sum(a.count), sum(b.count)), compareLabels(a.labels, b.labels))
			})
			ss = ss[:n]
		}
		out = append(out, ss...)
	}
	for attr := range maxed {
		out = append(out, &series{
			labels:  []*search.KeyValue{strLabel(labelMetaError, errTooManyValues), {Key: attr}},
			attr:    attr,
			meta:    errTooManyValues,
			tooMany: true,
		})
	}
	return out
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

// Response builds the answer: the function applied to every series,
// compare()'s top values, then the sample filter and the second stages;
// series sorted by their labels. It may be called more than once.
func (c *Combiner) Response() *Response {
	q := c.q
	list := c.order
	if q.fn == traceql.MetricsCompare {
		list = slices.Clone(list)
		for attr := range c.maxed {
			list = append(list, &series{attr: attr, meta: errTooManyValues, tooMany: true})
		}
		// Values merged from several jobs may exceed the top N again.
		list = q.compareTop(list, q.topN)
	}
	var out []*Series
	for _, s := range list {
		out = append(out, q.finish(s)...)
	}
	if f := q.stage.Filter; f != nil {
		out = filterSamples(out, f)
	}
	for _, st := range q.root.MetricsSecond {
		if tk, ok := st.(*traceql.TopK); ok {
			out = topK(out, tk)
			if tk.Filter != nil {
				out = filterSamples(out, tk.Filter)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *Series) int { return compareLabels(a.Labels, b.Labels) })
	m := c.metrics
	r := &Response{Series: out, Metrics: &m, Status: StatusComplete}
	if c.truncated {
		r.Status = StatusPartial
		r.Message = fmt.Sprintf("Response exceeds maximum series limit: more than maxSeries %d series (query_frontend.metrics.max_response_series); the answer is partial", q.req.MaxSeries)
	}
	return r
}

// finish applies the function to a series' cells: the series of the
// answer (one per quantile for quantile_over_time). Samples are Tempo's:
// every interval for rate, counts, histograms and quantiles (0 where no
// span), only intervals with spans for sums, minima, maxima and averages;
// a series without samples is left out.
func (q *Query) finish(s *series) []*Series {
	if s.tooMany {
		return []*Series{{Labels: cloneLabels(s.labels)}}
	}
	req := q.req
	sample := func(i int, v float64) Sample {
		return Sample{TimestampMs: int64(req.TimestampOf(i) / 1e6), Value: v}
	}
	var out []*Series
	switch q.fn {
	case traceql.MetricsQuantileOverTime:
		for _, p := range q.stage.Quantiles {
			ser := &Series{Labels: append(cloneLabels(s.labels), floatLabel(labelQuantile, p))}
			for i, sk := range s.sk {
				v := 0.0
				if sk != nil {
					if x, err := sk.GetValueAtQuantile(p); err == nil {
						v = x
					}
				}
				ser.Samples = append(ser.Samples, sample(i, v))
			}
			out = append(out, ser)
		}
		attachQuantileExemplars(out, s.ex)
		return out
	}
	ser := &Series{Labels: cloneLabels(s.labels)}
	for i, n := range s.count {
		switch q.kind() {
		case cellCount:
			v := n
			if q.fn == traceql.MetricsRate {
				v = n / q.stepSecs
			}
			ser.Samples = append(ser.Samples, sample(i, v))
		case cellSum:
			if n == 0 {
				continue
			}
			v := s.val[i]
			if q.fn == traceql.MetricsAvgOverTime {
				v /= n
			}
			ser.Samples = append(ser.Samples, sample(i, v))
		case cellMin, cellMax:
			if n > 0 {
				ser.Samples = append(ser.Samples, sample(i, s.val[i]))
			}
		}
	}
	if len(ser.Samples) == 0 {
		return nil
	}
	ser.Exemplars = exemplarsOf(ser, s.ex, q)
	return []*Series{ser}
}

// exemplarsOf turns a series' exemplars into the answer's; one without a
// value gets the value of the series' sample in its interval (dropped
// when there is none).
func exemplarsOf(ser *Series, ex []exemplar, q *Query) []Exemplar {
	var out []Exemplar
	for _, e := range ex {
		v := e.value
		if math.IsNaN(v) {
			ts := int64(q.req.TimestampOf(q.exemplarInterval(e.tsMs)) / 1e6)
			found := false
			for _, s := range ser.Samples {
				if s.TimestampMs == ts {
					v, found = s.Value, true
					break
				}
			}
			if !found {
				continue
			}
		}
		out = append(out, Exemplar{Labels: e.labels, Value: v, TimestampMs: e.tsMs})
	}
	return out
}

// attachQuantileExemplars gives each exemplar to the quantile series
// whose sample in its interval is closest to the exemplar's value.
func attachQuantileExemplars(out []*Series, ex []exemplar) {
	for _, e := range ex {
		best, bestDiff := -1, math.Inf(1)
		for j, ser := range out {
			for _, s := range ser.Samples {
				if s.TimestampMs >= e.tsMs {
					if d := math.Abs(s.Value - e.value); d < bestDiff {
						best, bestDiff = j, d
					}
					break
				}
			}
		}
		if best >= 0 {
			out[best].Exemplars = append(out[best].Exemplars, Exemplar{Labels: e.labels, Value: e.value, TimestampMs: e.tsMs})
		}
	}
}

// filterSamples drops the samples for which `value Op f.Value` is false,
// and the series left without samples.
func filterSamples(in []*Series, f *traceql.MetricsFilter) []*Series {
	out := in[:0]
	for _, s := range in {
		kept := s.Samples[:0]
		for _, smp := range s.Samples {
			if holds(f.Op, smp.Value, f.Value) {
				kept = append(kept, smp)
			}
		}
		s.Samples = kept
		if len(kept) > 0 {
			out = append(out, s)
		}
	}
	return out
}

func holds(op traceql.Operator, a, b float64) bool {
	switch op {
	case traceql.OpEqual:
		return a == b
	case traceql.OpNotEqual:
		return a != b
	case traceql.OpLess:
		return a < b
	case traceql.OpLessEqual:
		return a <= b
	case traceql.OpGreater:
		return a > b
	case traceql.OpGreaterEqual:
		return a >= b
	}
	return false
}

// topK keeps the N series with the highest (bottomk: lowest) average of
// their samples; series without a finite average come last; ties keep the
// label order.
func topK(in []*Series, tk *traceql.TopK) []*Series {
	if tk.N <= 0 {
		return nil
	}
	if len(in) <= tk.N {
		return in
	}
	type scored struct {
		s   *Series
		avg float64
	}
	sc := make([]scored, len(in))
	for i, s := range in {
		t, n := 0.0, 0
		for _, smp := range s.Samples {
			if !math.IsNaN(smp.Value) {
				t += smp.Value
				n++
			}
		}
		avg := math.NaN()
		if n > 0 {
			avg = t / float64(n)
		}
		sc[i] = scored{s, avg}
	}
	slices.SortStableFunc(sc, func(a, b scored) int {
		an, bn := math.IsNaN(a.avg), math.IsNaN(b.avg)
		switch {
		case an && bn:
			return compareLabels(a.s.Labels, b.s.Labels)
		case an:
			return 1
		case bn:
			return -1
		}
		c := cmp.Compare(a.avg, b.avg)
		if !tk.Bottom {
			c = -c
		}
		return cmp.Or(c, compareLabels(a.s.Labels, b.s.Labels))
	})
	out := make([]*Series, tk.N)
	for i := range out {
		out[i] = sc[i].s
	}
	return out
}
