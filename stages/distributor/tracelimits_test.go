package distributor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// processWithOutcome runs one push of tenant ten and returns the number of
// spans that went on, by trace, and the push's outcome.
func processWithOutcome(t *testing.T, d *Distributor, payload []byte, ten string) (map[[16]byte]int, *pipelines.Outcome) {
	t.Helper()
	m := msgOf(payload, ten)
	ctx, outcome := pipelines.ContextWithOutcome(context.Background())
	m.SetContext(ctx)
	out, err := d.Process(m)
	if err != nil {
		t.Fatalf("push of %s: %v", ten, err)
	}
	spans := map[[16]byte]int{}
	for _, o := range out {
		countByTrace(decode(t, o.Payload), spans)
	}
	return spans, outcome
}

func countByTrace(td ptrace.Traces, into map[[16]byte]int) {
	rs := td.ResourceSpans()
	for i := range rs.Len() {
		ss := rs.At(i).ScopeSpans()
		for j := range ss.Len() {
			sp := ss.At(j).Spans()
			for k := range sp.Len() {
				into[sp.At(k).TraceID()]++
			}
		}
	}
}

func total(m map[[16]byte]int) (n int) {
	for _, c := range m {
		n += c
	}
	return n
}

// TestMaxTracesPerUserRefusesNewTraces gives tenant "capped" room for 3 live
// traces and pushes 5: the spans of the first 3 go on, those of the other 2
// are refused as a partial success whose message names the limit, the
// tenant and the key, and they are counted as live_traces_exceeded. Spans of
// the admitted traces still go on in a later push, and another tenant has
// its own count.
func TestMaxTracesPerUserRefusesNewTraces(t *testing.T) {
	capped := overrides.DefaultLimits()
	capped.Ingestion.MaxTracesPerUser = 3
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MultitenancyEnabled = true
	d := New(pipelines.Settings{Name: "distributor", Metrics: reg}, cfg, fixedLimits{"capped": &capped})

	td := spangen.Generate(spangen.Options{Seed: 3, Traces: 5, SpansPerTrace: 4, Services: 1})
	payload := spangen.Marshal(td)
	spans, outcome := processWithOutcome(t, d, payload, "capped")
	if n := total(spans); len(spans) != 3 || n != 12 || outcome.Rejected() != 8 {
		t.Fatalf("went on %d, refused %d; want 12 and 8 (3 traces admitted, 2 refused, 4 spans each)", n, outcome.Rejected())
	}
	msg := outcome.RejectionMessage()
	for _, want := range []string{"LIVE_TRACES_EXCEEDED", `tenant "capped"`, "3 live traces", "overrides.defaults.ingestion.max_traces_per_user"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("capped", metrics.ReasonLiveTracesExceeded)); got != 8 {
		t.Fatalf("discarded{live_traces_exceeded} = %v, want 8", got)
	}

	// The same push again: the 3 live traces are admitted again, the 2
	// others are still refused.
	again, outcome := processWithOutcome(t, d, payload, "capped")
	if total(again) != 12 || outcome.Rejected() != 8 {
		t.Fatalf("second push: went on %d, refused %d; want 12 and 8", total(again), outcome.Rejected())
	}
	for id := range again {
		if spans[id] == 0 {
			t.Fatalf("trace %x went on in the second push but was refused in the first", id)
		}
	}
	// The default limit (10,000) lets another tenant through.
	if other, outcome := processWithOutcome(t, d, payload, "other"); total(other) != 20 || outcome.Rejected() != 0 {
		t.Fatalf("other tenant: went on %d, refused %d; want 20 and 0", total(other), outcome.Rejected())
	}
}

