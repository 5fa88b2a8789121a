package livestore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/pipelines"
)

func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Path == DefaultConfig().Path {
		cfg.Path = t.TempDir()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(pipelines.Settings{Metrics: prometheus.NewRegistry()}, cfg)
}

func msg(tenant string, td ptrace.Traces) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	return m
}

func spansByID(t *testing.T, b []byte) map[pcommon.SpanID]ptrace.Span {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[pcommon.SpanID]ptrace.Span{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			spans := rs.ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				if _, dup := out[spans.At(k).SpanID()]; dup {
					t.Fatalf("span %x returned twice", spans.At(k).SpanID())
				}
				out[spans.At(k).SpanID()] = spans.At(k)
			}
		}
	}
	return out
}

func oneTrace(tid pcommon.TraceID, service string, spanIDs ...byte) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	for _, id := range spanIDs {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{id})
		sp.SetName("span")
	}
	return td
}

// Spans of one trace from several pushes merge; a span sent twice is kept
// once; tenants do not see each other.
func TestMergeDedupeAndTenants(t *testing.T) {
	s := newStore(t, DefaultConfig())
	tid := pcommon.TraceID{0xaa, 1}
	for _, td := range []ptrace.Traces{
		oneTrace(tid, "front", 1, 2),
		oneTrace(tid, "back", 3, 2), // 2 again
		oneTrace(tid, "front", 1),   // 1 again
	} {
		if err := s.Consume(msg("t1", td)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.FindTraceByID(context.Background(), "t1", tid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := spansByID(t, b)
	if len(got) != 3 {
		t.Fatalf("trace holds %d spans, want 3", len(got))
	}
	if testutil.ToFloat64(s.m.deduplicated.WithLabelValues("t1")) != 2 {
		t.Fatalf("deduplicated metric = %v, want 2", testutil.ToFloat64(s.m.deduplicated.WithLabelValues("t1")))
	}
	if testutil.ToFloat64(s.m.traces.WithLabelValues("t1")) != 1 {
		t.Fatalf("traces gauge = %v", testutil.ToFloat64(s.m.traces.WithLabelValues("t1")))
	}
	if testutil.ToFloat64(s.m.bytes.WithLabelValues("t1")) <= float64(len(b)) {
		t.Fatalf("bytes gauge %v does not account for the %d bytes held", testutil.ToFloat64(s.m.bytes.WithLabelValues("t1")), len(b))
	}
	if b, _ := s.FindTraceByID(context.Background(), "t2", tid, 0, 0); b != nil {
		t.Fatal("tenant t2 sees the trace of t1")
	}
	if b, _ := s.FindTraceByID(context.Background(), "t1", pcommon.TraceID{0xbb}, 0, 0); b != nil {
		t.Fatal("unknown trace found")
	}
}

func TestBigTraceDedupe(t *testing.T) {
	s := newStore(t, DefaultConfig())
	tid := pcommon.TraceID{7}
	ids := make([]byte, 200)
	for i := range ids {
		ids[i] = byte(i + 1)
	}
	for range 2 { // the second push is all duplicates
		if err := s.Consume(msg("t", oneTrace(tid, "svc", ids...))); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := s.FindTraceByID(context.Background(), "t", tid, 0, 0)
	if n := len(spansByID(t, b)); n != 200 {
		t.Fatalf("trace holds %d spans, want 200", n)
	}
}

func TestGeneratedTracesAreComplete(t *testing.T) {
	s := newStore(t, DefaultConfig())
	td := spangen.Generate(spangen.Options{Seed: 5, Traces: 40, SpansPerTrace: 9, Services: 4})
	if err := s.Consume(msg("t", td)); err != nil {
		t.Fatal(err)
	}
	want := map[pcommon.TraceID]int{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		spans := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
		for k := 0; k < spans.Len(); k++ {
			want[spans.At(k).TraceID()]++
		}
	}
	for tid, n := range want {
		b, _ := s.FindTraceByID(context.Background(), "t", tid, 0, 0)
		if got := len(spansByID(t, b)); got != n {
			t.Fatalf("trace %x: %d spans, want %d", tid, got, n)
		}
	}
}

// A full store makes pushes wait, then refuses them with Unavailable naming
// the limit and its key; room made by the sweep lets pushes in again.
func TestBackPressureAndSweep(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 1 << 20
	cfg.BackPressureTimeout = 200 * time.Millisecond
	cfg.Window = time.Minute
	s := newStore(t, cfg)
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	s.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }

	seed := uint64(0)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		seed++
		err = s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: seed, Traces: 20, SpansPerTrace: 10})))
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("store never filled up: %v", err)
	}
	for _, w := range []string{"live-store is full", "live_store.max_bytes", "1048576"} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
	if s.Bytes() > cfg.MaxBytes+64<<10 {
		t.Fatalf("store holds %d bytes, limit %d", s.Bytes(), cfg.MaxBytes)
	}
	if testutil.ToFloat64(s.m.discarded.WithLabelValues("t", "live_store_full")) == 0 {
		t.Fatal("refused spans not counted")
	}

	// A push waiting for room goes through once the sweep frees memory.
	done := make(chan error, 1)
	go func() {
		done <- s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: 99999, Traces: 5, SpansPerTrace: 5})))
	}()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	s.Sweep()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("push after the sweep: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("push still waiting after the sweep")
	}
	if testutil.ToFloat64(s.m.evicted.WithLabelValues("t")) == 0 {
		t.Fatal("evictions not counted")
	}
}

