package search

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/traceql"
)

// pushdownQueries cover conditions on every kind of column (intrinsics,
// dedicated and generic attributes of both scopes, unscoped attributes),
// conditions storage cannot read, and matches that are common, rare and
// absent.
var pushdownQueries = []string{
	`{ resource.service.name = "service-1" }`,
	`{ resource.service.name = "nope" }`,
	`{ span.http.response.status_code >= 500 && duration > 100ms }`,
	`{ span.http.response.status_code = 404 }`,
	`{ .http.response.status_code = 500 }`,
	`{ span.db.system = "postgresql" } >> { status = error }`,
	`{ name = "GET /healthz" } && { kind = server }`,
	`{ status = error && statusMessage =~ "upstream.*" }`,
	`{ duration > 490ms }`,
	`{ duration > 10s }`,
	`{ resource.host.name = "node-2" && span.server.port = 8080 }`,
	`{ resource.host.name = "node-9" }`,
	`{ span.server.port > 9000 || name = "GET /api/cart" }`,
	`{ resource.k8s.namespace.name != "shop" }`,
	`{ span.db.statement =~ ".*products.*" && kind = client } | count() > 1`,
	`{ kind = client } | count() >= 3`,
	`{ status = error } | count() = 2`,
	`{ event:name = "exception" }`,
	`{ trace:rootName = "GET /healthz" }`,
	`{ nestedSetRight - nestedSetLeft = 1 && duration > 100ms }`,
	`{ nestedSetParent > 1 && status = error } || { nestedSetParent = -1 && name = "GET /healthz" }`,
	`{ span.http.request.method = nil }`,
	`{ .server.port = 8080.0 }`,
	`{ span.url.path = "/api/orders" } | by(resource.service.name)`,
	`{}`,
}

// TestPushdownAgreesWithFullRead checks, on a block of many row groups,
// that a Scan with each query's condition finds exactly the matching
// traces that evaluating every trace of the block finds, and that
// selective conditions skip row groups.
func TestPushdownAgreesWithFullRead(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	for seed := range uint64(4) {
		var b otlpwire.Batch
		if err := b.Parse(spangen.Marshal(spangen.Generate(spangen.Options{Seed: seed, Traces: 150, SpansPerTrace: 8}))); err != nil {
			t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.RowGroups) < 8 {
		t.Fatalf("only %d row groups", len(meta.RowGroups))
	}
	r, err := block.Open(ctx, bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	all, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	whole := map[[16]byte][][]byte{}
	if err := splitByTrace(all, whole); err != nil {
		t.Fatal(err)
	}

	for _, text := range pushdownQueries {
		root, err := traceql.Parse(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		matches := func(data []byte) bool {
			tr, err := traceql.NewTrace(data)
			if err != nil {
				t.Fatal(err)
			}
			sets, err := root.Eval(tr)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			return len(sets) > 0
		}
		var want, got []string
		for id, parts := range whole {
			if matches(parts[0]) {
				want = append(want, traceIDString(id))
			}
		}
		cond := root.Predicate()
		st, err := r.Scan(ctx, block.ScanRequest{Selection: spanpred.Selection{Pred: cond, MinSpans: root.MinSpans()}}, func(id [16]byte, data []byte) error {
			if matches(data) {
				got = append(got, traceIDString(id))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s (condition %v): scan found %d traces, full read %d", text, cond, len(got), len(want))
		}
		if len(want) == 0 && cond != nil && st.RowGroupsPruned == 0 && st.SpansMatched == 0 {
			// Nothing matches: every row group pruned or every span refused.
			t.Logf("%s: %+v", text, st)
		}
		if st.BytesRead == 0 && st.RowGroups != st.RowGroupsPruned {
			t.Errorf("%s: no bytes counted: %+v", text, st)
		}
		t.Logf("%-70s matches %4d  %+v", text, len(want), st)
	}

	// Absent values are ruled out from dictionaries and statistics alone.
	for _, text := range []string{`{ resource.service.name = "nope" }`, `{ duration > 10s }`, `{ resource.host.name = "node-9" }`, `{ span.http.response.status_code = 404 }`} {
		root, _ := traceql.Parse(text)
		st, err := r.Scan(ctx, block.ScanRequest{Selection: spanpred.Selection{Pred: root.Predicate()}}, func([16]byte, []byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if st.RowGroupsPruned != st.RowGroups && text != `{ resource.host.name = "node-9" }` {
			t.Errorf("%s: pruned %d of %d row groups, want all", text, st.RowGroupsPruned, st.RowGroups)
		}
		if st.SpansMatched != 0 {
			t.Errorf("%s: %d spans matched", text, st.SpansMatched)
		}
	}
}

// TestPagePruning checks that pages whose statistics rule the condition
// out are skipped in a row group that cannot be pruned whole, and that the
// traces found are still exactly the matching ones.
func TestPagePruning(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Trace i (ID i, so in this order in the block) has one span lasting
	// i ms: durations grow along the rows, so pages have narrow bounds.
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	const n = 4000
	for i := range n {
		sp := spans.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Millisecond)))
		sp.Attributes().PutInt("n", int64(i))
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{PageBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.RowGroups) != 1 {
		t.Fatalf("%d row groups, want 1", len(meta.RowGroups))
	}
	r, err := block.Open(ctx, bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`{ duration >= 3900ms }`, 100},
		{`{ duration < 50ms && span.n >= 0 }`, 50},
		{`{ duration > 1s && duration <= 1010ms }`, 10},
	} {
		root, err := traceql.Parse(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		st, err := r.Scan(ctx, block.ScanRequest{Selection: spanpred.Selection{Pred: root.Predicate()}}, func(_ [16]byte, data []byte) error {
			tr, err := traceql.NewTrace(data)
			if err != nil {
				return err
			}
			if sets, err := root.Eval(tr); err != nil || len(sets) > 0 {
				found++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if found != tc.want {
			t.Errorf("%s: found %d traces, want %d", tc.q, found, tc.want)
		}
		if st.RowGroupsPruned != 0 || st.SpansPruned < n/2 || st.SpansTested+st.SpansPruned != n {
			t.Errorf("%s: want most spans pruned from page bounds: %+v", tc.q, st)
		}
		t.Logf("%s: %+v", tc.q, st)
	}
}
