package metrics

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

func goldenResponse() *Response {
	return &Response{
		Series: []*Series{
			{
				Labels:  []*search.KeyValue{strLabel("resource.service.name", "checkout"), floatLabel("p", 0.9)},
				Samples: []Sample{{TimestampMs: 1724230800000, Value: 3.25}, {TimestampMs: 1724230860000, Value: 0}, {TimestampMs: 1724230920000, Value: math.NaN()}},
				Exemplars: []Exemplar{{Labels: []*search.KeyValue{strLabel("trace:id", "7f0c"), strLabel("span:id", "a1")},
					Value: 0.125, TimestampMs: 1724230812345}},
			},
			{Labels: []*search.KeyValue{strLabel("__meta_error", "__too_many_values__"), {Key: "span.x"}}},
		},
		Metrics: &search.Metrics{InspectedBytes: 123456, InspectedSpans: 7, InspectedTraces: 3, CompletedJobs: 2},
		Status:  StatusPartial,
		Message: "too many",
	}
}

func TestResponseJSONGolden(t *testing.T) {
	b, err := goldenResponse().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"series":[{"labels":[{"key":"resource.service.name","value":{"stringValue":"checkout"}},{"key":"p","value":{"doubleValue":0.9}}],` +
		`"samples":[{"timestampMs":"1724230800000","value":3.25},{"timestampMs":"1724230860000"},{"timestampMs":"1724230920000","value":"NaN"}],` +
		`"exemplars":[{"labels":[{"key":"trace:id","value":{"stringValue":"7f0c"}},{"key":"span:id","value":{"stringValue":"a1"}}],"value":0.125,"timestampMs":"1724230812345"}]},` +
		`{"labels":[{"key":"__meta_error","value":{"stringValue":"__too_many_values__"}},{"key":"span.x"}]}],` +
		`"metrics":{"inspectedTraces":3,"inspectedBytes":"123456","inspectedSpans":"7","completedJobs":2},"status":"PARTIAL","message":"too many"}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b, want)
	}
	// Complete and empty: status and series left out, as jsonpb does.
	b, err = (&Response{Metrics: &search.Metrics{}, Status: StatusComplete}).MarshalJSON()
	if err != nil || string(b) != `{"metrics":{}}` {
		t.Errorf("empty: %s %v", b, err)
	}
	// Instant.
	b, err = goldenResponse().Instant().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want = `{"series":[{"labels":[{"key":"resource.service.name","value":{"stringValue":"checkout"}},{"key":"p","value":{"doubleValue":0.9}}],"value":3.25}],` +
		`"metrics":{"inspectedTraces":3,"inspectedBytes":"123456","inspectedSpans":"7","completedJobs":2},"status":"PARTIAL","message":"too many"}`
	if string(b) != want {
		t.Errorf("instant JSON:\n%s\nwant\n%s", b, want)
	}
	for _, c := range []struct {
		f    float64
		want string
	}{{math.Inf(1), `"Infinity"`}, {math.Inf(-1), `"-Infinity"`}, {1e21, `1e+21`}, {-2.5, `-2.5`}} {
		if got := string(appendJSONFloat(nil, c.f)); got != c.want {
			t.Errorf("float %v: %s, want %s", c.f, got, c.want)
		}
	}
}

// pbField is one decoded protobuf field.
type pbField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func decodePB(t *testing.T, b []byte) []pbField {
	t.Helper()
	var out []pbField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := pbField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("unexpected wire type %v", typ)
		}
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

