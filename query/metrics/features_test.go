package metrics

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

func TestExemplars(t *testing.T) {
	r := refRequest()
	r.Exemplars = 7
	traces := genTraces(t, 3, 400, r.Start, r.End)
	spans := map[string]genSpan{}
	for _, gt := range traces {
		for _, s := range gt.spans {
			spans[s.traceID+"/"+s.spanID] = s
		}
	}
	for _, c := range []struct {
		name string
		st   *traceql.MetricsStage
		// value is the exemplar's value for span s on series ser, sample
		// value v at its time.
		value func(s genSpan, v float64) float64
	}{
		{"rate", &traceql.MetricsStage{Func: traceql.MetricsRate, By: []*traceql.Attribute{attr(t, "resource.service.name")}},
			func(_ genSpan, v float64) float64 { return v }},
		{"max duration", &traceql.MetricsStage{Func: traceql.MetricsMaxOverTime, Attr: attr(t, "duration")},
			func(s genSpan, _ float64) float64 { return time.Duration(s.dur).Seconds() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := mustCompile(t, r, metricsRoot(t, "{ }", c.st))
			resp := runJobs(t, q, traces, r.Start+600*sec, r.Start+1200*sec).Response()
			n := 0
			intervals := map[int64]int{}
			for _, ser := range resp.Series {
				for _, e := range ser.Exemplars {
					n++
					if len(e.Labels) < 2 || e.Labels[0].Key != "trace:id" || e.Labels[1].Key != "span:id" {
						t.Fatalf("exemplar labels %v", labelText(e.Labels))
					}
					s, ok := spans[*e.Labels[0].Value.StringValue+"/"+*e.Labels[1].Value.StringValue]
					if !ok {
						t.Fatalf("exemplar of an unknown span %s", labelText(e.Labels))
					}
					if e.TimestampMs != int64(s.start/1e6) {
						t.Errorf("exemplar at %d, span starts %d", e.TimestampMs, s.start/1e6)
					}
					if len(c.st.By) > 0 && labelText(ser.Labels) != "resource.service.name="+s.svc {
						t.Errorf("exemplar of a %s span on series %s", s.svc, labelText(ser.Labels))
					}
					i := r.IntervalOf(s.start)
					var v float64
					for _, smp := range ser.Samples {
						if smp.TimestampMs == int64(r.TimestampOf(i)/1e6) {
							v = smp.Value
						}
					}
					if want := c.value(s, v); e.Value != want {
						t.Errorf("exemplar value %v, want %v", e.Value, want)
					}
					intervals[int64(i)]++
				}
			}
			if n == 0 || n > r.Exemplars {
				t.Errorf("%d exemplars, want 1 to %d", n, r.Exemplars)
			}
			for ivl, k := range intervals {
				if k > 1 { // 7 exemplars over 31 intervals: at most one per interval
					t.Errorf("%d exemplars in interval %d", k, ivl)
				}
			}
		})
	}
	// None asked: none given.
	r.Exemplars = 0
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}))
	for _, s := range runJobs(t, q, traces).Response().Series {
		if len(s.Exemplars) > 0 {
			t.Fatal("exemplars without asking")
		}
	}
}

