package traceql

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The test trace (span order in the data in brackets):
//
//	GET / [0]            frontend  server  ok     0-1000ms
//	├── auth [1]         frontend  client         10-60ms
//	│   └── verify [4]   auth-svc  server  error  15-55ms  event exception
//	├── cart [2]         frontend  client         100-300ms
//	│   └── cart-handle [5]  cart-svc server      110-290ms
//	│       ├── db-query [6] cart-svc client      120-240ms link
//	│       └── cache-get [7] cart-svc client error 250-255ms
//	└── render [3]       frontend  internal       400-500ms events log, flush

var (
	testTraceID = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	linkTraceID = pcommon.TraceID{0xaa, 0xbb, 15: 0xcc}
	linkSpanID  = pcommon.SpanID{0xde, 0xad, 7: 0x01}
	testBase    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func testSpanID(i int) pcommon.SpanID { return pcommon.SpanID{0xf0, 7: byte(i + 1)} }

type testSpan struct {
	name       string
	id, parent int // parent -1 for the root
	kind       ptrace.SpanKind
	status     ptrace.StatusCode
	msg        string
	start, end time.Duration
	attrs      map[string]any
	events     []string // "name" or "name:key=value"
	link       bool
}

func buildTestTrace(t testing.TB) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	type res struct {
		attrs      map[string]any
		scope, ver string
		scopeAttrs map[string]any
		spans      []testSpan
	}
	ms := time.Millisecond
	resources := []res{
		{
			attrs: map[string]any{"service.name": "frontend", "env": "prod", "region": "eu"},
			scope: "fe-lib", ver: "1.0", scopeAttrs: map[string]any{"lib.lang": "go"},
			spans: []testSpan{
				{name: "GET /", id: 0, parent: -1, kind: ptrace.SpanKindServer, status: ptrace.StatusCodeOk, start: 0, end: 1000 * ms,
					attrs: map[string]any{"http.method": "GET", "http.status_code": 200, "weight": 1.5, "cached": true, "tags": []any{"a", "b"}}},
				{name: "auth", id: 1, parent: 0, kind: ptrace.SpanKindClient, start: 10 * ms, end: 60 * ms,
					attrs: map[string]any{"http.status_code": 401, "peer": "auth-svc"}},
				{name: "cart", id: 2, parent: 0, kind: ptrace.SpanKindClient, start: 100 * ms, end: 300 * ms,
					attrs: map[string]any{"http.status_code": 200, "weight": 2.5}},
				{name: "render", id: 3, parent: 0, kind: ptrace.SpanKindInternal, start: 400 * ms, end: 500 * ms,
					attrs: map[string]any{"size": 10, "env": "span-env"}, events: []string{"log:level=info", "flush"}},
			},
		},
		{
			attrs: map[string]any{"service.name": "auth-svc", "env": "prod"},
			scope: "auth-lib", ver: "2.1",
			spans: []testSpan{
				{name: "verify", id: 4, parent: 1, kind: ptrace.SpanKindServer, status: ptrace.StatusCodeError, msg: "bad token",
					start: 15 * ms, end: 55 * ms, attrs: map[string]any{"user.id": 42}, events: []string{"exception:exception.type=TokenError"}},
			},
		},
		{
			attrs: map[string]any{"service.name": "cart-svc", "env": "staging", "replicas": 3},
			scope: "cart-lib", ver: "3.0",
			spans: []testSpan{
				{name: "cart-handle", id: 5, parent: 2, kind: ptrace.SpanKindServer, start: 110 * ms, end: 290 * ms,
					attrs: map[string]any{"items": 3}},
				{name: "db-query", id: 6, parent: 5, kind: ptrace.SpanKindClient, start: 120 * ms, end: 240 * ms,
					attrs: map[string]any{"db.system": "postgresql", "rows": 100}, link: true},
				{name: "cache-get", id: 7, parent: 5, kind: ptrace.SpanKindClient, status: ptrace.StatusCodeError,
					start: 250 * ms, end: 255 * ms, attrs: map[string]any{"db.system": "redis", "hit": false}},
			},
		},
	}
	for _, r := range resources {
		rs := td.ResourceSpans().AppendEmpty()
		if err := rs.Resource().Attributes().FromRaw(r.attrs); err != nil {
			t.Fatal(err)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(r.scope)
		ss.Scope().SetVersion(r.ver)
		if r.scopeAttrs != nil {
			if err := ss.Scope().Attributes().FromRaw(r.scopeAttrs); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range r.spans {
			sp := ss.Spans().AppendEmpty()
			sp.SetName(s.name)
			sp.SetTraceID(testTraceID)
			sp.SetSpanID(testSpanID(s.id))
			if s.parent >= 0 {
				sp.SetParentSpanID(testSpanID(s.parent))
			}
			sp.SetKind(s.kind)
			sp.Status().SetCode(s.status)
			sp.Status().SetMessage(s.msg)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testBase.Add(s.start)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testBase.Add(s.end)))
			if err := sp.Attributes().FromRaw(s.attrs); err != nil {
				t.Fatal(err)
			}
			for i, e := range s.events {
				ev := sp.Events().AppendEmpty()
				name, kv, _ := strings.Cut(e, ":")
				ev.SetName(name)
				ev.SetTimestamp(pcommon.NewTimestampFromTime(testBase.Add(s.start + time.Duration(5-5*i)*ms)))
				if k, v, ok := strings.Cut(kv, "="); ok {
					ev.Attributes().PutStr(k, v)
				}
			}
			if s.link {
				l := sp.Links().AppendEmpty()
				l.SetTraceID(linkTraceID)
				l.SetSpanID(linkSpanID)
				l.Attributes().PutStr("link.kind", "follows")
			}
		}
	}
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// names renders spansets as "a,b|c" with the names of each spanset's spans
// sorted.
func names(sets []Spanset) string {
	var parts []string
	for _, ss := range sets {
		var n []string
		for _, s := range ss.Spans {
			n = append(n, s.Name)
		}
		slices.Sort(n)
		parts = append(parts, strings.Join(n, ","))
	}
	return strings.Join(parts, "|")
}

func attrsString(kvs []KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		parts = append(parts, kv.Key+"="+kv.Value.String())
	}
	return strings.Join(parts, " ")
}

