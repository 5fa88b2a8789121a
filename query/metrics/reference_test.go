package metrics

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// The reference test: spans generated at random, the expected series
// computed straight from them, compared with what Compile → accumulators
// over disjoint windows → JSON → Combiner → Response gives.

// refRequest is 30 minutes, not aligned, by 1 minute.
func refRequest() Request {
	return Request{Start: testBase + 17*sec, End: testBase + 1800*sec + 3*sec, Step: 60 * sec}.Align()
}

// refInterval is the interval of ts, computed independently of
// Request.IntervalOf: right-closed intervals after the aligned start.
func refInterval(r Request, ts uint64) (int, bool) {
	if ts <= r.Start || ts > r.End {
		return 0, false
	}
	return int((ts-r.Start+r.Step-1)/r.Step) - 1, true
}

func refTimestampMs(r Request, i int) int64 {
	return int64((r.Start + uint64(i+1)*r.Step) / uint64(time.Millisecond))
}

func labelText(ls []*search.KeyValue) string {
	parts := make([]string, len(ls))
	for i, kv := range ls {
		parts[i] = kv.Key + "=" + anyValueText(kv.Value)
	}
	return strings.Join(parts, ",")
}

type refCase struct {
	name   string
	fn     traceql.MetricsFunc
	attr   string // measured field
	by     []string
	qs     []float64
	search string
	keep   func(genSpan) bool // the search part
}

// group is the label text of a span's group, "" to drop the span.
func (c refCase) group(s genSpan) string {
	var parts []string
	for _, b := range c.by {
		switch b {
		case "resource.service.name":
			parts = append(parts, b+"="+s.svc)
		case "name":
			parts = append(parts, b+"="+s.name)
		case "span.size":
			switch v := s.size.(type) {
			case int64:
				parts = append(parts, fmt.Sprintf("%s=%d", b, v))
			case string:
				parts = append(parts, b+"="+v)
			}
		}
	}
	if len(c.by) > 0 && len(parts) == 0 && c.fn != traceql.MetricsQuantileOverTime && c.fn != traceql.MetricsHistogramOverTime {
		parts = append(parts, c.by[0]+"=nil")
	}
	if len(c.by) == 0 && c.fn != traceql.MetricsQuantileOverTime && c.fn != traceql.MetricsHistogramOverTime {
		parts = append(parts, "__name__="+c.fn.String())
	}
	return strings.Join(parts, ",")
}