func TestResponseProto(t *testing.T) {
	r := goldenResponse()
	top := decodePB(t, r.MarshalProto())
	var series [][]pbField
	var sawMetrics, sawStatus, sawMsg bool
	for _, f := range top {
		switch f.num {
		case 1:
			series = append(series, decodePB(t, f.b))
		case 2:
			sawMetrics = true
			m := decodePB(t, f.b)
			if m[0].num != 1 || m[0].v != 3 { // inspectedTraces
				t.Errorf("metrics: %+v", m)
			}
		case 3:
			sawStatus = f.typ == protowire.VarintType && f.v == 1
		case 4:
			sawMsg = string(f.b) == "too many"
		default:
			t.Errorf("unexpected field %d", f.num)
		}
	}
	if len(series) != 2 || !sawMetrics || !sawStatus || !sawMsg {
		t.Fatalf("series %d metrics %v status %v message %v", len(series), sawMetrics, sawStatus, sawMsg)
	}
	var labels, samples, exemplars int
	for _, f := range series[0] {
		switch f.num {
		case 1:
			kv := decodePB(t, f.b)
			if kv[0].num != 1 || kv[1].num != 2 {
				t.Errorf("label: %+v", kv)
			}
			if labels == 1 { // p = 0.9 as a double (AnyValue double_value = 4)
				av := decodePB(t, kv[1].b)
				if av[0].num != 4 || math.Float64frombits(av[0].v) != 0.9 {
					t.Errorf("p label: %+v", av)
				}
			}
			labels++
		case 2:
			s := decodePB(t, f.b)
			switch samples {
			case 0:
				if len(s) != 2 || s[0].num != 1 || math.Float64frombits(s[0].v) != 3.25 || s[1].num != 2 || s[1].v != 1724230800000 {
					t.Errorf("sample 0: %+v", s)
				}
			case 1: // value 0: left out
				if len(s) != 1 || s[0].num != 2 {
					t.Errorf("sample 1: %+v", s)
				}
			case 2:
				if !math.IsNaN(math.Float64frombits(s[0].v)) {
					t.Errorf("sample 2: %+v", s)
				}
			}
			samples++
		case 4:
			e := decodePB(t, f.b)
			if len(e) != 4 || e[2].num != 2 || math.Float64frombits(e[2].v) != 0.125 || e[3].num != 3 || e[3].v != 1724230812345 {
				t.Errorf("exemplar: %+v", e)
			}
			exemplars++
		default:
			t.Errorf("series field %d", f.num)
		}
	}
	if labels != 2 || samples != 3 || exemplars != 1 {
		t.Errorf("labels %d samples %d exemplars %d", labels, samples, exemplars)
	}
	// Instant.
	in := decodePB(t, r.Instant().MarshalProto())
	s := decodePB(t, in[0].b)
	if in[0].num != 1 || s[2].num != 3 || math.Float64frombits(s[2].v) != 3.25 { // InstantSeries.value is field 3 (promLabels is 2)
		t.Errorf("instant series: %+v", s)
	}
}

func TestInstantQuery(t *testing.T) {
	start, end := testBase+10*sec, testBase+310*sec
	r := Request{Start: start, End: end, Step: end - start}.Align()
	if r.Start != start || r.End != end {
		t.Fatalf("instant aligned: %+v", r)
	}
	traces := genTraces(t, 2, 200, start-30*sec, end+30*sec)
	q := mustCompile(t, r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate, By: []*traceql.Attribute{attr(t, "resource.service.name")}}))
	resp := runJobs(t, q, traces, start+100*sec).Response()
	want := map[string]float64{}
	for _, gt := range traces {
		for _, s := range gt.spans {
			if s.start >= start && s.start <= end {
				want["resource.service.name="+s.svc]++
			}
		}
	}
	in := resp.Instant()
	if len(in.Series) != len(want) {
		t.Fatalf("%d series, want %d", len(in.Series), len(want))
	}
	for _, s := range in.Series {
		w := want[labelText(s.Labels)] / 300
		if s.Value != w {
			t.Errorf("%s: %v, want %v", labelText(s.Labels), s.Value, w)
		}
	}
	if ts := resp.Series[0].Samples[0].TimestampMs; ts != int64(end/1e6) {
		t.Errorf("instant sample at %d, want the end %d", ts, end/1e6)
	}
}

func TestCompileErrors(t *testing.T) {
	r := refRequest()
	for _, c := range []struct {
		req  Request
		root *traceql.RootExpr
		want string
	}{
		{r, metricsRoot(t, "{ }", nil), "not a metrics query"},
		{Request{Start: 10, End: 5, Step: 1}, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}), "end (5) must be after start (10)"},
		{Request{Start: 1, End: 5}, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}), "step"},
		{r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsSumOverTime}), "needs an attribute"},
		{r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsQuantileOverTime, Attr: attr(t, "duration"), Quantiles: []float64{1.5}}), "between 0 and 1"},
		{r, metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsCompare}), "selection"},
	} {
		_, err := compile(c.req, c.root)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("compile: %v, want InvalidArgument with %q", err, c.want)
		}
	}
	_, err := Compile(Request{Query: "{ status = }", Start: 1, End: 2, Step: 1})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad query: %v", err)
	}
	_, err = Compile(Request{Query: "{ }", Start: 1, End: 2, Step: 1})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not a metrics query") {
		t.Errorf("search query: %v", err)
	}
}

func TestPartialMismatch(t *testing.T) {
	q := mustCompile(t, refRequest(), metricsRoot(t, "{ }", &traceql.MetricsStage{Func: traceql.MetricsRate}))
	c := q.NewCombiner()
	err := c.Add(&Partial{Series: []*PartialSeries{{Labels: []*search.KeyValue{strLabel("__name__", "rate")}, Count: []float64{1, 2}}}})
	if err == nil || !strings.Contains(err.Error(), "2 counts") {
		t.Errorf("mismatched partial: %v", err)
	}
	if len(c.Response().Series) != 0 {
		t.Error("a rejected partial was merged")
	}
}
