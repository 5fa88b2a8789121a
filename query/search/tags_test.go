package search

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tagEnv has a live trace (service front, color red, int attr code=200,
// an event with attribute ev.a) and a block trace (service back, colors
// blue, a scope attribute).
func tagEnv(t *testing.T) *env {
	e := newEnv(t)
	live := mkTrace(tidLive,
		spanDef{id: 1, service: "front", name: "GET /", start: 3 * time.Second, dur: 10 * time.Millisecond, attr: "red"})
	sp := live.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.Attributes().PutInt("code", 200)
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Events().AppendEmpty().Attributes().PutStr("ev.a", "x")
	sp.Events().At(0).SetName("boom")
	e.live(live)
	blk := mkTrace(tidBlock,
		spanDef{id: 1, service: "back", name: "query", start: time.Second, dur: 2 * time.Second, attr: "blue"},
		spanDef{id: 2, parent: 1, service: "back", name: "scan", start: time.Second, dur: time.Second})
	blk.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("lib.kind", "db")
	blk.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).Events().AppendEmpty().Attributes().PutStr("ev.b", "y")
	e.block(blk)
	return e
}

var everything = TagsRequest{Start: base.Add(-time.Hour), End: base.Add(time.Hour)}

func scopeMap(resp *TagNamesV2Response) map[string]string {
	out := map[string]string{}
	for _, sc := range resp.Scopes {
		out[sc.Name] = strings.Join(sc.Tags, ",")
	}
	return out
}

func TestTagNamesV2(t *testing.T) {
	e := tagEnv(t)
	ctx := context.Background()
	resp, err := e.s.TagNamesV2(ctx, everything, "t")
	if err != nil {
		t.Fatal(err)
	}
	got := scopeMap(resp)
	want := map[string]string{
		"resource":        "service.name",
		"span":            "code,color",
		"intrinsic":       strings.Join(IntrinsicTagNames, ","),
		"event":           "ev.a", // blocks give event names only when asked by scope
		"instrumentation": "lib.kind",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("scope %s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("scopes %v", got)
	}
	if resp.Metrics.InspectedBytes == 0 || resp.Metrics.TotalBlocks != 1 || resp.Metrics.CompletedJobs != 2 {
		t.Errorf("metrics %+v", resp.Metrics)
	}
	// Asked by scope, blocks give their event names too.
	req := everything
	req.Scope = ScopeEvent
	resp, err = e.s.TagNamesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := scopeMap(resp); len(got) != 1 || got["event"] != "ev.a,ev.b" {
		t.Errorf("event scope: %v", got)
	}
	// Without a time range: live-stores only.
	resp, err = e.s.TagNamesV2(ctx, TagsRequest{Scope: ScopeSpan}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := scopeMap(resp); got["span"] != "code,color" || resp.Metrics.TotalBlocks != 0 {
		t.Errorf("live only: %v %+v", got, resp.Metrics)
	}
	// A filter keeps the names of matching spans only.
	req = everything
	req.Scope, req.Query = ScopeResource, `{ .color = "blue" }`
	resp, err = e.s.TagNamesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	req.Scope = ScopeSpan
	resp, err = e.s.TagNamesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := scopeMap(resp); got["span"] != "color" {
		t.Errorf("filtered span names: %v", got)
	}
	// An invalid filter is ignored.
	req.Query = `{ .color = `
	resp, err = e.s.TagNamesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := scopeMap(resp); got["span"] != "code,color" {
		t.Errorf("invalid filter: %v", got)
	}
	if _, err := e.s.TagNamesV2(ctx, TagsRequest{Scope: "bogus"}, "t"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "scope") {
		t.Errorf("bad scope: %v", err)
	}
}

func TestTagNamesV1(t *testing.T) {
	e := tagEnv(t)
	ctx := context.Background()
	resp, err := e.s.TagNames(ctx, everything, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resp.TagNames, ","); got != "code,color,ev.a,ev.b,lib.kind,service.name" {
		t.Errorf("names %q", got)
	}
	req := everything
	req.Scope = ScopeIntrinsic
	resp, err = e.s.TagNames(ctx, req, "t")
	if err != nil || !slices.Equal(resp.TagNames, IntrinsicTagNames) {
		t.Errorf("intrinsic: %v %v", resp, err)
	}
	if _, err := e.s.TagNames(ctx, TagsRequest{Scope: ScopeNone}, "t"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("v1 scope none: %v", err)
	}
}

func valuesString(vs []TagValue) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Type+":"+v.Value)
	}
	return strings.Join(out, ",")
}