// manySpans is a trace of n spans with distinct span IDs (counter from
// first), starting within [from, from+spread).
func manySpans(t testing.TB, n int, first uint64, from, spread uint64) []byte {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty()
	ss.Resource().Attributes().PutStr("service.name", "svc")
	spans := ss.ScopeSpans().AppendEmpty().Spans()
	var tid pcommon.TraceID
	binary.BigEndian.PutUint64(tid[8:], first+1)
	for i := 0; i < n; i++ {
		sp := spans.AppendEmpty()
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(sid[:], first+uint64(i)+1)
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("op")
		st := from + (first+uint64(i))*1999993%spread
		sp.SetStartTimestamp(pcommon.Timestamp(st))
		sp.SetEndTimestamp(pcommon.Timestamp(st + 1000))
	}
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A million distinct by() values: the accumulators and the combiner hold
// at most MaxSeries series and say the answer is partial.
func TestMaxSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("a million spans")
	}
	r := refRequest()
	r.MaxSeries = 500
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: []*traceql.Attribute{attr(t, "span:id")}}))
	const perTrace, traces = 1000, 1000
	accs := []*Accumulator{q.NewAccumulator(r.Start, r.Start+900*sec), q.NewAccumulator(r.Start+900*sec, r.End)}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < traces; i++ {
		tr, err := traceql.NewTrace(manySpans(t, perTrace, uint64(i*perTrace), r.Start+1, r.End-r.Start-1))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range accs {
			if err := a.ObserveTrace(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := q.NewCombiner()
	for _, a := range accs {
		if !a.Full() {
			t.Error("accumulator not full")
		}
		if len(a.series) > r.MaxSeries || a.count > r.MaxSeries {
			t.Errorf("accumulator holds %d series, limit %d", len(a.series), r.MaxSeries)
		}
		p := roundTrip(t, a.Result())
		if !p.Truncated || len(p.Series) != r.MaxSeries {
			t.Errorf("partial: truncated %v, %d series", p.Truncated, len(p.Series))
		}
		if err := c.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if c.SeriesCount() > r.MaxSeries {
		t.Errorf("combiner holds %d series, limit %d", c.SeriesCount(), r.MaxSeries)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 1000 series of 31 counts are a few hundred KiB; a million would be
	// hundreds of MiB.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB", grown>>20)
	}
	resp := c.Response()
	if len(resp.Series) > r.MaxSeries || resp.Status != StatusPartial ||
		!strings.Contains(resp.Message, "maxSeries 500") || !strings.Contains(resp.Message, "query_frontend.metrics.max_response_series") {
		t.Errorf("response: %d series, %s %q", len(resp.Series), resp.Status, resp.Message)
	}
	if !c.Truncated() {
		t.Error("combiner not truncated")
	}
}

// The combiner applies the limit too, when each job stays under it.
func TestMaxSeriesCombiner(t *testing.T) {
	r := refRequest()
	r.MaxSeries = 3
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate, By: []*traceql.Attribute{attr(t, "resource.service.name")}}))
	c := q.NewCombiner()
	for i, svc := range []string{"a", "b", "c", "d", "a"} {
		ps := &PartialSeries{Labels: []*search.KeyValue{strLabel("resource.service.name", svc)}, Count: make([]float64, q.intervals)}
		ps.Count[i] = 60
		if err := c.Add(&Partial{Series: []*PartialSeries{ps}}); err != nil {
			t.Fatal(err)
		}
	}
	resp := c.Response()
	if c.SeriesCount() != 3 || len(resp.Series) != 3 || resp.Status != StatusPartial {
		t.Fatalf("%d series, %s", len(resp.Series), resp.Status)
	}
	// Series a got both its parts.
	if s := resp.Series[0]; labelText(s.Labels) != "resource.service.name=a" || s.Samples[0].Value != 1 || s.Samples[4].Value != 1 {
		t.Errorf("series a: %s %+v", labelText(s.Labels), s.Samples[:5])
	}
}

func mkSeries(name string, vals ...float64) *Series {
	s := &Series{Labels: []*search.KeyValue{strLabel("x", name)}}
	for i, v := range vals {
		s.Samples = append(s.Samples, Sample{TimestampMs: int64(i), Value: v})
	}
	return s
}

func names(ss []*Series) string {
	var out []string
	for _, s := range ss {
		out = append(out, *s.Labels[0].Value.StringValue)
	}
	return strings.Join(out, ",")
}

