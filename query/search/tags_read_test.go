package search

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// A tag request reading whole traces (a v2 filter, rootServiceName values)
// stops reading blocks once it holds MaxReadBytes of traces, and answers
// what it read, saying so and naming the key; without the cap it reads
// every block (it held every trace of the range in memory).
func TestTagReadBytes(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		tid := pcommon.TraceID{byte(i + 1)}
		e.block(mkTrace(tid, spanDef{id: 1, service: fmt.Sprintf("svc-%d", i), name: "op", start: time.Duration(i) * time.Second, dur: time.Second, attr: "red"}))
	}
	ctx := context.Background()
	req := everything
	req.Name = "resource.service.name"
	req.Query = `{ span.color = "red" }`
	all, err := e.s.TagValuesV2(ctx, req, "t")
	if err != nil || len(all.TagValues) != 4 || all.Truncated != "" {
		t.Fatalf("without a cap: %+v %v", all, err)
	}
	req.MaxReadBytes = 1 // one block, then the cap is reached
	cut, err := e.s.TagValuesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(cut.TagValues) != 1 || !strings.Contains(cut.Truncated, "(query_frontend.search.max_tag_read_bytes)") || cut.Metrics.CompletedJobs != 2 {
		t.Fatalf("with a cap: values %v, truncated %q, metrics %+v", cut.TagValues, cut.Truncated, cut.Metrics)
	}
	// v1 root.service.name values read whole traces too.
	v1 := everything
	v1.Name = "root.service.name"
	v1.MaxReadBytes = 1
	r1, err := e.s.TagValues(ctx, v1, "t")
	if err != nil || len(r1.TagValues) != 1 || !strings.Contains(r1.Truncated, "max_tag_read_bytes") {
		t.Fatalf("v1 rootServiceName: %+v %v", r1, err)
	}
	v1.MaxReadBytes = 0
	if r1, err = e.s.TagValues(ctx, v1, "t"); err != nil || !slices.Equal(r1.TagValues, []string{"svc-0", "svc-1", "svc-2", "svc-3"}) {
		t.Fatalf("v1 rootServiceName without a cap: %+v %v", r1, err)
	}
}