func hexSpanID(i int) string { id := testSpanID(i); return hex.EncodeToString(id[:]) }

func TestEvalTable(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	traceHex := hex.EncodeToString(testTraceID[:])
	const all = "GET /,auth,cache-get,cart,cart-handle,db-query,render,verify"
	cases := []struct {
		q, want string
		attrs   string // spanset attributes, "|"-separated per spanset; checked when set
	}{
		// filters and attribute types
		{q: `{}`, want: all},
		{q: `{ name = "auth" }`, want: "auth"},
		{q: `{ span.http.status_code = 200 }`, want: "GET /,cart"},
		{q: `{ span.http.status_code >= 400 }`, want: "auth"},
		{q: `{ .http.status_code = 200.0 }`, want: "GET /,cart"},
		{q: `{ span.weight > 2 }`, want: "cart"},
		{q: `{ span.weight < 2 }`, want: "GET /"},
		{q: `{ span.weight = 1.5 }`, want: "GET /"},
		{q: `{ span.cached = true }`, want: "GET /"},
		{q: `{ span.hit = false }`, want: "cache-get"},
		{q: `{ span.user.id = 42.0 }`, want: "verify"},
		{q: `{ span.user.id > 41.5 }`, want: "verify"},
		{q: `{ span.tags = "a" }`, want: "GET /"},
		{q: `{ span.tags =~ "b" }`, want: "GET /"},
		{q: `{ span.tags != "c" }`, want: "GET /"},
		{q: `{ span.tags != "a" }`, want: ""},
		{q: `{ span.http.status_code = "200" }`, want: ""},
		// scopes
		{q: `{ resource.service.name = "cart-svc" }`, want: "cache-get,cart-handle,db-query"},
		{q: `{ resource.replicas = 3 }`, want: "cache-get,cart-handle,db-query"},
		{q: `{ .env = "prod" }`, want: "GET /,auth,cart,verify"},
		{q: `{ .env = "span-env" }`, want: "render"},
		{q: `{ resource.env = "prod" }`, want: "GET /,auth,cart,render,verify"},
		{q: `{ span.env = "prod" }`, want: ""},
		{q: `{ .region = "eu" && .http.method = "GET" }`, want: "GET /"},
		{q: `{ instrumentation.lib.lang = "go" }`, want: "GET /,auth,cart,render"},
		{q: `{ event.exception.type = "TokenError" }`, want: "verify"},
		{q: `{ event.level = "info" }`, want: "render"},
		{q: `{ link.link.kind = "follows" }`, want: "db-query"},
		// missing attributes and nil
		{q: `{ span.missing = 1 }`, want: ""},
		{q: `{ span.missing != 1 }`, want: ""},
		{q: `{ span.db.system != nil }`, want: "cache-get,db-query"},
		{q: `{ span.db.system = nil }`, want: "GET /,auth,cart,cart-handle,render,verify"},
		{q: `{ event.level != nil }`, want: "render"},
		// regex
		{q: `{ span.db.system =~ "post.*" }`, want: "db-query"},
		{q: `{ span.db.system =~ "post" }`, want: ""},
		{q: `{ span.db.system !~ "post.*" }`, want: "cache-get"},
		{q: `{ name =~ "ca.*" }`, want: "cache-get,cart,cart-handle"},
		// intrinsics
		{q: `{ duration > 150ms }`, want: "GET /,cart,cart-handle"},
		{q: `{ duration <= 50ms }`, want: "auth,cache-get,verify"},
		{q: `{ status = error }`, want: "cache-get,verify"},
		{q: `{ status = ok }`, want: "GET /"},
		{q: `{ status = unset }`, want: "auth,cart,cart-handle,db-query,render"},
		{q: `{ statusMessage = "bad token" }`, want: "verify"},
		{q: `{ kind = server }`, want: "GET /,cart-handle,verify"},
		{q: `{ kind = client }`, want: "auth,cache-get,cart,db-query"},
		{q: `{ span:kind = internal }`, want: "render"},
		{q: `{ rootName = "GET /" && name = "render" }`, want: "render"},
		{q: `{ rootServiceName = "frontend" && kind = server }`, want: "GET /,cart-handle,verify"},
		{q: `{ trace:rootService = "cart-svc" }`, want: ""},
		{q: `{ traceDuration > 900ms && span.size = 10 }`, want: "render"},
		{q: `{ trace:duration < 900ms }`, want: ""},
		{q: fmt.Sprintf(`{ trace:id = %q && name = "auth" }`, traceHex), want: "auth"},
		{q: fmt.Sprintf(`{ span:id = %q }`, hexSpanID(4)), want: "verify"},
		{q: fmt.Sprintf(`{ span:parentID = %q }`, hexSpanID(2)), want: "cart-handle"},
		{q: `{ span:childCount = 2 }`, want: "cart-handle"},
		{q: `{ childCount = 0 }`, want: "cache-get,db-query,render,verify"},
		{q: `{ event:name = "exception" }`, want: "verify"},
		{q: `{ event:name = "flush" }`, want: "render"},
		{q: `{ event:timeSinceStart > 1ms }`, want: "render,verify"},
		{q: fmt.Sprintf(`{ link:traceID = %q }`, hex.EncodeToString(linkTraceID[:])), want: "db-query"},
		{q: fmt.Sprintf(`{ link:spanID = %q }`, hex.EncodeToString(linkSpanID[:])), want: "db-query"},
		{q: `{ instrumentation:name = "cart-lib" }`, want: "cache-get,cart-handle,db-query"},
		{q: `{ instrumentation:version = "2.1" }`, want: "verify"},
		// arithmetic and logic
		{q: `{ span.rows / 10 = 10 }`, want: "db-query"},
		{q: `{ span.size * 2 + 1 = 21 }`, want: "render"},
		{q: `{ span.size / 3 = 3 }`, want: "render"},
		{q: `{ span.size / 4.0 = 2.5 }`, want: "render"},
		{q: `{ span.size / 0 = 0 }`, want: ""},
		{q: `{ span.rows % 7 = 2 }`, want: "db-query"},
		{q: `{ span.items ^ 2 = 9 }`, want: "cart-handle"},
		{q: `{ -span.size < 0 }`, want: "render"},
		{q: `{ span.weight * 2 = 5 }`, want: "cart"},
		{q: `{ duration - 100ms > 50ms }`, want: "GET /,cart,cart-handle"},
		{q: `{ !(status = error) && kind = client }`, want: "auth,cart,db-query"},
		{q: `{ status = error || span.cached = true }`, want: "GET /,cache-get,verify"},
		// spanset && and ||
		{q: `{ name = "auth" } && { name = "render" }`, want: "auth,render"},
		{q: `{ name = "auth" } && { name = "nope" }`, want: ""},
		{q: `{ name = "auth" } || { name = "nope" }`, want: "auth"},
		{q: `{ name = "auth" } || { name = "render" }`, want: "auth,render"},
		{q: `{ name = "auth" } && { name = "render" } > { }`, want: ""},
		// structural
		{q: `{ name = "GET /" } > { kind = client }`, want: "auth,cart"},
		{q: `{ name = "GET /" } >> { kind = client }`, want: "auth,cache-get,cart,db-query"},
		{q: `{ kind = client } < { kind = server }`, want: "GET /,cart-handle"},
		{q: `{ status = error } << { }`, want: "GET /,auth,cart,cart-handle"},
		{q: `{ name = "db-query" } ~ { }`, want: "cache-get"},
		{q: `{ name = "auth" } ~ { kind = client }`, want: "cart"},
		{q: `{ resource.service.name = "frontend" } >> { resource.service.name = "cart-svc" && status = error }`, want: "cache-get"},
		{q: `{ name = "GET /" } !> { kind = client }`, want: "cache-get,db-query"},
		{q: `{ resource.service.name = "frontend" } !>> { }`, want: "GET /"},
		{q: `{ status = error } !<< { kind = server }`, want: "verify"},
		{q: `{ kind = client } !< { }`, want: "auth,cache-get,cart,db-query,render,verify"},
		{q: `{ name = "db-query" } !~ { kind = client }`, want: "auth,cart,db-query"},
		{q: `{ name = "GET /" } &> { kind = client }`, want: "GET /,auth,cart"},
		{q: `{ kind = server } &>> { status = error }`, want: "GET /,cache-get,cart-handle,verify"},
		{q: `{ name = "verify" } &< { }`, want: "auth,verify"},
		{q: `{ name = "verify" } &<< { }`, want: "GET /,auth,verify"},
		{q: `{ name = "db-query" } &~ { name = "cache-get" }`, want: "cache-get,db-query"},
		{q: `{ name = "render" } &> { }`, want: ""},
		// pipelines, aggregates, by, coalesce
		{q: `{ kind = client } | { status = error }`, want: "cache-get"},
		{q: `{ } | by(resource.service.name)`, want: "GET /,auth,cart,render|verify|cache-get,cart-handle,db-query",
			attrs: "by(resource.service.name)=frontend|by(resource.service.name)=auth-svc|by(resource.service.name)=cart-svc"},
		{q: `{ } | by(resource.service.name) | count() > 1`, want: "GET /,auth,cart,render|cache-get,cart-handle,db-query",
			attrs: "by(resource.service.name)=frontend count()=4|by(resource.service.name)=cart-svc count()=3"},
		{q: `{ } | by(span.http.status_code)`, want: "GET /,cart|auth|cache-get,cart-handle,db-query,render,verify",
			attrs: "by(span.http.status_code)=200|by(span.http.status_code)=401|by(span.http.status_code)=nil"},
		{q: `{ kind = client } | count() = 4`, want: "auth,cache-get,cart,db-query", attrs: "count()=4"},
		{q: `{ kind = client } | count() > 4`, want: ""},
		{q: `{ } | avg(duration) > 200ms`, want: all, attrs: "avg(duration)=211.875ms"},
		{q: `{ } | avg(duration) > 250ms`, want: ""},
		{q: `{ } | by(resource.service.name) | max(duration) > 150ms`, want: "GET /,auth,cart,render|cache-get,cart-handle,db-query"},
		{q: `{ } | by(resource.service.name) | min(duration) < 10ms`, want: "cache-get,cart-handle,db-query",
			attrs: "by(resource.service.name)=cart-svc min(duration)=5ms"},
		{q: `{ } | by(resource.service.name) | sum(span.http.status_code) = 801`, want: "GET /,auth,cart,render",
			attrs: "by(resource.service.name)=frontend sum(span.http.status_code)=801"},
		{q: `{ } | sum(span.weight) = 4`, want: all, attrs: "sum(span.weight)=4"},
		{q: `{ } | max(duration) >= min(duration) * 200`, want: all, attrs: "max(duration)=1s"},
		{q: `{ } | max(duration) > min(duration) * 200`, want: ""},
		{q: `{ duration >= 100ms } | by(kind) | count() = 1`, want: "render", attrs: "by(kind)=internal count()=1"},
		{q: `{ kind = client } | by(name) | coalesce()`, want: "auth,cache-get,cart,db-query", attrs: ""},
		{q: `({ kind = server } | count() > 2) && { name = "render" }`, want: "GET /,cart-handle,render,verify"},
		{q: `({ kind = server } | count() > 3) && { name = "render" }`, want: ""},
		{q: `{ status = error } | by(resource.service.name) | { kind = client }`, want: "cache-get",
			attrs: "by(resource.service.name)=cart-svc"},
		{q: `{ } | by(resource.service.name) | { kind = server } >> { kind = client }`, want: "auth,cart|cache-get,db-query"},
		{q: `{ name = "auth" } | select(span.peer, resource.service.name, span.missing)`, want: "auth"},
		{q: `{ } with (most_recent=true)`, want: all},
	}
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			q, err := Parse(c.q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := q.Eval(tr)
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); g != c.want {
				t.Fatalf("got %q, want %q", g, c.want)
			}
			for _, ss := range got {
				if ss.Matched != len(ss.Spans) || ss.Matched == 0 {
					t.Errorf("matched %d with %d spans", ss.Matched, len(ss.Spans))
				}
			}
			if c.attrs != "" || strings.Contains(c.q, "coalesce") {
				var parts []string
				for _, ss := range got {
					parts = append(parts, attrsString(ss.Attributes))
				}
				if g := strings.Join(parts, "|"); g != c.attrs {
					t.Errorf("attributes %q, want %q", g, c.attrs)
				}
			}
		})
	}
}