func TestTagValuesV2(t *testing.T) {
	e := tagEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, query, want string }{
		{".color", "", "string:blue,string:red"},
		{"span.color", `{ resource.service.name = "back" }`, "string:blue"},
		{"span.color", `{ resource.service.name = `, "string:blue,string:red"}, // invalid q: unfiltered
		{"resource.color", "", ""},
		{"resource.service.name", "", "string:back,string:front"},
		{".code", "", "int:200"},
		{"status", "", "keyword:ok,keyword:error,keyword:unset"},
		{"span:status", "{ status = error }", "keyword:ok,keyword:error,keyword:unset"},
		{"span:kind", "", "keyword:client,keyword:server,keyword:producer,keyword:consumer,keyword:internal,keyword:unspecified"},
		{"kind", "", "keyword:client,keyword:server,keyword:producer,keyword:consumer,keyword:internal,keyword:unspecified"},
		{"name", "", "string:GET /,string:query,string:scan"},
		{"name", "{ status = error }", "string:GET /"},
		{"rootName", "", "string:GET /,string:query"},
		{"rootServiceName", "", "string:back,string:front"},
		{"event:name", "", "string:,string:boom"},
		{"event.ev.b", "", "string:y"},
		{"instrumentation.lib.kind", "", "string:db"},
		{"duration", "", ""},
	} {
		req := everything
		req.Name, req.Query = tc.name, tc.query
		resp, err := e.s.TagValuesV2(ctx, req, "t")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := valuesString(resp.TagValues); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.name, tc.query, got, tc.want)
		}
	}
	for _, bad := range []string{"", "color", ".a, .b", ".a) | select(.b", "parent.a"} {
		req := everything
		req.Name = bad
		if _, err := e.s.TagValuesV2(ctx, req, "t"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invalid tag name") {
			t.Errorf("name %q: %v", bad, err)
		}
	}
}

func TestTagValuesV1(t *testing.T) {
	e := tagEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, want string }{
		{"service.name", "back,front"},
		{"color", "blue,red"},
		{"code", "200"},
		{"status.code", "unset,ok,error"},
		{"error", "true"},
		{"root.name", "GET /,query"},
	} {
		req := everything
		req.Name = tc.name
		resp, err := e.s.TagValues(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(resp.TagValues, ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTagLimits(t *testing.T) {
	e := tagEnv(t)
	ctx := context.Background()
	req := everything
	req.Name, req.Limit = ".color", 1
	resp, err := e.s.TagValuesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TagValues) != 1 || resp.Truncated != "" {
		t.Errorf("limit 1: %+v", resp)
	}
	req.Limit, req.MaxBytes = 0, len("string")+len("blue")
	resp, err = e.s.TagValuesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TagValues) != 1 || !strings.Contains(resp.Truncated, MaxBytesPerTagValuesQueryKey) || !strings.Contains(resp.Truncated, "10 bytes") {
		t.Errorf("max bytes: %+v", resp)
	}
	// Resource names come first: service.name fills the 12 bytes.
	names, err := e.s.TagNames(ctx, TagsRequest{MaxBytes: 12}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names.TagNames, []string{"service.name"}) || names.Truncated == "" {
		t.Errorf("names max bytes: %+v", names)
	}
}

// formsTrace has float and array attributes, and scope, event and link
// attributes.
func formsTrace() ptrace.Traces {
	td := mkTrace(tidBlock,
		spanDef{id: 1, service: "back", name: "query", start: time.Second, dur: 2 * time.Second, attr: "blue"},
		spanDef{id: 2, parent: 1, service: "back", name: "scan", start: time.Second, dur: time.Second})
	rs0 := td.ResourceSpans().At(0)
	rs0.ScopeSpans().At(0).Scope().Attributes().PutStr("sc.k", "s")
	sp := rs0.ScopeSpans().At(0).Spans().At(0)
	a := sp.Attributes()
	a.PutDouble("ratio", 2)
	a.PutEmptySlice("list").FromRaw([]any{"a", "b"})
	a.PutEmptySlice("nums").FromRaw([]any{int64(1), int64(2)})
	a.PutEmptySlice("fl").FromRaw([]any{1.5, 2.0})
	a.PutEmptySlice("mixed").FromRaw([]any{"x", int64(1)})
	sp.Events().AppendEmpty().Attributes().PutStr("ev.k", "e")
	sp.Links().AppendEmpty().Attributes().PutStr("ln.k", "l")
	b := td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).Attributes()
	b.PutDouble("ratio", 1e21)
	b.PutDouble("tiny", 1e-7)
	b.PutEmptySlice("list").FromRaw([]any{"c"})
	b.PutEmptySlice("fl").FromRaw([]any{0.25})
	return td
}

