package livestore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/traceql"
)

// segmentedStore is a store of 12 pushes of spangen traces, taken 3 s
// apart on the store's clock, so that every segment but the last is
// sealed; the clock then moves on so that the last one seals too.
func segmentedStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t, DefaultConfig())
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now }
	for i := range 12 {
		td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 40, SpansPerTrace: 8, Services: 6})
		if i == 5 {
			// One span of one push has a rare value.
			td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("rare", "needle")
		}
		if i == 7 {
			// A later push adds a span to a trace of an earlier one.
			first := spangen.Generate(spangen.Options{Seed: 1, Traces: 1, SpansPerTrace: 1, Services: 1})
			sp := first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			sp.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
			sp.Attributes().PutStr("late", "yes")
			td = first
		}
		if err := s.Consume(msg("t", td)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(3 * time.Second)
	}
	return s
}

func scanIDs(t *testing.T, s *Store, sel spanpred.Selection) (map[[16]byte]bool, int64) {
	t.Helper()
	got := map[[16]byte]bool{}
	n, err := s.Scan(context.Background(), "t", sel, func(id [16]byte, _ []byte) bool {
		got[id] = true
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, n
}

// TestScanPrunesSealedSegments: a predicate no span of a sealed segment
// can satisfy (by the segment's domains) skips its traces unread, and a
// rare value is found by reading only the segments that hold it.
func TestScanPrunesSealedSegments(t *testing.T) {
	s := segmentedStore(t)
	_, all := scanIDs(t, s, spanpred.Selection{})
	for _, tc := range []struct {
		q        string
		traces   int
		maxShare float64 // of the bytes of a full scan
	}{
		{`{ resource.service.name = "no-such-service" }`, 0, 0},
		{`{ span.rare = "needle" }`, 1, 0.2},
		{`{ .late = "yes" }`, 1, 0.2},
		{`{ duration > 1h }`, 0, 0},
		{`{ span.http.response.status_code = 404 }`, 0, 0},
	} {
		root, err := traceql.Parse(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		got, n := scanIDs(t, s, spanpred.Selection{Pred: root.Predicate()})
		if len(got) != tc.traces || float64(n) > tc.maxShare*float64(all) {
			t.Errorf("%s: %d traces, %d of %d bytes tested; want %d traces, at most %.0f%% of the bytes",
				tc.q, len(got), n, all, tc.traces, 100*tc.maxShare)
		}
	}
}

// TestScanAgreesWithFullScan: with the segments' pruning, a scan finds
// exactly the traces that have a span satisfying the predicate, tested on
// every trace.
func TestScanAgreesWithFullScan(t *testing.T) {
	s := segmentedStore(t)
	// Twice: the first pass builds the columns and domains the second
	// reads, and past maxColumns fields the segments keep domains only.
	for pass := range 2 {
		for _, q := range []string{
			`{ resource.service.name = "service-2" }`,
			`{ span.http.response.status_code >= 500 && duration > 100ms }`,
			`{ status = error } >> { kind = client }`,
			`{ name = "GET /api/cart" || span.db.system = "postgresql" }`,
			`{ .http.route =~ "/api/c.*" && resource.host.name != "node-1" }`,
			`{ span.server.port = 8080 && kind = server }`,
			`{ .late = "yes" }`,
			`{ span.rare = "needle" }`,
			`{ statusMessage = "upstream returned 500" }`,
		} {
			root, err := traceql.Parse(q)
			if err != nil {
				t.Fatal(err)
			}
			pred := root.Predicate()
			m := spanpred.NewMatcher(pred)
			want := map[[16]byte]bool{}
			if _, err := s.Scan(context.Background(), "t", spanpred.Selection{}, func(id [16]byte, data []byte) bool {
				ok, err := m.Match(data)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					want[id] = true
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			got, _ := scanIDs(t, s, spanpred.Selection{Pred: pred})
			if len(got) != len(want) {
				t.Errorf("pass %d: %s: scan found %d traces, a test of every trace %d", pass, q, len(got), len(want))
				continue
			}
			for id := range want {
				if !got[id] {
					t.Errorf("pass %d: %s: scan missed trace %x", pass, q, id)
				}
			}
		}
	}
}

// TestColumnsAreACache: the columns a search keeps count in the store's
// bytes, and a push that needs their room gets it at once.
func TestColumnsAreACache(t *testing.T) {
	s := segmentedStore(t)
	before := s.Bytes()
	root, _ := traceql.Parse(`{ span.http.response.status_code = 500 && duration > 400ms }`)
	scanIDs(t, s, spanpred.Selection{Pred: root.Predicate()})
	cols := s.colBytes.Load()
	if cols <= 0 || s.Bytes() != before+cols {
		t.Fatalf("columns hold %d bytes; store %d bytes, %d before the search", cols, s.Bytes(), before)
	}
	td := spangen.Generate(spangen.Options{Seed: 77, Traces: 10, SpansPerTrace: 8})
	m := msg("t", td)
	s.cfg.MaxBytes = before + int64(len(m.Payload)) + 1
	s.cfg.BackPressureTimeout = 50 * time.Millisecond
	if err := s.Consume(m); err != nil {
		t.Fatalf("push needing the columns' room: %v", err)
	}
	if n := s.colBytes.Load(); n != 0 {
		t.Fatalf("columns still hold %d bytes", n)
	}
}

// TestSegmentsGoWithTheirTraces: once every trace a segment lists is let
// go, so is the segment; a trace started again after it was let go is not
// read through the old segment's byte ranges.
func TestSegmentsGoWithTheirTraces(t *testing.T) {
	s := segmentedStore(t)
	ts := s.tenant("t")
	if n := len(ts.segs); n < 10 {
		t.Fatalf("%d segments for 12 pushes 3 s apart, want at least 10", n)
	}
	s.evictBefore(time.Unix(1_800_000_000, 0).Add(20 * time.Second).UnixNano())
	left := len(ts.segs)
	if left > 6 {
		t.Fatalf("%d segments left after letting go of the traces of the first 7 pushes", left)
	}
	// Trace 1 of push 1 was let go; push it again, shorter.
	td := spangen.Generate(spangen.Options{Seed: 1, Traces: 1, SpansPerTrace: 1, Services: 1})
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("again", "yes")
	if err := s.Consume(msg("t", td)); err != nil {
		t.Fatal(err)
	}
	root, _ := traceql.Parse(`{ span.again = "yes" }`)
	if got, _ := scanIDs(t, s, spanpred.Selection{Pred: root.Predicate()}); len(got) != 1 {
		t.Fatalf("the trace pushed again: found %d traces, want 1", len(got))
	}
}

// TestScanWhilePushing searches while pushes seal segments and the sweep
// lets traces go (run it with -race); at the end a search still finds
// exactly the traces with a matching span.
func TestScanWhilePushing(t *testing.T) {
	s := newStore(t, DefaultConfig())
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).UnixNano())
	s.clock = func() time.Time { return time.Unix(0, clock.Load()) }
	root, _ := traceql.Parse(`{ span.http.response.status_code = 500 && resource.service.name != "service-0" }`)
	pred := root.Predicate()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 30 {
			td := spangen.Generate(spangen.Options{Seed: uint64(100 + i), Traces: 20, SpansPerTrace: 8, Services: 4})
			if err := s.Consume(msg("t", td)); err != nil {
				t.Error(err)
				return
			}
			clock.Add(int64(700 * time.Millisecond))
			if i%10 == 9 {
				s.evictBefore(clock.Load() - int64(5*time.Second))
			}
		}
	}()
	for searching := true; searching; {
		select {
		case <-done:
			searching = false
		default:
		}
		scanIDs(t, s, spanpred.Selection{Pred: pred})
	}
	m := spanpred.NewMatcher(pred)
	want := 0
	if _, err := s.Scan(context.Background(), "t", spanpred.Selection{}, func(_ [16]byte, data []byte) bool {
		if ok, _ := m.Match(data); ok {
			want++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := scanIDs(t, s, spanpred.Selection{Pred: pred}); len(got) != want || want == 0 {
		t.Fatalf("found %d traces, %d have a matching span", len(got), want)
	}
}
