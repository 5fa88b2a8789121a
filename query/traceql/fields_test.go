package traceql

import (
	"reflect"
	"testing"
)

func TestFields(t *testing.T) {
	f := func(query string, want ...FieldRef) {
		t.Helper()
		got := MustParse(query).Fields()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Fields(%q)\n got %+v\nwant %+v", query, got, want)
		}
	}
	f(`{}`)
	f(`{ true } | count() > 1`)
	f(`{ span.http.status_code >= 500 && resource.service.name = "api" } | avg(duration) > 1s | by(.region) | select(span:id, duration)`,
		FieldRef{Scope: ScopeSpan, Name: "http.status_code"},
		FieldRef{Scope: ScopeResource, Name: "service.name"},
		FieldRef{Scope: ScopeSpan, Name: "duration", Intrinsic: IntrinsicDuration},
		FieldRef{Scope: ScopeNone, Name: "region"},
		FieldRef{Scope: ScopeSpan, Name: "span:id", Intrinsic: IntrinsicSpanID},
	)
	// spellings of one intrinsic are one field; an attribute named like
	// an intrinsic is another
	f(`{ duration > 1s && span:duration < 2s && span.duration = 3 }`,
		FieldRef{Scope: ScopeSpan, Name: "duration", Intrinsic: IntrinsicDuration},
		FieldRef{Scope: ScopeSpan, Name: "duration"},
	)
	f(`{ .a != nil } >> { event:name = "exception" && trace:id = "1" } || { link.x = 1 && instrumentation:version = "2" }`,
		FieldRef{Scope: ScopeNone, Name: "a"},
		FieldRef{Scope: ScopeEvent, Name: "event:name", Intrinsic: IntrinsicEventName},
		FieldRef{Scope: ScopeTrace, Name: "trace:id", Intrinsic: IntrinsicTraceID},
		FieldRef{Scope: ScopeLink, Name: "x"},
		FieldRef{Scope: ScopeInstrumentation, Name: "instrumentation:version", Intrinsic: IntrinsicInstrumentationVersion},
	)
	f(`{ span."a b" = 1 && traceDuration > 1s && rootServiceName = "x" }`,
		FieldRef{Scope: ScopeSpan, Name: "a b"},
		FieldRef{Scope: ScopeTrace, Name: "traceDuration", Intrinsic: IntrinsicTraceDuration},
		FieldRef{Scope: ScopeTrace, Name: "rootServiceName", Intrinsic: IntrinsicTraceRootService},
	)
}

func TestFieldRefString(t *testing.T) {
	for _, c := range []struct {
		ref  FieldRef
		want string
	}{
		{FieldRef{Scope: ScopeSpan, Name: "http.method"}, "span.http.method"},
		{FieldRef{Name: "a b"}, `."a b"`},
		{FieldRef{Scope: ScopeSpan, Intrinsic: IntrinsicDuration, Name: "duration"}, "duration"},
		{FieldRef{Scope: ScopeTrace, Intrinsic: IntrinsicTraceID, Name: "trace:id"}, "trace:id"},
	} {
		if got := c.ref.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.ref, got, c.want)
		}
	}
}

func TestConjuncts(t *testing.T) {
	f := func(query string, want ...string) {
		t.Helper()
		filters := MustParse(query).SpansetFilters()
		var got []string
		for _, sf := range filters {
			for _, c := range sf.Conjuncts() {
				got = append(got, c.String())
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("conjuncts of %q\n got %q\nwant %q", query, got, want)
		}
	}
	f(`{}`)
	f(`{ .a = 1 }`, `.a = 1`)
	f(`{ .a = 1 && (.b = 2 || .c = 3) && duration > 1s }`, `.a = 1`, `.b = 2 || .c = 3`, `duration > 1s`)
	// && and || share a precedence level: a || b && c is (a || b) && c
	f(`{ .a = 1 || .b = 2 && .c = 3 }`, `.a = 1 || .b = 2`, `.c = 3`)
	f(`{ .a = 1 && .b = 2 || .c = 3 }`, `.a = 1 && .b = 2 || .c = 3`)
	f(`{ .a != nil && !(.b = 1) } >> { status = error } | { .c = "x" }`, `.a != nil`, `!(.b = 1)`, `status = error`, `.c = "x"`)
}

func TestInspectVisitsEverything(t *testing.T) {
	r := MustParse(`({ .a = 1 && -.b > 2 && .c != nil } | count() > 1 + sum(.d)) >> ({ } | by(.e) | coalesce() | select(.f)) with (debug=true)`)
	counts := map[string]int{}
	Inspect(r, func(n Node) bool {
		counts[reflect.TypeOf(n).Elem().Name()]++
		return true
	})
	want := map[string]int{
		"RootExpr": 1, "Pipeline": 3, "SpansetOp": 1, "SpansetFilter": 2, "BinaryExpr": 4,
		"UnaryExpr": 1, "NilCheck": 1, "Attribute": 6, "Static": 4, "ScalarFilter": 1,
		"ScalarBinary": 1, "Aggregate": 2, "GroupBy": 1, "Coalesce": 1, "Select": 1, "Hints": 1, "Hint": 1,
	}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("Inspect visited %v\nwant %v", counts, want)
	}
}