// TestMaxBytesPerTraceRefusesAtIngest gives tenant "small" a trace limit a
// little over one push of one trace: the second push of the same trace is
// refused as TRACE_TOO_LARGE, counted as trace_too_large, while a new trace
// in the same push goes on.
func TestMaxBytesPerTraceRefusesAtIngest(t *testing.T) {
	one := spangen.Generate(spangen.Options{Seed: 4, Traces: 1, SpansPerTrace: 10, Services: 1})
	onePayload := spangen.Marshal(one)
	small := overrides.DefaultLimits()
	small.Global.MaxBytesPerTrace = len(onePayload) * 3 / 2 // room for one push of the trace, not two
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MultitenancyEnabled = true
	d := New(pipelines.Settings{Name: "distributor", Metrics: reg}, cfg, fixedLimits{"small": &small})

	if first, outcome := processWithOutcome(t, d, onePayload, "small"); total(first) != 10 || outcome.Rejected() != 0 {
		t.Fatalf("first push: went on %d, refused %d; want 10 and 0", total(first), outcome.Rejected())
	}
	// The same trace again (other span IDs do not matter to the size) with
	// a new trace beside it.
	both := ptrace.NewTraces()
	one.ResourceSpans().CopyTo(both.ResourceSpans())
	other := spangen.Generate(spangen.Options{Seed: 5, Traces: 1, SpansPerTrace: 2, Services: 1})
	ids := map[[16]byte]int{}
	countByTrace(other, ids)
	other.ResourceSpans().MoveAndAppendTo(both.ResourceSpans())
	var newID [16]byte
	for id := range ids {
		newID = id
	}
	second, outcome := processWithOutcome(t, d, spangen.Marshal(both), "small")
	if len(ids) != 1 || second[newID] != 2 {
		t.Fatalf("the new trace's 2 spans did not all go on: %v", second)
	}
	if n := total(second); n >= 12 || outcome.Rejected() != int64(12-n) {
		t.Fatalf("second push: went on %d, refused %d; want the spans of the large trace past the limit refused", n, outcome.Rejected())
	}
	msg := outcome.RejectionMessage()
	for _, want := range []string{"TRACE_TOO_LARGE", `tenant "small"`, "overrides.defaults.global.max_bytes_per_trace"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("small", metrics.ReasonTraceTooLarge)); got != float64(outcome.Rejected()) {
		t.Fatalf("discarded{trace_too_large} = %v, want %d", got, outcome.Rejected())
	}
}

// TestLiveTracesGoIdle checks the bookkeeping at fixed times: an idle trace
// stops counting against max_traces_per_user and its bytes start again.
func TestLiveTracesGoIdle(t *testing.T) {
	lt := newLiveTraces(time.Second)
	tt := lt.tenant("t")
	sec := int64(time.Second)
	a, b, c := [16]byte{1}, [16]byte{2}, [16]byte{3}
	if r := lt.admit(tt, a, 60, 0, 2, 100); r != "" {
		t.Fatalf("a: %q", r)
	}
	if r := lt.admit(tt, b, 10, sec/2, 2, 100); r != "" {
		t.Fatalf("b: %q", r)
	}
	if r := lt.admit(tt, c, 10, sec/2, 2, 100); r != metrics.ReasonLiveTracesExceeded {
		t.Fatalf("c while a and b are live: %q, want %s", r, metrics.ReasonLiveTracesExceeded)
	}
	if r := lt.admit(tt, a, 50, sec/2, 2, 100); r != metrics.ReasonTraceTooLarge {
		t.Fatalf("a over 100 bytes: %q, want %s", r, metrics.ReasonTraceTooLarge)
	}
	// At 1.2 s, a has been idle for more than a second: c takes its place.
	if r := lt.admit(tt, c, 10, 12*sec/10, 2, 100); r != "" {
		t.Fatalf("c after a went idle: %q", r)
	}
	if got := tt.live.Load(); got != 2 {
		t.Fatalf("live = %d, want 2 (b and c)", got)
	}
	// b goes idle too and comes back: its bytes start from zero.
	if r := lt.admit(tt, b, 95, 3*sec, 2, 100); r != "" {
		t.Fatalf("b after idle with 95 bytes: %q", r)
	}
}

// TestSweepAllForgetsIdleTenants: the periodic sweep forgets idle traces and
// then the tenants left with none.
func TestSweepAllForgetsIdleTenants(t *testing.T) {
	lt := newLiveTraces(time.Second)
	sec := int64(time.Second)
	for i, ten := range []string{"quiet", "busy"} {
		if r := lt.admit(lt.tenant(ten), [16]byte{byte(i + 1)}, 10, 0, 10, 100); r != "" {
			t.Fatal(r)
		}
	}
	if r := lt.admit(lt.tenant("busy"), [16]byte{9}, 10, 3*sec/2, 10, 100); r != "" {
		t.Fatal(r)
	}
	lt.sweepAll(2 * sec)
	if _, ok := lt.tenants["quiet"]; ok {
		t.Fatal("a tenant with no live trace is still held")
	}
	if tt := lt.tenants["busy"]; tt == nil || tt.live.Load() != 1 {
		t.Fatalf("busy: %v, want its one live trace", tt)
	}
}