// Tag names and values take Tempo's forms, from the live-store and from
// blocks alike: v1 unscoped names include instrumentation, event and link
// attribute names; floats are formatted as Tempo formats them; the
// elements of arrays of one scalar type are listed (mixed arrays are not).
func TestTagTempoForms(t *testing.T) {
	ctx := context.Background()
	for _, place := range []string{"live", "block"} {
		e := newEnv(t)
		if place == "live" {
			e.live(formsTrace())
		} else {
			e.block(formsTrace())
		}
		names, err := e.s.TagNames(ctx, everything, "t")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(names.TagNames, ","), "color,ev.k,fl,list,ln.k,mixed,nums,ratio,sc.k,service.name,tiny"; got != want {
			t.Errorf("%s: v1 names %q, want %q", place, got, want)
		}
		for _, tc := range []struct{ name, want string }{
			{".ratio", "float:1e+21,float:2.0"},
			{".tiny", "float:1e-07"},
			{"span.list", "string:a,string:b,string:c"},
			{".nums", "int:1,int:2"},
			{".fl", "float:0.25,float:1.5,float:2.0"},
			{".mixed", ""},
			{".sc.k", "string:s"}, // unscoped values include instrumentation attributes
		} {
			req := everything
			req.Name = tc.name
			resp, err := e.s.TagValuesV2(ctx, req, "t")
			if err != nil {
				t.Fatal(err)
			}
			if got := valuesString(resp.TagValues); got != tc.want {
				t.Errorf("%s: %s: %q, want %q", place, tc.name, got, tc.want)
			}
		}
		for _, tc := range []struct{ name, want string }{
			{"ratio", "1e+21,2.0"},
			{"list", "a,b,c"},
			{"sc.k", "s"},
		} {
			req := everything
			req.Name = tc.name
			resp, err := e.s.TagValues(ctx, req, "t")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(resp.TagValues, ","); got != tc.want {
				t.Errorf("%s: v1 %s: %q, want %q", place, tc.name, got, tc.want)
			}
		}
	}
}

// A trace whose root span is missing has the empty root name and root
// service, listed as Tempo lists them (Tempo stores "" for both), from the
// live-store and from blocks alike.
func TestTagValuesEmptyRoot(t *testing.T) {
	ctx := context.Background()
	rootless := mkTrace(tidLive, spanDef{id: 2, parent: 1, service: "orphan", name: "child", start: time.Second, dur: time.Millisecond})
	rooted := mkTrace(tidBlock, spanDef{id: 1, service: "back", name: "query", start: time.Second, dur: time.Second})
	for _, place := range []string{"live", "block"} {
		e := newEnv(t)
		if place == "live" {
			e.live(rootless)
			e.live(rooted)
		} else {
			e.block(rootless, rooted)
		}
		for _, tc := range []struct{ name, want string }{
			{"rootServiceName", "string:,string:back"},
			{"trace:rootService", "string:,string:back"},
			{"rootName", "string:,string:query"},
		} {
			req := everything
			req.Name = tc.name
			resp, err := e.s.TagValuesV2(ctx, req, "t")
			if err != nil {
				t.Fatal(err)
			}
			if got := valuesString(resp.TagValues); got != tc.want {
				t.Errorf("%s: %s: %q, want %q", place, tc.name, got, tc.want)
			}
		}
		req := everything
		req.Name = "root.service.name"
		resp, err := e.s.TagValues(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.TagValues, []string{"", "back"}) {
			t.Errorf("%s: v1 root.service.name %q", place, resp.TagValues)
		}
	}
}