func TestTopKAndFilter(t *testing.T) {
	in := func() []*Series {
		return []*Series{mkSeries("a", 1, 1), mkSeries("b", 10, 0), mkSeries("c", 3, 3), mkSeries("d", math.NaN()), mkSeries("e", 4, 4)}
	}
	for _, c := range []struct {
		tk   traceql.TopK
		want string
	}{
		{traceql.TopK{N: 2}, "b,e"},               // averages 5 and 4: highest first
		{traceql.TopK{N: 2, Bottom: true}, "a,c"}, // lowest
		{traceql.TopK{N: 5, Bottom: true}, "a,b,c,d,e"},
		{traceql.TopK{N: 4}, "b,e,c,a"}, // d (no average) last, dropped
		{traceql.TopK{N: 0}, ""},
	} {
		if got := names(topK(in(), &c.tk)); got != c.want {
			t.Errorf("%+v: %s, want %s", c.tk, got, c.want)
		}
	}
	got := filterSamples(in(), &traceql.MetricsFilter{Op: traceql.OpGreater, Value: 3})
	if names(got) != "b,e" || len(got[0].Samples) != 1 || len(got[1].Samples) != 2 {
		t.Errorf("filter > 3: %s", names(got))
	}
	for _, c := range []struct {
		op   traceql.Operator
		want string
	}{
		{traceql.OpEqual, "c"}, {traceql.OpNotEqual, "a,b,d,e"}, {traceql.OpLess, "a,b"},
		{traceql.OpLessEqual, "a,b,c"}, {traceql.OpGreaterEqual, "b,c,e"},
	} {
		if got := names(filterSamples(in(), &traceql.MetricsFilter{Op: c.op, Value: 3})); got != c.want {
			t.Errorf("filter %v 3: %s, want %s", c.op, got, c.want)
		}
	}
}

// The sample filter written after the function runs in Response.
func TestFilterEndToEnd(t *testing.T) {
	r := refRequest()
	traces := genTraces(t, 4, 300, r.Start, r.End)
	st := &traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: []*traceql.Attribute{attr(t, "resource.service.name")},
		Filter: &traceql.MetricsFilter{Op: traceql.OpGreaterEqual, Value: 4}}
	q := mustCompile(t, r, metricsRoot(t, "{ }", st))
	resp := runJobs(t, q, traces, r.Start+700*sec).Response()
	want := refCase{fn: traceql.MetricsCountOverTime, by: []string{"resource.service.name"}}.expected(r, traces)
	n := 0
	for _, s := range resp.Series {
		for _, smp := range s.Samples {
			n++
			if smp.Value < 4 || want[labelText(s.Labels)][smp.TimestampMs] != smp.Value {
				t.Errorf("%s at %d: %v", labelText(s.Labels), smp.TimestampMs, smp.Value)
			}
		}
	}
	wantN := 0
	for _, m := range want {
		for _, v := range m {
			if v >= 4 {
				wantN++
			}
		}
	}
	if n != wantN || n == 0 {
		t.Errorf("%d samples kept, want %d", n, wantN)
	}
}

func TestCompare(t *testing.T) {
	r := refRequest()
	traces := genTraces(t, 5, 500, r.Start, r.End)
	sel, err := traceql.Parse("{ status = error }")
	if err != nil {
		t.Fatal(err)
	}
	st := &traceql.MetricsStage{Func: traceql.MetricsCompare, Selection: sel.Pipeline.Stages[0].(*traceql.SpansetFilter), TopN: 3}
	q := mustCompile(t, r, metricsRoot(t, "{ }", st))
	resp := runJobs(t, q, traces, r.Start+500*sec, r.Start+1000*sec).Response()
	// Model: per meta type, per attribute value, per interval.
	want := map[string]map[int64]float64{}
	add := func(key string, s genSpan) {
		m := want[key]
		if m == nil {
			m = map[int64]float64{}
			for i := 0; i < r.Intervals(); i++ {
				m[refTimestampMs(r, i)] = 0
			}
			want[key] = m
		}
		i, _ := refInterval(r, s.start)
		m[refTimestampMs(r, i)]++
	}
	for _, gt := range traces {
		for _, s := range gt.spans {
			if _, ok := refInterval(r, s.start); !ok {
				continue
			}
			meta := "baseline"
			if s.isErr {
				meta = "selection"
			}
			add(fmt.Sprintf("__meta_type=%s,resource.service.name=%s", meta, s.svc), s)
			add(fmt.Sprintf("__meta_type=%s_total,resource.service.name=", meta), s)
			add(fmt.Sprintf("__meta_type=%s,name=%s", meta, s.name), s)
		}
	}
	got := map[string]*Series{}
	for _, s := range resp.Series {
		got[labelText(s.Labels)] = s
	}
	// 4 services (more than the top 3) and 5 names: both marked.
	for _, k := range []string{"__meta_error=__too_many_values__,resource.service.name=", "__meta_error=__too_many_values__,name="} {
		if got[k] == nil {
			t.Errorf("no error series %s", k)
		}
	}
	for _, meta := range []string{"baseline", "selection"} {
		for _, a := range []string{"resource.service.name", "name"} {
			kept := 0
			for k, s := range got {
				if !strings.HasPrefix(k, "__meta_type="+meta+","+a+"=") {
					continue
				}
				kept++
				w := want[k]
				for _, smp := range s.Samples {
					if w[smp.TimestampMs] != smp.Value {
						t.Errorf("%s at %d: %v, want %v", k, smp.TimestampMs, smp.Value, w[smp.TimestampMs])
					}
				}
			}
			if kept != 3 {
				t.Errorf("%s %s: %d values kept, want the top 3", meta, a, kept)
			}
		}
		k := "__meta_type=" + meta + "_total,resource.service.name="
		s := got[k]
		if s == nil {
			t.Fatalf("no %s", k)
		}
		for _, smp := range s.Samples {
			if want[k][smp.TimestampMs] != smp.Value {
				t.Errorf("%s at %d: %v, want %v", k, smp.TimestampMs, smp.Value, want[k][smp.TimestampMs])
			}
		}
	}
	// Durations are not compared.
	for k := range got {
		if strings.Contains(k, "duration") {
			t.Errorf("duration compared: %s", k)
		}
	}
}

