package block

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spanpred"
)

// eqPred is `field = want`, as the engine's condition tests it: per span,
// and per range from the domain (listed values, bounds, or MayHold).
type eqPred struct {
	field spanpred.Field
	want  spanpred.Value
}

func (p eqPred) Fields() []spanpred.Field { return []spanpred.Field{p.field} }

func (p eqPred) Match(row []spanpred.Value) bool {
	return row[0].Kind == spanpred.Unknown || mayEqual(row[0], p.want)
}

func (p eqPred) MayMatch(d []spanpred.Domain) bool {
	switch {
	case d[0].Known && !d[0].Bounded:
		return slices.ContainsFunc(d[0].Values, func(v spanpred.Value) bool { return mayEqual(v, p.want) })
	case !d[0].Known && d[0].MayHold != nil:
		return d[0].MayHold(p.want)
	}
	return true
}

// filterBlock writes a block of about 11 row groups whose spans each have a
// unique request ID (random: the row group's dictionary page of span
// attribute values is over filterFirstBytes), a unique int, a unique
// double and a unique url.path (a dedicated column).
func filterBlock(t *testing.T, filters bool) (*Reader, *spyBucket) {
	t.Helper()
	defer func(old bool) { writeFilters = old }(writeFilters)
	writeFilters = filters
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	const n = 48_000
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		sp := spans.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], uint64(i/4+1))
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i%4 + 1)})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Millisecond)))
		sp.Attributes().PutStr("req.id", reqID(i))
		sp.Attributes().PutInt("n", int64(1_000_000+i))
		sp.Attributes().PutDouble("x", float64(2_000_000+i))
		sp.Attributes().PutStr("url.path", urlPath(i))
		sp.Attributes().PutStr("common", "yes")
	}
	bkt := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	addTraces(t, buf, td)
	meta, err := Write(context.Background(), bkt, "t", uuid.New(), Source{}, buf, WriteOptions{RowGroupBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.RowGroups) < 8 {
		t.Fatalf("%d row groups, want at least 8", len(meta.RowGroups))
	}
	r, err := Open(context.Background(), bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	return r, bkt
}

// reqID and urlPath are unique values that do not compress (so that
// dictionary pages are big, as those of real request IDs).
func reqID(i int) string   { return "request-" + noise(i, 1) }
func urlPath(i int) string { return "/orders/" + noise(i, 2) }

func noise(i, salt int) string {
	rng := rand.New(rand.NewPCG(uint64(i), uint64(salt)))
	return fmt.Sprintf("%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64())
}

// scanIDs scans r with a context of its own, cancelled when it returns
// (as a request's): what the reader keeps must not depend on it.
func scanIDs(t *testing.T, r *Reader, p spanpred.Predicate) ([][16]byte, ScanStats) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids [][16]byte
	st, err := r.Scan(ctx, ScanRequest{Selection: spanpred.Selection{Pred: p}}, func(id [16]byte, _ []byte) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, st
}

// TestValueFilters checks that a search for a rare value of a
// high-cardinality attribute skips the row groups whose value filter
// rules it out, reading a fraction of what it reads without filters, and
// that every search finds the same traces with and without filters.
func TestValueFilters(t *testing.T) {
	with, _ := filterBlock(t, true)
	without, _ := filterBlock(t, false)
	span := func(name string) spanpred.Field { return spanpred.Field{Name: name} }
	cases := []struct {
		name  string
		pred  eqPred
		found int  // traces
		prune bool // every row group but the one holding it is skipped with filters
	}{
		{"rare string", eqPred{span("req.id"), spanpred.StringValue(reqID(40_001))}, 1, true},
		{"absent string", eqPred{span("req.id"), spanpred.StringValue("request-none")}, 0, true},
		{"rare int", eqPred{span("n"), spanpred.IntValue(1_000_000 + 40_001)}, 1, true},
		{"int as double", eqPred{span("n"), spanpred.FloatValue(1_000_000 + 40_001)}, 1, true},
		{"double as int", eqPred{span("x"), spanpred.IntValue(2_000_000 + 123)}, 1, true},
		{"rare dedicated column", eqPred{span("url.path"), spanpred.StringValue(urlPath(7))}, 1, true},
		{"common value", eqPred{span("common"), spanpred.StringValue("yes")}, 12_000, false},
		{"string that looks like an int", eqPred{span("n"), spanpred.StringValue("1040001")}, 0, false},
	}
	// Twice: the second time the reader has its footer and filter
	// headers, read under the first scan's context.
	cases = append(cases, cases...)
	for _, c := range cases {
		got, st := scanIDs(t, with, c.pred)
		want, stNo := scanIDs(t, without, c.pred)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d traces with filters, %d without", c.name, len(got), len(want))
		}
		if len(got) != c.found {
			t.Errorf("%s: %d traces found, want %d", c.name, len(got), c.found)
		}
		t.Logf("%-30s with filters: %2d of %d row groups pruned (%2d by filters), %8d bytes read; without: %2d pruned, %8d bytes",
			c.name, st.RowGroupsPruned, st.RowGroups, st.RowGroupsFiltered, st.BytesRead, stNo.RowGroupsPruned, stNo.BytesRead)
		if !c.prune {
			continue
		}
		if stNo.RowGroupsFiltered != 0 {
			t.Errorf("%s: %d row groups pruned by filters in a block without them", c.name, stNo.RowGroupsFiltered)
		}
		if st.RowGroupsFiltered < st.RowGroups-c.found {
			t.Errorf("%s: %d of %d row groups pruned by their value filters, want all but %d", c.name, st.RowGroupsFiltered, st.RowGroups, c.found)
		}
		if st.BytesRead*4 > stNo.BytesRead {
			t.Errorf("%s: %d bytes read with filters, %d without: want under a quarter", c.name, st.BytesRead, stNo.BytesRead)
		}
	}
}

func TestFilterTexts(t *testing.T) {
	for _, c := range []struct {
		v    spanpred.Value
		want []string
	}{
		{spanpred.StringValue("a b"), []string{"a b"}},
		{spanpred.IntValue(500), []string{"500", "500"}},
		{spanpred.FloatValue(500), []string{"500", "500"}},
		{spanpred.FloatValue(0.5), []string{"0.5"}},
		{spanpred.FloatValue(1e21), nil},
		{spanpred.IntValue(1 << 60), nil},
		{spanpred.BoolValue(true), []string{"true"}},
		{spanpred.UnknownValue(), nil},
	} {
		got, ok := filterTexts(c.v)
		if !slices.Equal(got, c.want) || ok != (c.want != nil) {
			t.Errorf("filterTexts(%+v) = %q, %v; want %q", c.v, got, ok, c.want)
		}
	}
}

// TestMinSpans checks that a scan with Selection.MinSpans hands over every
// trace with that many spans passing the predicate, drops the others
// (but for traces cut over row groups, whose rows are not all counted)
// and reads less for it, in block order and newest first.
func TestMinSpans(t *testing.T) {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const traces = 3000
	want := map[[16]byte]bool{}
	for i := range traces {
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], uint64(i+1))
		hits := 0 // spans with e = "true": 3 in few traces, 1 in some
		switch {
		case i%97 == 0:
			hits = 3
		case i%7 == 0:
			hits = 1
		}
		if hits >= 3 {
			want[tid] = true
		}
		for j := range 6 {
			sp := spans.AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(j + 1)})
			sp.SetName("op")
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Second)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i)*time.Second + time.Millisecond)))
			sp.Attributes().PutStr("e", fmt.Sprint(j < hits))
			sp.Attributes().PutStr("pad", noise(i*6+j, 3))
		}
	}
	bkt := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	addTraces(t, buf, td)
	meta, err := Write(context.Background(), bkt, "t", uuid.New(), Source{}, buf, WriteOptions{RowGroupBytes: 256 << 10, PageBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), bkt, meta)
	if err != nil {
		t.Fatal(err)
	}
	pred := eqPred{spanpred.Field{Name: "e"}, spanpred.StringValue("true")}
	for _, newest := range []bool{false, true} {
		scan := func(min int) (map[[16]byte]bool, ScanStats) {
			got := map[[16]byte]bool{}
			st, err := r.Scan(context.Background(), ScanRequest{Selection: spanpred.Selection{Pred: pred, MinSpans: min}, NewestFirst: newest},
				func(id [16]byte, _ []byte) error {
					got[id] = true
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			return got, st
		}
		all, stAll := scan(0)
		got, st := scan(3)
		for id := range want {
			if !got[id] {
				t.Errorf("newest first %v: trace %x with 3 or more matching spans not handed over", newest, id)
			}
		}
		// Traces cut over row groups are handed over whatever their count.
		if extra := len(got) - len(want); extra < 0 || extra > 2*len(meta.RowGroups) {
			t.Errorf("newest first %v: %d traces handed over, want %d (+ at most 2 per row group)", newest, len(got), len(want))
		}
		t.Logf("newest first %v: MinSpans 3: %d traces, %d bytes; without: %d traces, %d bytes (%d row groups)",
			newest, len(got), st.BytesRead, len(all), stAll.BytesRead, len(meta.RowGroups))
		if st.BytesRead*4 > stAll.BytesRead*3 {
			t.Errorf("newest first %v: %d bytes read with MinSpans 3, %d without", newest, st.BytesRead, stAll.BytesRead)
		}
	}
}

// TestValueFiltersCompacted checks that a compacted block has value
// filters too: a block without them, compacted, prunes by filters.
func TestValueFiltersCompacted(t *testing.T) {
	without, bkt := filterBlock(t, false)
	res, err := Compact(context.Background(), bkt, []*Meta{without.meta}, CompactOptions{WriteOptions: WriteOptions{RowGroupBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), bkt, res.Meta)
	if err != nil {
		t.Fatal(err)
	}
	pred := eqPred{spanpred.Field{Name: "req.id"}, spanpred.StringValue(reqID(40_001))}
	got, st := scanIDs(t, r, pred)
	want, _ := scanIDs(t, without, pred)
	if len(got) != 1 || !slices.Equal(got, want) {
		t.Errorf("compacted block: %d traces found, want the 1 of its input", len(got))
	}
	if st.RowGroupsFiltered < st.RowGroups-1 {
		t.Errorf("compacted block: %d of %d row groups pruned by filters", st.RowGroupsFiltered, st.RowGroups)
	}
}
