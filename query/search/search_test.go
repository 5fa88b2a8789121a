package search

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/livestore"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// spanDef is one span of a test trace: id, parent id (0 = root), service,
// name, start offset and duration from base.
type spanDef struct {
	id, parent byte
	service    string
	name       string
	start, dur time.Duration
	attr       string // value of span attribute "color", "" for none
}

func mkTrace(tid pcommon.TraceID, spans ...spanDef) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s.service)
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, s.id})
		if s.parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, s.parent})
		}
		sp.SetName(s.name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(s.start)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(s.start + s.dur)))
		if s.attr != "" {
			sp.Attributes().PutStr("color", s.attr)
		}
	}
	return td
}

type env struct {
	t    *testing.T
	set  *livestore.Set
	st   *livestore.Store
	bkt  *filesystem.Bucket
	list *blocklist.List
	s    *Searcher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	set := &livestore.Set{}
	cfg := livestore.DefaultConfig()
	f := livestore.NewFactory(cfg, set)
	node, err := f.Create(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	bkt, err2 := filesystem.NewBucket(t.TempDir())
	if err2 != nil {
		t.Fatal(err2)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	return &env{t: t, set: set, st: node.(*livestore.Store), bkt: bkt, list: list, s: New(set, list, bkt)}
}

func (e *env) live(td ptrace.Traces) {
	e.t.Helper()
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	m.Metadata.Set(pipelines.MetaTenant, "t")
	if err := e.st.Consume(m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) block(tds ...ptrace.Traces) {
	e.t.Helper()
	buf := block.NewBuffer(nil)
	defer buf.Release()
	for _, td := range tds {
		var b otlpwire.Batch
		if err := b.Parse(spangen.Marshal(td)); err != nil {
			e.t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			e.t.Fatal(err)
		}
	}
	meta, err := block.Write(context.Background(), e.bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.list.Add(meta)
}

func (e *env) search(req Request) *Response {
	e.t.Helper()
	resp, err := e.s.Search(context.Background(), req, "t")
	if err != nil {
		e.t.Fatal(err)
	}
	// The response must encode.
	if _, err := json.Marshal(resp); err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func ids(resp *Response) string {
	var out []string
	for _, tr := range resp.Traces {
		out = append(out, tr.TraceID)
	}
	return strings.Join(out, ",")
}

var (
	tidLive  = pcommon.TraceID{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	tidBlock = pcommon.TraceID{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
	tidBoth  = pcommon.TraceID{0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}
)

func setup(t *testing.T) *env {
	e := newEnv(t)
	e.live(mkTrace(tidLive,
		spanDef{id: 1, service: "front", name: "GET /", start: 3 * time.Second, dur: 10 * time.Millisecond, attr: "red"}))
	e.block(mkTrace(tidBlock,
		spanDef{id: 1, service: "back", name: "query", start: 1 * time.Second, dur: 2 * time.Second, attr: "blue"},
		spanDef{id: 2, parent: 1, service: "back", name: "scan", start: 1 * time.Second, dur: time.Second}))
	// tidBoth: root in a block, children in the live-store, span 2 in both.
	e.block(mkTrace(tidBoth,
		spanDef{id: 1, service: "shop", name: "checkout", start: 2 * time.Second, dur: 500 * time.Millisecond},
		spanDef{id: 2, parent: 1, service: "db", name: "insert", start: 2 * time.Second, dur: 10 * time.Millisecond, attr: "red"}))
	e.live(mkTrace(tidBoth,
		spanDef{id: 2, parent: 1, service: "db", name: "insert", start: 2 * time.Second, dur: 10 * time.Millisecond, attr: "red"},
		spanDef{id: 3, parent: 1, service: "db", name: "insert", start: 2100 * time.Millisecond, dur: 10 * time.Millisecond, attr: "red"},
		spanDef{id: 4, parent: 1, service: "db", name: "insert", start: 2200 * time.Millisecond, dur: 10 * time.Millisecond, attr: "red"},
		spanDef{id: 5, parent: 1, service: "db", name: "insert", start: 2300 * time.Millisecond, dur: 10 * time.Millisecond, attr: "red"}))
	return e
}

func TestSearchPlaces(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct{ q, want string }{
		{`{}`, "1,ab000000000000000000000000000003,2"}, // start descending: 3s, 2s, 1s
		{``, "1,ab000000000000000000000000000003,2"},
		{`{ resource.service.name = "front" }`, "1"},                                                         // live only
		{`{ resource.service.name = "back" }`, "2"},                                                          // block only
		{`{ resource.service.name = "shop" } && { span.color = "red" }`, "ab000000000000000000000000000003"}, // both
		{`{ .color = "red" }`, "1,ab000000000000000000000000000003"},
		{`{ .color = "green" }`, ""},
	} {
		if got := ids(e.search(Request{Query: tc.q})); got != tc.want {
			t.Errorf("%s: got traces %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestSearchTraceFieldsAndDedupe(t *testing.T) {
	e := setup(t)
	resp := e.search(Request{Query: `{ span.color = "red" && resource.service.name = "db" }`})
	if len(resp.Traces) != 1 {
		t.Fatalf("got %d traces", len(resp.Traces))
	}
	tr := resp.Traces[0]
	if tr.RootServiceName != "shop" || tr.RootTraceName != "checkout" || tr.DurationMs != 500 ||
		tr.StartTimeUnixNano != uint64(base.Add(2*time.Second).UnixNano()) {
		t.Fatalf("trace fields: %+v", tr)
	}
	ss := tr.SpanSets[0]
	if tr.SpanSet != ss || len(tr.SpanSets) != 1 {
		t.Fatalf("spanSet is not spanSets[0]")
	}
	// Spans 2..5, span 2 once although it is in both places; truncated to 3.
	if ss.Matched != 4 || len(ss.Spans) != 3 {
		t.Fatalf("matched %d, %d spans; want 4 and 3", ss.Matched, len(ss.Spans))
	}
	sp := ss.Spans[0]
	if len(sp.SpanID) != 16 || sp.Name != "" || sp.DurationNanos != uint64(10*time.Millisecond) {
		t.Fatalf("span: %+v", sp)
	}
	body, _ := json.Marshal(sp.Attributes)
	if string(body) != `[{"key":"color","value":{"stringValue":"red"}},{"key":"service.name","value":{"stringValue":"db"}}]` {
		t.Fatalf("span attributes %s", body)
	}
	if m := resp.Metrics; m.TotalBlocks != 2 || m.TotalJobs != 3 || m.CompletedJobs != 3 ||
		m.InspectedTraces != 2 || m.InspectedSpans != 4+2 || m.InspectedBytes == 0 {
		// Live: tidBoth's 4 spans (tidLive has no span of service "db"
		// and is not decoded); tidBoth's block: 2; tidBlock's block is
		// pruned (no span of service "db" or with color "red").
		t.Fatalf("metrics %+v", m)
	}

	resp = e.search(Request{Query: `{ .color = "red" && resource.service.name = "db" }`, SpansPerSpanSet: 1})
	if ss := resp.Traces[0].SpanSets[0]; ss.Matched != 4 || len(ss.Spans) != 1 {
		t.Fatalf("spss=1: matched %d, %d spans", ss.Matched, len(ss.Spans))
	}
	resp = e.search(Request{Query: `{ .color = "red" && resource.service.name = "db" }`, SpansPerSpanSet: 100})
	if ss := resp.Traces[0].SpanSets[0]; ss.Matched != 4 || len(ss.Spans) != 4 {
		t.Fatalf("spss=100: matched %d, %d spans", ss.Matched, len(ss.Spans))
	}
}

func TestSearchLimitRangeDuration(t *testing.T) {
	e := setup(t)
	if got := ids(e.search(Request{Limit: 2})); got != "1,ab000000000000000000000000000003" {
		t.Errorf("limit 2: %q", got)
	}
	if got := ids(e.search(Request{Limit: 1})); got != "1" {
		t.Errorf("limit 1: %q", got)
	}
	// Only the traces overlapping [3.001s, 5s]: the live one (3s-3.01s).
	if got := ids(e.search(Request{Start: base.Add(3001 * time.Millisecond), End: base.Add(5 * time.Second)})); got != "1" {
		t.Errorf("range: %q", got)
	}
	if got := ids(e.search(Request{MinDuration: time.Second})); got != "2" {
		t.Errorf("minDuration: %q", got)
	}
	if got := ids(e.search(Request{MaxDuration: 100 * time.Millisecond})); got != "1" {
		t.Errorf("maxDuration: %q", got)
	}
}

func TestSearchRootNotReceivedAndGroups(t *testing.T) {
	e := newEnv(t)
	e.live(mkTrace(tidLive, spanDef{id: 2, parent: 1, service: "a", name: "child", dur: time.Millisecond}))
	resp := e.search(Request{Query: `{} | by(resource.service.name) | count() > 0`})
	if len(resp.Traces) != 1 {
		t.Fatalf("%d traces", len(resp.Traces))
	}
	tr := resp.Traces[0]
	if tr.RootServiceName != RootSpanNotYetReceived || tr.RootTraceName != "" {
		t.Fatalf("root: %+v", tr)
	}
	body, _ := json.Marshal(tr.SpanSets[0].Attributes)
	if string(body) != `[{"key":"by(resource.service.name)","value":{"stringValue":"a"}},{"key":"count()","value":{"intValue":"1"}}]` {
		t.Fatalf("spanset attributes %s", body)
	}
}

func TestSearchJSONShape(t *testing.T) {
	e := newEnv(t)
	resp := e.search(Request{Query: `{}`})
	body, _ := json.Marshal(resp)
	if string(body) != `{"traces":[],"metrics":{"completedJobs":1,"totalJobs":1}}` {
		t.Fatalf("empty response %s", body)
	}
	e.live(mkTrace(tidLive, spanDef{id: 1, service: "a", name: "root", start: time.Second, dur: 2 * time.Millisecond}))
	resp = e.search(Request{Query: `{ name = "root" }`})
	body, _ = json.Marshal(resp.Traces[0])
	want := `{"traceID":"1","rootServiceName":"a","rootTraceName":"root","startTimeUnixNano":"1767225601000000000","durationMs":2,` +
		`"spanSet":{"spans":[{"spanID":"0000000000000001","name":"root","startTimeUnixNano":"1767225601000000000","durationNanos":"2000000"}],"matched":1},` +
		`"spanSets":[{"spans":[{"spanID":"0000000000000001","name":"root","startTimeUnixNano":"1767225601000000000","durationNanos":"2000000"}],"matched":1}],` +
		`"serviceStats":{"a":{"spanCount":1}}}`
	if string(body) != want {
		t.Fatalf("got  %s\nwant %s", body, want)
	}
}

// TestSearchAnswerShape checks the answer as Grafana reads it: service
// stats, span names only when the query reads them, the intrinsics a
// query reads as span attributes under Tempo's names, "nil" for by() of a
// missing attribute, metadata only without q; the protobuf answer carries
// the same.
func TestSearchAnswerShape(t *testing.T) {
	e := newEnv(t)
	td := mkTrace(tidLive,
		spanDef{id: 1, service: "a", name: "root", start: time.Second, dur: 2 * time.Millisecond},
		spanDef{id: 2, parent: 1, service: "b", name: "child", start: time.Second, dur: time.Millisecond},
		spanDef{id: 3, parent: 1, service: "b", name: "child2", start: time.Second, dur: time.Millisecond})
	sp := td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0)
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Events().AppendEmpty().SetName("boom")
	sp.Links().AppendEmpty().SetTraceID(pcommon.TraceID{15: 9})
	e.live(td)

	check := func(q, want string) {
		t.Helper()
		resp := e.search(Request{Query: q})
		resp.Metrics = &Metrics{}
		body, _ := json.Marshal(resp)
		if string(body) != want {
			t.Errorf("%s:\ngot  %s\nwant %s", q, body, want)
		}
		back, err := UnmarshalResponse(resp.MarshalProto())
		if err != nil {
			t.Fatal(err)
		}
		if pb, _ := json.Marshal(back); string(pb) != string(body) {
			t.Errorf("%s: protobuf answer differs:\n%s\n%s", q, pb, body)
		}
	}
	meta := `"traceID":"1","rootServiceName":"a","rootTraceName":"root","startTimeUnixNano":"1767225601000000000","durationMs":2,`
	stats := `"serviceStats":{"a":{"spanCount":1},"b":{"spanCount":2,"errorCount":1}}`
	metrics := `"metrics":{}`
	set := func(s string) string { return `"spanSet":` + s + `,"spanSets":[` + s + `],` }
	span2 := `"spanID":"0000000000000002","startTimeUnixNano":"1767225601000000000","durationNanos":"1000000"`

	check(``, `{"traces":[{`+meta+stats+`}],`+metrics+`}`)
	check(`{ status = error }`, `{"traces":[{`+meta+set(`{"spans":[{`+span2+`,"attributes":[{"key":"status","value":{"stringValue":"error"}}]}],"matched":1}`)+stats+`}],`+metrics+`}`)
	check(`{ name = "child" }`, `{"traces":[{`+meta+set(`{"spans":[{"spanID":"0000000000000002","name":"child","startTimeUnixNano":"1767225601000000000","durationNanos":"1000000"}],"matched":1}`)+stats+`}],`+metrics+`}`)
	check(`{ event:name = "boom" && link:traceID != "" && span:parentID != "" && childCount = 0 && span:status = error }`,
		`{"traces":[{`+meta+set(`{"spans":[{`+span2+`,"attributes":[`+
			`{"key":"event:name","value":{"stringValue":"boom"}},`+
			`{"key":"link:traceID","value":{"stringValue":"00000000000000000000000000000009"}},`+
			`{"key":"span:parentID","value":{"stringValue":"0000000000000001"}},`+
			`{"key":"childCount","value":{"intValue":"0"}},`+
			`{"key":"status","value":{"stringValue":"error"}}]}],"matched":1}`)+stats+`}],`+metrics+`}`)
	check(`{ status = error } | by(span.missing)`, `{"traces":[{`+meta+set(`{"spans":[{`+span2+`,"attributes":[{"key":"status","value":{"stringValue":"error"}}]}],"matched":1,"attributes":[{"key":"by(span.missing)","value":{"stringValue":"nil"}}]}`)+stats+`}],`+metrics+`}`)
}

func TestSearchBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, req := range []Request{
		{Query: `{ .a = }`},
		{Limit: MaxLimit + 1},
		{SpansPerSpanSet: MaxSpansPerSpanSet + 1},
		{MinDuration: time.Second, MaxDuration: time.Millisecond},
	} {
		_, err := e.s.Search(context.Background(), req, "t")
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%+v: got %v, want InvalidArgument", req, err)
		}
	}
}

// TestSearchByTraceIDLooksUp: `{ trace:id = … }` reads the trace named,
// from the live-store and from the blocks, instead of every trace.
func TestSearchByTraceIDLooksUp(t *testing.T) {
	e := setup(t)
	for i := range 50 { // more traces that the search must not read
		e.live(mkTrace(pcommon.TraceID{0xcc, byte(i)}, spanDef{id: 1, service: "front", name: "GET /", start: time.Second, dur: time.Millisecond}))
	}
	e.block(mkTrace(pcommon.TraceID{0xdd}, spanDef{id: 1, service: "back", name: "x", start: time.Second, dur: time.Millisecond}))
	for _, tc := range []struct{ id, want string }{
		{"ab000000000000000000000000000003", "ab000000000000000000000000000003"}, // live and a block
		{"00000000000000000000000000000001", "1"},                                // live only
		{"00000000000000000000000000000002", "2"},                                // a block only
		{"0000000000000000000000000000ffff", ""},                                 // nowhere
	} {
		resp := e.search(Request{Query: `{ trace:id = "` + tc.id + `" }`})
		if got := ids(resp); got != tc.want {
			t.Errorf("trace %s: found %q", tc.id, got)
		}
		if m := resp.Metrics; m.InspectedTraces > 2 {
			t.Errorf("trace %s: inspected %d traces, want at most its 2 parts", tc.id, m.InspectedTraces)
		}
	}
}