func TestEvalSelect(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(`{ name = "auth" || name = "verify" } | select(span.peer, resource.service.name, duration, span.missing)`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Eval(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Spans) != 2 {
		t.Fatalf("got %s", names(got))
	}
	want := []string{
		"span.peer=auth-svc resource.service.name=frontend duration=50ms",
		"resource.service.name=auth-svc duration=40ms",
	}
	for i, s := range got[0].Spans {
		if g := attrsString(s.Selected); g != want[i] {
			t.Errorf("span %s selected %q, want %q", s.Name, g, want[i])
		}
	}
	// select works on copies: the trace's spans are untouched.
	for _, s := range tr.Spans {
		if s.Selected != nil {
			t.Fatalf("span %s of the trace was changed", s.Name)
		}
	}
}

func TestEvalTraceFields(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Spans) != 8 || tr.Root == nil || tr.Root.Name != "GET /" {
		t.Fatalf("spans %d root %v", len(tr.Spans), tr.Root)
	}
	if tr.RootServiceName() != "frontend" || tr.RootName() != "GET /" {
		t.Errorf("root %q %q", tr.RootServiceName(), tr.RootName())
	}
	if d := time.Duration(tr.DurationNanos()); d != time.Second {
		t.Errorf("duration %v", d)
	}
	if len(tr.Root.Children) != 3 || tr.Spans[6].Parent.Name != "cart-handle" {
		t.Errorf("tree wrong")
	}
}

