package traceql

import (
	"reflect"
	"strings"
	"testing"
)

// TestMetricsTree checks the fields Parse fills for metrics queries.
func TestMetricsTree(t *testing.T) {
	dur := &Attribute{Scope: ScopeSpan, Name: "duration", Intrinsic: IntrinsicDuration}
	svc := &Attribute{Scope: ScopeResource, Name: "service.name"}
	for _, c := range []struct {
		query  string
		want   *MetricsStage
		second []MetricsSecondStage
	}{
		{`{ } | rate()`, &MetricsStage{Func: MetricsRate}, nil},
		{`{ } | count_over_time() by (resource.service.name, name)`, &MetricsStage{Func: MetricsCountOverTime,
			By: []*Attribute{svc, {Scope: ScopeSpan, Name: "name", Intrinsic: IntrinsicName}}}, nil},
		{`{ } | sum_over_time(span.bytes) > 3`, &MetricsStage{Func: MetricsSumOverTime, Attr: &Attribute{Scope: ScopeSpan, Name: "bytes"},
			Filter: &MetricsFilter{Op: OpGreater, Value: 3}}, nil},
		{`{ } | avg_over_time(duration)`, &MetricsStage{Func: MetricsAvgOverTime, Attr: dur}, nil},
		{`{ } | min_over_time(.a)`, &MetricsStage{Func: MetricsMinOverTime, Attr: &Attribute{Name: "a"}}, nil},
		{`{ } | max_over_time(duration) <= -2.5`, &MetricsStage{Func: MetricsMaxOverTime, Attr: dur,
			Filter: &MetricsFilter{Op: OpLessEqual, Value: -2.5}}, nil},
		{`{ } | quantile_over_time(duration, .5, 0, 1, 0.99) by (resource.service.name)`, &MetricsStage{Func: MetricsQuantileOverTime,
			Attr: dur, Quantiles: []float64{0.5, 0, 1, 0.99}, By: []*Attribute{svc}}, nil},
		{`{ } | histogram_over_time(duration)`, &MetricsStage{Func: MetricsHistogramOverTime, Attr: dur}, nil},
		{`{ } | compare({ })`, &MetricsStage{Func: MetricsCompare, Selection: &SpansetFilter{}, TopN: DefaultCompareTopN}, nil},
		{`{ } | compare({ }, 3, 5, 9)`, &MetricsStage{Func: MetricsCompare, Selection: &SpansetFilter{}, TopN: 3,
			CompareStart: 5, CompareEnd: 9}, nil},
		{`{ } | rate() by (.a) | topk(5) | bottomk(2) != 0`, &MetricsStage{Func: MetricsRate, By: []*Attribute{{Name: "a"}}},
			[]MetricsSecondStage{&TopK{N: 5}, &TopK{Bottom: true, N: 2, Filter: &MetricsFilter{Op: OpNotEqual}}}},
	} {
		r, err := Parse(c.query)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.query, err)
			continue
		}
		if !r.IsMetrics() {
			t.Errorf("Parse(%q).IsMetrics() = false", c.query)
		}
		clearPositions(r)
		if !reflect.DeepEqual(r.Metrics, c.want) {
			t.Errorf("Parse(%q).Metrics\n got %s\nwant %s", c.query, dump(r.Metrics), dump(c.want))
		}
		if !reflect.DeepEqual(r.MetricsSecond, c.second) {
			t.Errorf("Parse(%q).MetricsSecond = %#v, want %#v", c.query, r.MetricsSecond, c.second)
		}
		if got := r.Pipeline.String(); got != "({})" {
			t.Errorf("Parse(%q) search part %s, want ({})", c.query, got)
		}
	}
	if MustParse(`{ } | count() > 1`).IsMetrics() {
		t.Errorf("a search is a metrics query")
	}
}

// clearPositions zeroes every Pos of the tree, for comparisons.
func clearPositions(n Node) {
	Inspect(n, func(n Node) bool {
		reflect.ValueOf(n).Elem().FieldByName("Pos").Set(reflect.ValueOf(Position{}))
		return true
	})
}

// TestMetricsPositions checks the positions of the metrics nodes.
func TestMetricsPositions(t *testing.T) {
	r := MustParse("{ .a }\n| quantile_over_time(duration, .9) by (.x, name) > 1\n| topk(3) < 2")
	m := r.Metrics
	tk := r.MetricsSecond[0].(*TopK)
	for _, c := range []struct {
		name string
		n    Node
		want Position
	}{
		{"metrics", m, Position{9, 2, 3}},
		{"attr", m.Attr, Position{28, 2, 22}},
		{"by 0", m.By[0], Position{46, 2, 40}},
		{"by 1", m.By[1], Position{50, 2, 44}},
		{"filter", m.Filter, Position{56, 2, 50}},
		{"topk", tk, Position{62, 3, 3}},
		{"topk filter", tk.Filter, Position{70, 3, 11}},
	} {
		if got := c.n.Position(); got != c.want {
			t.Errorf("%s at %+v, want %+v", c.name, got, c.want)
		}
	}
	cmp := MustParse(`{ } | compare({ .a = 1 })`).Metrics.Selection
	if want := (Position{14, 1, 15}); cmp.Pos != want {
		t.Errorf("compare selection at %+v, want %+v", cmp.Pos, want)
	}
}

