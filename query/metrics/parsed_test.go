package metrics

import (
	"slices"
	"testing"

	"github.com/weftdb/weft/query/traceql"
)

// Queries through Compile (traceql.Parse) give the same answers as the
// trees the other tests build by hand, and the second stages run.
func TestParsedQueries(t *testing.T) {
	r := refRequest()
	r.Exemplars = 5
	traces := genTraces(t, 7, 300, r.Start, r.End)
	by := []*traceql.Attribute{attr(t, "resource.service.name")}
	for _, c := range []struct {
		query string
		st    *traceql.MetricsStage
	}{
		{"{ } | rate()", &traceql.MetricsStage{Func: traceql.MetricsRate}},
		{"{ } | count_over_time() by (resource.service.name)", &traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: by}},
		{"{ } | avg_over_time(duration) by (resource.service.name)", &traceql.MetricsStage{Func: traceql.MetricsAvgOverTime, Attr: attr(t, "duration"), By: by}},
		{"{ } | max_over_time(span.size)", &traceql.MetricsStage{Func: traceql.MetricsMaxOverTime, Attr: attr(t, "span.size")}},
		{"{ } | quantile_over_time(duration, 0.5, 0.9) by (resource.service.name)",
			&traceql.MetricsStage{Func: traceql.MetricsQuantileOverTime, Attr: attr(t, "duration"), Quantiles: []float64{0.5, 0.9}, By: by}},
		{"{ } | histogram_over_time(duration)", &traceql.MetricsStage{Func: traceql.MetricsHistogramOverTime, Attr: attr(t, "duration")}},
		{"{ } | count_over_time() by (resource.service.name) > 3",
			&traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: by, Filter: &traceql.MetricsFilter{Op: traceql.OpGreater, Value: 3}}},
	} {
		r.Query = c.query
		q, err := Compile(r)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		got, err := runJobs(t, q, traces, r.Start+900*sec).Response().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		want, err := runJobs(t, mustCompile(t, r, metricsRoot(t, "{ }", c.st)), traces, r.Start+900*sec).Response().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant\n%s", c.query, got, want)
		}
	}
	// Second stages: topk and bottomk by the series' average.
	for _, c := range []struct{ query string }{
		{"{ } | count_over_time() by (resource.service.name) | topk(2)"},
		{"{ } | count_over_time() by (resource.service.name) | bottomk(1)"},
		{"{ } | count_over_time() by (resource.service.name) | topk(3) > 8"},
	} {
		r.Query = c.query
		q, err := Compile(r)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		all := runJobs(t, mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsCountOverTime, By: by})), traces).Response()
		tk := q.Root().MetricsSecond[0].(*traceql.TopK)
		kept := topK(all.Series, tk)
		if tk.Filter != nil {
			kept = filterSamples(kept, tk.Filter)
		}
		slices.SortFunc(kept, func(a, b *Series) int { return compareLabels(a.Labels, b.Labels) })
		want := names2(kept)
		got := names2(runJobs(t, q, traces).Response().Series)
		if got != want || len(got) == 0 {
			t.Errorf("%s: %s, want %s", c.query, got, want)
		}
	}
}

func names2(ss []*Series) string {
	out := ""
	for _, s := range ss {
		out += labelText(s.Labels) + ";"
	}
	return out
}
