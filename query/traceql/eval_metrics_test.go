package traceql

import (
	"slices"
	"strings"
	"testing"
)

func TestEvalMetricsHelpers(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	field := func(text string) *Attribute {
		root, err := Parse("{ } | select(" + text + ")")
		if err != nil {
			t.Fatal(err)
		}
		return root.Pipeline.Stages[1].(*Select).Fields[0]
	}
	render := tr.Spans[3] // render: span env "span-env", resource env "prod"
	for _, c := range []struct {
		field string
		span  *Span
		want  string
	}{
		{".env", render, "span-env"},     // unscoped: the span's first
		{"resource.env", render, "prod"}, //
		{".region", render, "eu"},        // unscoped: the resource's when the span has none
		{"span.region", render, "nil"},   // missing
		{"duration", render, "100ms"},    //
		{"resource.service.name", tr.Spans[4], "auth-svc"},
		{"span:id", tr.Spans[0], hexSpanID(0)},
	} {
		if got := field(c.field).ValueOn(tr, c.span).String(); got != c.want {
			t.Errorf("%s on %s: %s, want %s", c.field, c.span.Name, got, c.want)
		}
	}
	root, err := Parse(`{ span.http.status_code >= 400 || status = error }`)
	if err != nil {
		t.Fatal(err)
	}
	f := root.Pipeline.Stages[0].(*SpansetFilter)
	var matched []string
	for _, s := range tr.Spans {
		ok, err := f.MatchesSpan(tr, s)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			matched = append(matched, s.Name)
		}
	}
	if got := strings.Join(matched, ","); got != "auth,verify,cache-get" {
		t.Errorf("matched %s", got)
	}
	var keys []string
	tr.Spans[4].EachAttribute(tr, func(a *Attribute, v Value) {
		keys = append(keys, a.String()+"="+v.String())
	})
	// The order of the attributes within a scope is not part of the
	// contract: compare them sorted.
	want := `span.user.id=42,resource.service.name=auth-svc,resource.env=prod,name=verify,status=error,kind=server,statusMessage=bad token`
	for i := range keys {
		keys[i] = strings.ReplaceAll(keys[i], `"`, "")
	}
	wantKeys := strings.Split(want, ",")
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if got := strings.Join(keys, ","); got != strings.Join(wantKeys, ",") {
		t.Errorf("attributes:\n%s\nwant\n%s", got, want)
	}
	v := field("name").ValueOn(tr, render)
	if c := v.Clone(); c.Str != v.Str || !SameGroup(c, v) {
		t.Error("Clone")
	}
}
