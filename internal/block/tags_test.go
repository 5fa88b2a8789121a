package block

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// openRich writes richTraces as a block and opens it.
func openRich(t *testing.T) (*Reader, *spyBucket) {
	t.Helper()
	ctx := context.Background()
	bkt := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	addTraces(t, buf, richTraces())
	meta, err := Write(ctx, bkt, "t", uuid.New(), Source{}, buf, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	return r, bkt
}

func TestTagNames(t *testing.T) {
	r, _ := openRich(t)
	ctx := context.Background()
	names, n, err := r.TagNames(ctx, TagScopeSpan|TagScopeResource|TagScopeInstrumentation)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("bytes read %d", n)
	}
	// Dedicated columns with a value contribute their name (url.path even
	// with an empty string); http.url, http.route... hold nothing.
	wantSpan := []string{"array", "bool", "bytes", "double", "empty", "http.request.method", "http.response.status_code",
		"http.status_code", "int", "map", "nan", "str", "url.path"}
	if !slices.Equal(names.Span, wantSpan) {
		t.Errorf("span names %q, want %q", names.Span, wantSpan)
	}
	wantRes := []string{"k8s.cluster.name", "k8s.container.name", "process.command_args", "process.pid", "service.name"}
	if !slices.Equal(names.Resource, wantRes) {
		t.Errorf("resource names %q, want %q", names.Resource, wantRes)
	}
	if !slices.Equal(names.Instrumentation, []string{"scope.flag"}) {
		t.Errorf("instrumentation names %q", names.Instrumentation)
	}
	if names.Event != nil || names.Link != nil {
		t.Errorf("event/link names read without being asked: %q %q", names.Event, names.Link)
	}
	names, _, err = r.TagNames(ctx, TagScopeEvent|TagScopeLink)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names.Event, []string{"ev.n"}) || !slices.Equal(names.Link, []string{"link.attr"}) || names.Span != nil {
		t.Errorf("event %q link %q span %q", names.Event, names.Link, names.Span)
	}
}

func tagValueStrings(vs []TagValue) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Type.String()+":"+v.Value)
	}
	slices.Sort(out)
	return out
}

func TestTagValues(t *testing.T) {
	r, _ := openRich(t)
	ctx := context.Background()
	for _, tc := range []struct {
		scopes TagScope
		key    string
		want   string
	}{
		// service.name: a string in its column, an int in the generic list.
		{TagScopeSpan | TagScopeResource, "service.name", "int:7,string:rich"},
		{TagScopeSpan, "service.name", ""},
		{TagScopeResource, "k8s.cluster.name", "string:prod-eu"},
		{TagScopeSpan, "http.status_code", "int:201"},
		{TagScopeSpan, "http.response.status_code", "string:201"},
		{TagScopeSpan, "double", "double:3.25"},
		{TagScopeSpan, "bool", "bool:true"},
		{TagScopeSpan, "int", "int:-42"},
		{TagScopeResource, "process.pid", "int:4242"},
		{TagScopeSpan, "missing", ""},
		{TagScopeInstrumentation, "scope.flag", "bool:true"},
		{TagScopeEvent, "ev.n", "int:1"},
		{TagScopeLink, "link.attr", "string:la"},
	} {
		vs, _, err := r.TagValues(ctx, tc.scopes, tc.key)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		if got := strings.Join(tagValueStrings(vs), ","); got != tc.want {
			t.Errorf("%s in %b: %q, want %q", tc.key, tc.scopes, got, tc.want)
		}
	}
}

func TestIntrinsicValues(t *testing.T) {
	r, _ := openRich(t)
	ctx := context.Background()
	for _, tc := range []struct {
		which IntrinsicColumn
		want  []string
	}{
		{IntrinsicSpanName, []string{"", "rich span <&>"}},
		{IntrinsicStatusMessage, []string{"", "fine"}},
		{IntrinsicEventName, []string{"ev1", "ev2"}},
		{IntrinsicScopeName, []string{"", "rich-scope-a", "rich-scope-b"}},
		{IntrinsicScopeVersion, []string{"", "v9"}},
	} {
		got, _, err := r.IntrinsicValues(ctx, tc.which)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("intrinsic %d: %q, want %q", tc.which, got, tc.want)
		}
	}
}

// TestTagNamesReadsLittle checks that names of span and resource attributes
// come from dictionary pages, not from the raw span column.
func TestTagNamesReadsLittle(t *testing.T) {
	r, bkt := openRich(t)
	ctx := context.Background()
	if _, _, err := r.TagNames(ctx, TagScopeSpan); err != nil { // loads the footer
		t.Fatal(err)
	}
	bkt.reads() // forget
	_, n, err := r.TagNames(ctx, TagScopeSpan|TagScopeResource)
	if err != nil {
		t.Fatal(err)
	}
	_, after := bkt.reads()
	read := rangeBytes(after)
	f, cols, _ := r.loadFile(ctx)
	spanCol := chunkMeta(f, 0, cols.span)
	if read != n {
		t.Errorf("counted %d bytes, the bucket served %d", n, read)
	}
	for _, rg := range after {
		if rg.off <= spanCol.DataPageOffset && spanCol.DataPageOffset < rg.off+rg.len {
			t.Errorf("read the span column: range %+v", rg)
		}
	}
}