func TestMissingTenantIsRefused(t *testing.T) {
	s := newStore(t, DefaultConfig())
	m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(oneTrace(pcommon.TraceID{1}, "s", 1)))
	if err := s.Consume(m); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	err := c.Validate()
	for _, w := range []string{"max_bytes", "window", "sweep_interval"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("err = %v, want it to mention %s", err, w)
		}
	}
}

func settings() pipelines.Settings { return pipelines.Settings{Metrics: prometheus.NewRegistry()} }

func msgFromBytes(tenant string, b []byte) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), b)
	m.Metadata.Set(pipelines.MetaTenant, tenant)
	return m
}

// A full store lets go of traces that are safely in blocks before it
// refuses a push.
func TestSafeTracesMakeRoom(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 1 << 20
	cfg.BackPressureTimeout = 50 * time.Millisecond
	s := newStore(t, cfg)
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now }
	var err error
	for seed := uint64(1); seed < 1000 && err == nil; seed++ {
		err = s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: seed, Traces: 20, SpansPerTrace: 10})))
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("store never filled: %v", err)
	}
	s.SetSafeBefore(now.Add(time.Second)) // everything so far is in blocks
	if err := s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: 5000, Traces: 20, SpansPerTrace: 10}))); err != nil {
		t.Fatalf("push after the safe mark: %v", err)
	}
	if testutil.ToFloat64(s.m.evicted.WithLabelValues("t")) == 0 {
		t.Fatal("nothing was evicted")
	}
}

// resourceIs is a predicate: resource attribute name equals value.
type resourceIs struct{ name, value string }

func (p resourceIs) Fields() []spanpred.Field {
	return []spanpred.Field{{Resource: true, Name: p.name}}
}
func (p resourceIs) Match(row []spanpred.Value) bool {
	return row[0].Kind == spanpred.String && row[0].Str == p.value
}
func (resourceIs) MayMatch([]spanpred.Domain) bool { return true }