// value is what the function measures on s; ok false when not observed.
func (c refCase) value(s genSpan) (float64, bool) {
	switch c.attr {
	case "":
		return 0, true
	case "duration":
		return time.Duration(s.dur).Seconds(), true
	case "span.size":
		v, ok := s.size.(int64)
		return float64(v), ok
	}
	panic(c.attr)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// expected computes the series (label text → timestamp ms → value) and
// for quantiles the sorted values per cell.
func (c refCase) expected(r Request, traces []genTrace) map[string]map[int64]float64 {
	type cell struct {
		n        float64
		sum      float64
		min, max float64
		vals     []float64
	}
	n := r.Intervals()
	cells := map[string][]cell{}
	for _, gt := range traces {
		for _, s := range gt.spans {
			if c.keep != nil && !c.keep(s) {
				continue
			}
			i, ok := refInterval(r, s.start)
			if !ok {
				continue
			}
			f, ok := c.value(s)
			if !ok {
				continue
			}
			g := c.group(s)
			if c.fn == traceql.MetricsHistogramOverTime {
				if s.dur < 2 {
					continue
				}
				g = join(g, fmt.Sprintf("__bucket=%g", math.Pow(2, math.Ceil(math.Log2(float64(s.dur))))/1e9))
			}
			cs := cells[g]
			if cs == nil {
				cs = make([]cell, n)
				cells[g] = cs
			}
			ce := &cs[i]
			if ce.n == 0 || f < ce.min {
				ce.min = f
			}
			if ce.n == 0 || f > ce.max {
				ce.max = f
			}
			ce.n++
			ce.sum += f
			ce.vals = append(ce.vals, f)
		}
	}
	out := map[string]map[int64]float64{}
	for g, cs := range cells {
		switch c.fn {
		case traceql.MetricsQuantileOverTime:
			for _, p := range c.qs {
				m := map[int64]float64{}
				for i, ce := range cs {
					v := 0.0
					if ce.n > 0 {
						sort.Float64s(ce.vals)
						v = ce.vals[int(p*(ce.n-1))]
					}
					m[refTimestampMs(r, i)] = v
				}
				out[join(g, fmt.Sprintf("p=%g", p))] = m
			}
			continue
		}
		m := map[int64]float64{}
		for i, ce := range cs {
			ts := refTimestampMs(r, i)
			switch c.fn {
			case traceql.MetricsRate:
				m[ts] = ce.n / (float64(r.Step) / 1e9)
			case traceql.MetricsCountOverTime, traceql.MetricsHistogramOverTime:
				m[ts] = ce.n
			case traceql.MetricsSumOverTime:
				if ce.n > 0 {
					m[ts] = ce.sum
				}
			case traceql.MetricsAvgOverTime:
				if ce.n > 0 {
					m[ts] = ce.sum / ce.n
				}
			case traceql.MetricsMinOverTime:
				if ce.n > 0 {
					m[ts] = ce.min
				}
			case traceql.MetricsMaxOverTime:
				if ce.n > 0 {
					m[ts] = ce.max
				}
			}
		}
		out[g] = m
	}
	return out
}

// near reports whether got matches want for the function: exact for
// counts, minima, maxima and sums of integers; 1e-9 relative for sums and
// averages of durations (summation order differs across jobs); within the
// sketch's relative accuracy of the value at the quantile's rank (or the
// next one) for quantiles.
func (c refCase) near(got, want float64, sorted []float64) bool {
	switch {
	case c.fn == traceql.MetricsQuantileOverTime:
		return math.Abs(got-want) <= QuantileRelativeAccuracy*math.Abs(want)*1.0000001 || slices.ContainsFunc(sorted, func(v float64) bool {
			return math.Abs(got-v) <= QuantileRelativeAccuracy*math.Abs(v)
		})
	case (c.fn == traceql.MetricsSumOverTime || c.fn == traceql.MetricsAvgOverTime) && c.attr == "duration":
		return math.Abs(got-want) <= 1e-9*math.Abs(want)
	case c.fn == traceql.MetricsAvgOverTime:
		return math.Abs(got-want) <= 1e-12*math.Abs(want)
	}
	return got == want
}

func TestReference(t *testing.T) {
	r := refRequest()
	// Spans from before the range to after it.
	traces := genTraces(t, 1, 600, r.Start-120*sec, r.End+120*sec)
	notCache := func(s genSpan) bool { return s.svc != "cache" }
	cases := []refCase{
		{name: "rate", fn: traceql.MetricsRate},
		{name: "rate by service", fn: traceql.MetricsRate, by: []string{"resource.service.name"}},
		{name: "rate filtered", fn: traceql.MetricsRate, search: `{ resource.service.name != "cache" }`, keep: notCache},
		{name: "count by name and service", fn: traceql.MetricsCountOverTime, by: []string{"name", "resource.service.name"}},
		{name: "count by size", fn: traceql.MetricsCountOverTime, by: []string{"span.size"}},
		{name: "sum duration", fn: traceql.MetricsSumOverTime, attr: "duration"},
		{name: "sum size by service", fn: traceql.MetricsSumOverTime, attr: "span.size", by: []string{"resource.service.name"}},
		{name: "avg duration by service", fn: traceql.MetricsAvgOverTime, attr: "duration", by: []string{"resource.service.name"}},
		{name: "avg size", fn: traceql.MetricsAvgOverTime, attr: "span.size"},
		{name: "min duration by name", fn: traceql.MetricsMinOverTime, attr: "duration", by: []string{"name"}},
		{name: "min size", fn: traceql.MetricsMinOverTime, attr: "span.size"},
		{name: "max duration", fn: traceql.MetricsMaxOverTime, attr: "duration"},
		{name: "max size by service", fn: traceql.MetricsMaxOverTime, attr: "span.size", by: []string{"resource.service.name"}},
		{name: "quantile duration", fn: traceql.MetricsQuantileOverTime, attr: "duration", qs: []float64{0.5, 0.9, 0.99}},
		{name: "quantile duration by service", fn: traceql.MetricsQuantileOverTime, attr: "duration", qs: []float64{0.5, 0.95}, by: []string{"resource.service.name"}},
		{name: "quantile size by size", fn: traceql.MetricsQuantileOverTime, attr: "span.size", qs: []float64{0, 1}, by: []string{"span.size"}},
		{name: "histogram duration", fn: traceql.MetricsHistogramOverTime, attr: "duration"},
		{name: "histogram duration by service", fn: traceql.MetricsHistogramOverTime, attr: "duration", by: []string{"resource.service.name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &traceql.MetricsStage{Func: c.fn, Quantiles: c.qs}
			if c.attr != "" {
				st.Attr = attr(t, c.attr)
			}
			for _, b := range c.by {
				st.By = append(st.By, attr(t, b))
			}
			search := c.search
			if search == "" {
				search = "{ }"
			}
			q := mustCompile(t, r, metricsRoot(t, search, st))
			// Three jobs cut at unaligned times.
			comb := runJobs(t, q, traces, r.Start+437*sec+123, r.Start+1200*sec)
			resp := comb.Response()
			want := c.expected(r, traces)
			checkSeries(t, c, resp, want, traces, r)
		})
	}
}

func checkSeries(t *testing.T, c refCase, resp *Response, want map[string]map[int64]float64, traces []genTrace, r Request) {
	t.Helper()
	got := map[string]*Series{}
	for _, s := range resp.Series {
		k := labelText(s.Labels)
		if _, dup := got[k]; dup {
			t.Errorf("series %s twice", k)
		}
		got[k] = s
	}
	if len(want) == 0 {
		t.Fatal("the model expects no series: the test data is wrong")
	}
	for k := range want {
		if got[k] == nil {
			t.Errorf("missing series %s", k)
		}
	}
	for k, s := range got {
		w, ok := want[k]
		if !ok {
			t.Errorf("unexpected series %s", k)
			continue
		}
		if len(s.Samples) != len(w) {
			t.Errorf("%s: %d samples, want %d", k, len(s.Samples), len(w))
		}
		for _, smp := range s.Samples {
			wv, ok := w[smp.TimestampMs]
			if !ok {
				t.Errorf("%s: unexpected sample at %d", k, smp.TimestampMs)
				continue
			}
			if !c.near(smp.Value, wv, nil) {
				t.Errorf("%s at %d: %v, want %v", k, smp.TimestampMs, smp.Value, wv)
			}
		}
	}
	if resp.Status != StatusComplete {
		t.Errorf("status %s: %s", resp.Status, resp.Message)
	}
	if !slices.IsSortedFunc(resp.Series, func(a, b *Series) int { return compareLabels(a.Labels, b.Labels) }) {
		t.Error("series are not sorted by labels")
	}
}