// Two jobs over the same time (two blocks of one period): the combiner
// still keeps at most one exemplar per interval when the budget is
// smaller than the intervals, and a job takes one exemplar per trace.
func TestExemplarsSpread(t *testing.T) {
	r := refRequest()
	r.Exemplars = 20
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}))
	traces := genTraces(t, 6, 400, r.Start, r.End)
	c := q.NewCombiner()
	// The first job has 6 traces (6 exemplars), the second the rest: its
	// exemplars fall in intervals the first one's took too.
	for _, part := range [][]genTrace{traces[:6], traces[6:]} {
		acc := q.NewAccumulator(r.Start, r.End)
		for i := range part {
			tr, err := traceql.NewTrace(part[i].data)
			if err != nil {
				t.Fatal(err)
			}
			if err := acc.ObserveTrace(tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Add(roundTrip(t, acc.Result())); err != nil {
			t.Fatal(err)
		}
	}
	perIvl := map[int]int{}
	n := 0
	for _, e := range c.Response().Series[0].Exemplars {
		perIvl[q.exemplarInterval(e.TimestampMs)]++
		n++
	}
	if n != 20 {
		t.Errorf("%d exemplars, want 20", n)
	}
	for i, k := range perIvl {
		if k > 1 {
			t.Errorf("%d exemplars in interval %d", k, i)
		}
	}
	// One trace of many spans: one exemplar.
	r.Exemplars = 50
	q = mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}))
	tr, err := traceql.NewTrace(manySpans(t, 200, 0, r.Start+1, r.End-r.Start-1))
	if err != nil {
		t.Fatal(err)
	}
	acc := q.NewAccumulator(r.Start, r.End)
	if err := acc.ObserveTrace(tr); err != nil {
		t.Fatal(err)
	}
	if ex := acc.Result().Series[0].Exemplars; len(ex) != 1 {
		t.Errorf("%d exemplars from one trace, want 1", len(ex))
	}
}

// A by() value JSON cannot carry (a NaN float) still travels and answers.
func TestNaNLabel(t *testing.T) {
	r := refRequest()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{2})
	sp.SetStartTimestamp(pcommon.Timestamp(r.Start + 5*sec))
	sp.SetEndTimestamp(pcommon.Timestamp(r.Start + 6*sec))
	sp.Attributes().PutDouble("ratio", math.NaN())
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: []*traceql.Attribute{attr(t, "span.ratio")}}))
	resp := runJobs(t, q, []genTrace{{data: data}})
	b, err := resp.Response().MarshalJSON()
	if err != nil || !strings.Contains(string(b), `{"key":"span.ratio","value":{"stringValue":"NaN"}}`) {
		t.Errorf("%s %v", b, err)
	}
}