// TestScan visits the traces of one tenant that a selection picks, and
// stops when told to.
func TestScan(t *testing.T) {
	s := newStore(t, DefaultConfig())
	for i := byte(1); i <= 5; i++ {
		svc := "svc"
		if i%2 == 0 {
			svc = "even"
		}
		if err := s.Consume(msg("t", oneTrace(pcommon.TraceID{i}, svc, 1, 2))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Consume(msg("other", oneTrace(pcommon.TraceID{9}, "even", 1))); err != nil {
		t.Fatal(err)
	}
	scan := func(sel spanpred.Selection) (map[[16]byte]int, int64) {
		t.Helper()
		seen := map[[16]byte]int{}
		n, err := s.Scan(context.Background(), "t", sel, func(id [16]byte, data []byte) bool {
			seen[id] = len(spansByID(t, data))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen, n
	}
	all, allBytes := scan(spanpred.Selection{})
	if len(all) != 5 || all[[16]byte{3}] != 2 {
		t.Fatalf("visited %v, want 5 traces of 2 spans of tenant t", all)
	}
	even, _ := scan(spanpred.Selection{Pred: resourceIs{"service.name", "even"}})
	if len(even) != 2 || even[[16]byte{2}] != 2 || even[[16]byte{4}] != 2 {
		t.Fatalf("with service.name = even visited %v, want traces 2 and 4", even)
	}
	byID, idBytes := scan(spanpred.Selection{ByTraceID: true, TraceIDs: [][16]byte{{4}, {9}, {7}}})
	if len(byID) != 1 || byID[[16]byte{4}] != 2 {
		t.Fatalf("by trace IDs 4, 9 (another tenant's) and 7 (none) visited %v, want trace 4", byID)
	}
	if idBytes <= 0 || idBytes*4 > allBytes {
		t.Fatalf("by trace ID tested %d bytes, a full scan %d: the lookup must test only the trace found", idBytes, allBytes)
	}
	if none, _ := scan(spanpred.Selection{ByTraceID: true, Pred: resourceIs{"service.name", "svc"}, TraceIDs: [][16]byte{{4}}}); len(none) != 0 {
		t.Fatalf("trace 4 with service.name = svc visited %v, want none", none)
	}
	calls := 0
	if _, err := s.Scan(context.Background(), "t", spanpred.Selection{}, func([16]byte, []byte) bool { calls++; return calls < 2 }); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("callback ran %d times after asking to stop at 2", calls)
	}
}

// TestWaitingPushEvictsWhatIsInBlocks fills the store, starts a push that
// waits for room, and then moves the block-builder's safe mark on: the
// waiting push evicts what is in blocks and goes through, instead of
// timing out while room could be made.
func TestWaitingPushEvictsWhatIsInBlocks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 1 << 20
	cfg.BackPressureTimeout = 10 * time.Second
	s := newStore(t, cfg)
	now := time.Unix(1_800_000_000, 0)
	s.clock = func() time.Time { return now }
	seed := uint64(0)
	for s.Bytes() < cfg.MaxBytes-64<<10 && seed < 1000 {
		seed++
		if err := s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: seed, Traces: 2, SpansPerTrace: 10}))); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Consume(msg("t", spangen.Generate(spangen.Options{Seed: 9999, Traces: 60, SpansPerTrace: 10})))
	}()
	select {
	case err := <-done:
		t.Fatalf("the push did not wait for room: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	s.SetSafeBefore(now.Add(time.Second)) // everything so far is in blocks
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiting push: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting push was not woken by the safe mark")
	}
}

// The store is a pipelines.ReplayingSink: read from Kafka, the pipeline
// hands it the partitions it loses.
var _ pipelines.ReplayingSink = (*Store)(nil)

// Revoke lets go of the traces of the partitions given, and only those:
// the process taking the partitions over reads them again, and a span
// held by both would be counted twice by TraceQL metrics.
func TestRevokeDropsThePartitionsTraces(t *testing.T) {
	s := newStore(t, DefaultConfig())
	ids := map[string]pcommon.TraceID{"0": {0xaa, 1}, "1": {0xaa, 2}, "": {0xaa, 3}}
	for part, tid := range ids {
		m := msg("t1", oneTrace(tid, "svc", 1, 2))
		if part != "" {
			m.Metadata.Set(pipelines.MetaSourcePartition, part)
		}
		if err := s.Consume(m); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Bytes()
	s.Revoke([]int32{1, 7})
	for part, tid := range ids {
		b, err := s.FindTraceByID(context.Background(), "t1", tid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if held := b != nil; held != (part != "1") {
			t.Errorf("trace of partition %q held: %v", part, held)
		}
	}
	n := 0
	if _, err := s.Scan(context.Background(), "t1", spanpred.Selection{}, func([16]byte, []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("scan found %d traces after the revoke, want 2", n)
	}
	if got := testutil.ToFloat64(s.m.revoked.WithLabelValues("t1")); got != 1 {
		t.Errorf("revoked traces counted %v, want 1", got)
	}
	if s.Bytes() >= before || testutil.ToFloat64(s.m.traces.WithLabelValues("t1")) != 2 {
		t.Errorf("bytes %d (before %d), traces gauge %v: the revoked trace is still accounted", s.Bytes(), before, testutil.ToFloat64(s.m.traces.WithLabelValues("t1")))
	}
}