func TestEvalErrors(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(`({ } | by(resource.service.name)) > { }`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Eval(tr); !errors.Is(err, ErrSpansetOperationMultiple) {
		t.Errorf("grouped structural operand: %v", err)
	}
	if _, err := NewTrace([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("NewTrace accepted broken data")
	}
	empty, err := NewTrace(nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _ = Parse(`{}`)
	if got, err := q.Eval(empty); err != nil || got != nil {
		t.Errorf("empty trace: %v %v", got, err)
	}
}

func TestEvalDeterministic(t *testing.T) {
	data := buildTestTrace(t)
	queries := []string{
		`{ } | by(resource.service.name)`,
		`{ kind = server } &>> { status = error }`,
		`{ } | by(span.http.status_code) | count() >= 1 | select(span.db.system)`,
		`({ kind = server } | count() > 2) && { name = "render" } || { event:name = "flush" }`,
	}
	for _, qs := range queries {
		q, err := Parse(qs)
		if err != nil {
			t.Fatal(err)
		}
		var first []Spanset
		for i := range 20 {
			tr, err := NewTrace(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := q.Eval(tr)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = got
				if len(got) == 0 {
					t.Fatalf("%s: no result", qs)
				}
				continue
			}
			if !sameResult(first, got) {
				t.Fatalf("%s: run %d differs: %s vs %s", qs, i, names(first), names(got))
			}
			// Evaluating again on the same Trace gives the same too.
			again, err := q.Eval(tr)
			if err != nil || !sameResult(got, again) {
				t.Fatalf("%s: re-evaluation differs", qs)
			}
		}
	}
}

func sameResult(a, b []Spanset) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Matched != b[i].Matched || attrsString(a[i].Attributes) != attrsString(b[i].Attributes) ||
			len(a[i].Spans) != len(b[i].Spans) {
			return false
		}
		for j := range a[i].Spans {
			x, y := a[i].Spans[j], b[i].Spans[j]
			if x.Index() != y.Index() || x.Name != y.Name || !reflect.DeepEqual(attrsString(x.Selected), attrsString(y.Selected)) {
				return false
			}
		}
	}
	return true
}

// TestEvalParserCorpus evaluates every valid query of the parser tests: no
// panic, errors only for unsupported features, well-formed spansets.
func TestEvalParserCorpus(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, c := range validQueries {
		q, err := Parse(c.query)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		got, err := q.Eval(tr)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrSpansetOperationMultiple) {
				t.Errorf("%s: %v", c.query, err)
			}
			continue
		}
		if len(got) > 0 {
			matched++
		}
		for _, ss := range got {
			if ss.Matched != len(ss.Spans) || len(ss.Spans) == 0 {
				t.Errorf("%s: matched %d, %d spans", c.query, ss.Matched, len(ss.Spans))
			}
			for i := 1; i < len(ss.Spans); i++ {
				if ss.Spans[i-1].Index() >= ss.Spans[i].Index() {
					t.Errorf("%s: spans not in trace order or repeated", c.query)
				}
			}
		}
	}
	if matched == 0 {
		t.Error("no corpus query matched the test trace")
	}
}

func TestEvalConcurrent(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(`{ kind = server } >> { } | by(resource.service.name) | count() > 0 | select(span.db.system)`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := q.Eval(tr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 50 {
				got, err := q.Eval(tr)
				ok = ok && err == nil && sameResult(want, got)
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("concurrent evaluation differs")
		}
	}
}
