package search

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weftdb/weft/internal/spangen"
)

// TestLiveTagsFromSegments: tag names and values over the live-store come
// from what each sealed segment recorded the first time, and are the same
// as the first walk's; only the open segment is read again.
func TestLiveTagsFromSegments(t *testing.T) {
	e := newEnv(t)
	// 21,000 spans fill a segment; the next push opens another.
	e.live(spangen.Generate(spangen.Options{Seed: 1, Traces: 2100, SpansPerTrace: 10}))
	td := spangen.Generate(spangen.Options{Seed: 2, Traces: 1, SpansPerTrace: 2})
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("fresh", "yes")
	e.live(td)

	ctx := context.Background()
	names := func() (string, uint64) {
		resp, err := e.s.TagNamesV2(ctx, TagsRequest{}, "t")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(resp.Scopes)
		return string(b), resp.Metrics.InspectedBytes
	}
	values := func(name string) (string, uint64) {
		resp, err := e.s.TagValuesV2(ctx, TagsRequest{Name: name}, "t")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(resp.TagValues)
		return string(b), resp.Metrics.InspectedBytes
	}
	first, firstBytes := names()
	again, againBytes := names()
	if first != again {
		t.Fatalf("tag names differ the second time:\n%s\n%s", first, again)
	}
	if againBytes*10 > firstBytes {
		t.Fatalf("second tag names request read %d bytes, the first %d: the sealed segment was walked again", againBytes, firstBytes)
	}
	for _, want := range []string{`"fresh"`, `"http.route"`, `"service.name"`} {
		if !json.Valid([]byte(again)) || !strings.Contains(again, want) {
			t.Fatalf("tag names %s lack %s", again, want)
		}
	}
	for _, name := range []string{"span.http.route", "resource.service.name", ".fresh"} {
		v1, b1 := values(name)
		v2, b2 := values(name)
		if v1 != v2 || v1 == "null" {
			t.Fatalf("%s: values %s then %s", name, v1, v2)
		}
		if b2*10 > b1 {
			t.Fatalf("%s: second request read %d bytes, the first %d", name, b2, b1)
		}
	}
}