// TestMetricsFields checks that Fields and Inspect see the metrics
// function's fields while SpansetFilters and the pipeline stay the search
// part.
func TestMetricsFields(t *testing.T) {
	r := MustParse(`{ span.x = 1 } | quantile_over_time(duration, .5) by (resource.service.name, .y) > 1 | topk(2) < 3`)
	want := []FieldRef{
		{Scope: ScopeSpan, Name: "x"},
		{Scope: ScopeSpan, Name: "duration", Intrinsic: IntrinsicDuration},
		{Scope: ScopeResource, Name: "service.name"},
		{Name: "y"},
	}
	if got := r.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields\n got %+v\nwant %+v", got, want)
	}
	r = MustParse(`{ span.x = 1 } | compare({ status = error && .z > 2 }, 5)`)
	want = []FieldRef{
		{Scope: ScopeSpan, Name: "x"},
		{Scope: ScopeSpan, Name: "status", Intrinsic: IntrinsicStatus},
		{Name: "z"},
	}
	if got := r.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("compare Fields\n got %+v\nwant %+v", got, want)
	}
	// compare's selection splits the spans, it must not be pushed down
	if sf := r.SpansetFilters(); len(sf) != 1 || sf[0].String() != "{ span.x = 1 }" {
		t.Errorf("SpansetFilters = %v, want only the search part's", sf)
	}

	counts := map[string]int{}
	Inspect(MustParse(`{ .a } | rate() by (.b, .c) > 1 | topk(1) | bottomk(2) < 3 with (sample=0.5)`), func(n Node) bool {
		counts[reflect.TypeOf(n).Elem().Name()]++
		return true
	})
	wantCounts := map[string]int{
		"RootExpr": 1, "Pipeline": 1, "SpansetFilter": 1, "Attribute": 3, "MetricsStage": 1,
		"MetricsFilter": 2, "TopK": 2, "Hints": 1, "Hint": 1, "Static": 1,
	}
	if !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("Inspect visited %v\nwant %v", counts, wantCounts)
	}
}

// TestMetricsLimits checks that the metrics stages count towards the
// stage and depth limits.
func TestMetricsLimits(t *testing.T) {
	q := `{ } | rate() | topk(1) | bottomk(1)` // 4 stages
	if _, err := ParseWithLimits(q, Limits{MaxStages: 4}); err != nil {
		t.Fatalf("4 stages, limit 4: %v", err)
	}
	pe := parseErr(t, q, Limits{MaxStages: 3})
	if pe.Limit != LimitMaxStages || pe.Pos.Column != 24 {
		t.Errorf("4 stages, limit 3: %v", pe)
	}
	pe = parseErr(t, `{ } | { } | rate()`, Limits{MaxStages: 2})
	if pe.Limit != LimitMaxStages || pe.Pos.Column != 11 {
		t.Errorf("3 stages, limit 2: %v", pe)
	}
	pe = parseErr(t, "{ }"+strings.Repeat(" | rate()", 1)+strings.Repeat(" | topk(1)", 100), Limits{})
	if pe.Limit != LimitMaxStages {
		t.Errorf("102 stages: %v", pe)
	}

	// compare( is one level, its { another, a ( inside it a third
	q = `{ } | compare({ (.a = 1) })`
	if _, err := ParseWithLimits(q, Limits{MaxDepth: 3}); err != nil {
		t.Fatalf("depth 3: %v", err)
	}
	if pe := parseErr(t, q, Limits{MaxDepth: 2}); pe.Limit != LimitMaxDepth || pe.Pos.Column != 17 {
		t.Errorf("depth 2: %v", pe)
	}
	if pe := parseErr(t, `{ } | compare({ })`, Limits{MaxDepth: 1}); pe.Limit != LimitMaxDepth || pe.Pos.Column != 15 {
		t.Errorf("compare({ at depth 1: %v", pe)
	}
}

// TestMetricsSearchPart checks that a metrics query's search part pushes
// down as the same query without the metrics stages would, and that
// compare's selection is not pushed down.
func TestMetricsSearchPart(t *testing.T) {
	for _, c := range []struct{ metrics, search string }{
		{`{ .a = 1 } | rate() by (.b)`, `{ .a = 1 }`},
		{`{ .a = 1 } | compare({ .b = 2 }, 3) | topk(1)`, `{ .a = 1 }`},
		{`{ .a = 1 } >> { .c = "x" } | quantile_over_time(duration, .5) > 1`, `{ .a = 1 } >> { .c = "x" }`},
	} {
		got, want := MustParse(c.metrics).Condition(), MustParse(c.search).Condition()
		if got.String() != want.String() {
			t.Errorf("condition of %q = %s, want %s", c.metrics, got, want)
		}
	}
	if c := MustParse(`{ } | compare({ .b = 2 })`).Condition(); c != nil {
		t.Errorf("condition of an unfiltered compare = %s, want none", c)
	}
}
