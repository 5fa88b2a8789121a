package livestore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/query/traceql"
)

func genTraces(seed uint64, traces int) ptrace.Traces {
	return spangen.Generate(spangen.Options{Seed: seed, Traces: traces, SpansPerTrace: 8, Services: 4})
}

// snapshot is what a store answers: every trace's bytes by ID, and the IDs
// a few searches find.
type snapshot struct {
	traces   map[[16]byte][]byte
	searches map[string]map[[16]byte]bool
	parts    int // bytes walked by EachPart
}

func takeSnapshot(t *testing.T, s *Store) snapshot {
	t.Helper()
	snap := snapshot{traces: map[[16]byte][]byte{}, searches: map[string]map[[16]byte]bool{}}
	if _, err := s.Scan(context.Background(), "t", spanpred.Selection{}, func(id [16]byte, data []byte) bool {
		snap.traces[id] = data
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for id, data := range snap.traces {
		got, err := s.FindTraceByID(context.Background(), "t", id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("trace %x: FindTraceByID gives %d bytes, Scan %d", id, len(got), len(data))
		}
	}
	for _, q := range []string{`{ span.rare = "needle" }`, `{ span.late = "yes" }`, `{ resource.service.name = "service-1" }`, `{ span.rare = "nothing" }`} {
		root, err := traceql.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		snap.searches[q], _ = scanIDs(t, s, spanpred.Selection{Pred: root.Predicate()})
	}
	if err := s.EachPart(context.Background(), "t", func(p spanpred.Part) bool {
		p.EachData(func(data []byte) bool { snap.parts += len(data); return true })
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return snap
}

// Segments moved to disk answer every read as they did from memory: each
// trace's bytes (a trace with spans in two segments included), searches,
// and the walk of every part; the memory they held is freed and counted
// on disk instead.
func TestSpilledSegmentsAnswerAsInMemory(t *testing.T) {
	s := segmentedStore(t)
	before := takeSnapshot(t, s)
	if len(before.traces) < 400 || len(before.searches[`{ span.rare = "needle" }`]) != 1 || len(before.searches[`{ span.late = "yes" }`]) != 1 {
		t.Fatalf("unexpected store: %d traces, searches %v", len(before.traces), before.searches)
	}
	memBefore, tracesBefore := s.Bytes(), testutil.ToFloat64(s.m.traces.WithLabelValues("t"))

	s.Spill(s.clock().UnixNano() + 1) // every sealed segment: all of them
	if n := testutil.ToFloat64(s.m.spilled); n < 10 {
		t.Fatalf("%v segments spilled, want all 12", n)
	}
	if s.diskBytes.Load() == 0 {
		t.Fatal("no bytes on disk after the spill")
	}
	if mem := s.Bytes(); mem > memBefore/4 {
		t.Fatalf("the store holds %d bytes after the spill, %d before: the data did not leave the memory", mem, memBefore)
	}
	if n := testutil.ToFloat64(s.m.traces.WithLabelValues("t")); n != 0 || tracesBefore == 0 {
		t.Fatalf("traces in memory: %v after the spill (%v before), want 0", n, tracesBefore)
	}
	after := takeSnapshot(t, s)
	if len(after.traces) != len(before.traces) || after.parts != before.parts {
		t.Fatalf("after the spill: %d traces, %d bytes walked; before %d, %d", len(after.traces), after.parts, len(before.traces), before.parts)
	}
	for id, data := range before.traces {
		if !bytes.Equal(after.traces[id], data) {
			t.Fatalf("trace %x changed by the spill", id)
		}
	}
	for q, ids := range before.searches {
		if len(after.searches[q]) != len(ids) {
			t.Fatalf("%s: %d traces after the spill, %d before", q, len(after.searches[q]), len(ids))
		}
	}
	// Nothing is left under the path: the files were unlinked.
	if ents, err := os.ReadDir(s.cfg.Path); err != nil || len(ents) != 0 {
		t.Fatalf("files left in %s: %v (%v)", s.cfg.Path, ents, err)
	}

	// A push to a spilled trace is read with the rest of it.
	td := oneTrace(pcommon.TraceID(firstID(before.searches[`{ span.late = "yes" }`])), "svc", 42)
	if err := s.Consume(msg("t", td)); err != nil {
		t.Fatal(err)
	}
	id := firstID(before.searches[`{ span.late = "yes" }`])
	got, _ := s.FindTraceByID(context.Background(), "t", id, 0, 0)
	if len(got) <= len(before.traces[id]) || !bytes.HasPrefix(got, before.traces[id]) {
		t.Fatalf("trace with a new span: %d bytes, %d before", len(got), len(before.traces[id]))
	}

	// Past the window, the segments go with their files.
	s.clock = func() time.Time { return time.Unix(1_800_000_000, 0).Add(time.Hour) }
	s.Sweep()
	if d := s.diskBytes.Load(); d != 0 {
		t.Fatalf("%d bytes on disk after the window", d)
	}
	if got, _ := s.FindTraceByID(context.Background(), "t", id, 0, 0); got != nil {
		t.Fatalf("trace still found after the window: %d bytes", len(got))
	}
}

func firstID(ids map[[16]byte]bool) [16]byte {
	for id := range ids {
		return id
	}
	return [16]byte{}
}

// A full store moves its sealed segments to disk before it makes a push
// wait; a spill it cannot write leaves the data in memory, readable, and
// is counted.
func TestFullStoreSpillsAndSpillErrorsKeepData(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = t.TempDir()
	cfg.MaxBytes = 2 << 20
	cfg.BackPressureTimeout = 50 * time.Millisecond
	s := newStore(t, cfg)
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now }
	for i := range 60 {
		td := genTraces(uint64(i+1), 40)
		if err := s.Consume(msg("t", td)); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		now = now.Add(3 * time.Second) // a segment per push
	}
	if testutil.ToFloat64(s.m.spilled) == 0 || s.diskBytes.Load() < cfg.MaxBytes {
		t.Fatalf("the store took more than max_bytes without spilling: %v spilled, %d bytes on disk", testutil.ToFloat64(s.m.spilled), s.diskBytes.Load())
	}

	// A path that is a file: spills fail, the data stays.
	bad := DefaultConfig()
	bad.Path = filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(bad.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, bad)
	s2.clock = s.clock
	for i := range 3 {
		if err := s2.Consume(msg("t", genTraces(uint64(i+1), 10))); err != nil {
			t.Fatal(err)
		}
		now = now.Add(3 * time.Second)
	}
	before := takeSnapshot(t, s2)
	s2.Spill(now.UnixNano())
	if testutil.ToFloat64(s2.m.spillErrors) == 0 {
		t.Fatal("the failed spill was not counted")
	}
	if after := takeSnapshot(t, s2); len(after.traces) != len(before.traces) || len(before.traces) == 0 {
		t.Fatalf("after a failed spill: %d traces, %d before", len(after.traces), len(before.traces))
	}
}

// Revoke reaches the spans already on disk.
func TestRevokeReachesSpilledSegments(t *testing.T) {
	s := newStore(t, DefaultConfig())
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now }
	ids := map[string]pcommon.TraceID{"0": {0xaa, 1}, "1": {0xaa, 2}}
	for part, tid := range ids {
		m := msg("t", oneTrace(tid, "svc", 1, 2))
		m.Metadata.Set(pipelines.MetaSourcePartition, part)
		if err := s.Consume(m); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(3 * time.Second)
	s.Spill(now.UnixNano())
	if testutil.ToFloat64(s.m.spilled) != 1 {
		t.Fatal("the segment was not spilled")
	}
	s.Revoke([]int32{1})
	for part, tid := range ids {
		b, _ := s.FindTraceByID(context.Background(), "t", tid, 0, 0)
		if held := b != nil; held != (part == "0") {
			t.Errorf("trace of partition %s held after the revoke: %v", part, held)
		}
	}
}

// A segment is sealed at segmentBytes however young and small in spans, so
// that its byte offsets stay within uint32 and a whole read of it stays
// bounded.
func TestSegmentSealedAtItsByteBound(t *testing.T) {
	defer func(n int64) { segmentBytes = n }(segmentBytes)
	segmentBytes = 64 << 10
	s := newStore(t, DefaultConfig())
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now } // never segmentAge old
	for i := range 20 {
		if err := s.Consume(msg("t", genTraces(uint64(i+1), 10))); err != nil {
			t.Fatal(err)
		}
	}
	ts := s.tenant("t")
	ts.segMu.Lock()
	defer ts.segMu.Unlock()
	if len(ts.segs) < 3 {
		t.Fatalf("%d segments for 20 pushes over a 64 KiB bound, want several", len(ts.segs))
	}
	for i, sg := range ts.segs[:len(ts.segs)-1] {
		if !sg.sealed || sg.spans >= segmentSpans {
			t.Fatalf("segment %d: sealed %v with %d spans", i, sg.sealed, sg.spans)
		}
		// The push that crosses the bound still goes to the open segment.
		if sg.size >= 2*segmentBytes {
			t.Fatalf("segment %d holds %d bytes, bound %d", i, sg.size, segmentBytes)
		}
	}
}
